"""Answer latency at scale, without timing anything: the work one question costs must not grow
with the size of the index where it need not (real SQLite, real Chroma)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from bot.models import Article, Chunk
from bot.store import Store

DIM = 8


def fill(store: Store, articles: int) -> None:
    """`articles` ready articles of two chunks each, written straight to the manifest (the
    lookups under test read SQLite only; Chroma would only slow the filling down)."""
    now = dt.datetime.now(dt.UTC).isoformat()
    with store.db:
        store.db.executemany(
            "INSERT INTO articles (id, path, content_hash, title, source, published, url, "
            "language, n_chunks, state, ingested_at) VALUES (?,?,?,?,?,?,?,?,2,'ready',?)",
            [
                (f"{n:016x}", "", "h", f"T{n}", "Post", "2024-05-01", "", "en", now)
                for n in range(articles)
            ],
        )
        store.db.executemany(
            'INSERT INTO chunks (id, article_id, ordinal, start, "end", text) VALUES (?,?,?,?,?,?)',
            [
                (f"{n:016x}-{o}", f"{n:016x}", o, 0, 4, "text")
                for n in range(articles)
                for o in (0, 1)
            ],
        )


def steps(store: Store, article_id: str, chunks: int) -> int:
    """SQLite virtual-machine steps (in hundreds) to read one article's passages."""
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    store.db.set_progress_handler(tick, 100)
    try:
        assert len(store.passages_of(article_id)) == chunks
    finally:
        store.db.set_progress_handler(None, 0)
    return count


def test_reading_passages_costs_the_same_in_a_small_and_a_large_index(tmp_path: Path) -> None:
    """Every question reads its ~100 candidate chunks back with their articles, by id. That
    lookup used to be driven by the index on the articles' state, which every article shares,
    and scanned the whole index for each question (230 ms at 100,000 chunks)."""
    small, large = Store(tmp_path / "small"), Store(tmp_path / "large")
    fill(small, 50)
    fill(large, 20_000)
    text = "The council approved the harbour dredging plan. " * 60
    article = Article(title="Harbour", text=text, id="f" * 16)
    size = len(text) // 60
    chunks = [
        Chunk(f"{article.id}-{n}", article.id, n, n * size, (n + 1) * size, text[:size])
        for n in range(60)
    ]
    vectors = np.random.default_rng(1).normal(size=(60, DIM)).astype(np.float32)
    for store in (small, large):
        store.begin_article(article, "hash")
        store.put_chunks(article, chunks, vectors, new=True)
    assert steps(large, article.id, 60) <= 2 * steps(small, article.id, 60)
    small.close()
    large.close()
