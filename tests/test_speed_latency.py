"""Answer latency at scale, without timing anything: the work one question costs must not grow
with the size of the index where it need not (real SQLite, real Chroma)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, MakeDesk

from bot import fts
from bot.answer import ExtractiveComposer
from bot.desk import Desk
from bot.embed import Embedder
from bot.models import Article, Chunk, Filters
from bot.pipeline import AnswerPipeline, Request
from bot.retrieve import Retriever
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


# -- sentence vectors stored at ingest (bot/sentence_store.py) -------------------------------

QUESTIONS = [
    "Why would the EU buy Russian S-400 systems from Turkey?",
    "How much did Turkey pay Russia for the S-400?",
    "What did Thomas Barak urge Turkey to do?",
    "How many pilgrims were killed in the Hajj stampede?",
    "How many people died in the Mecca crane collapse?",
    "What did the hackers do to the Church of Scientology website?",
    "Why did Microsoft want Internet Explorer 6 to die?",
    "What happened at the lantern festival in Taipei?",
]


class Counting:
    """The real embedder, counting the texts the composer has it encode."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.texts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        self.texts += len(texts)
        return self.inner.encode(texts)


def answers(desk: Desk, composer: ExtractiveComposer) -> list[tuple[str, list[tuple[int, int]]]]:
    """Each question's answer text and cited offsets, composed by `composer`."""
    pipeline = AnswerPipeline(desk.retriever, desk.reranker, composer, desk.pipeline.params)
    out = []
    for question in QUESTIONS:
        answer = pipeline.invoke(Request(question, dt.date(2024, 1, 1)))
        out.append((answer.text, [(c.start, c.end) for c in answer.citations]))
    return out


def composer(desk: Desk, embedder: Embedder, stored: bool) -> ExtractiveComposer:
    s = desk.settings
    return ExtractiveComposer(
        embedder, s.answer_sentences, s.min_relevance, stored=desk.store if stored else None
    )


def test_stored_sentence_vectors_give_the_same_answers_without_encoding(
    seeded: Desk, embedder: Embedder
) -> None:
    """Answers from the vectors stored at ingest are the answers computed at question time,
    and composing them encodes no sentence at all."""
    counting = Counting(embedder)
    computed = answers(seeded, composer(seeded, embedder, stored=False))
    stored = answers(seeded, composer(seeded, counting, stored=True))  # type: ignore[arg-type]
    assert sum(1 for text, _ in computed if "[1]" in text) >= 6  # mostly answered
    assert stored == computed
    assert counting.texts == 0


def test_the_composer_uses_only_vectors_of_its_own_encoder(
    tmp_path: Path, make_desk: MakeDesk, embedder: Embedder
) -> None:
    """Stored vectors are what the answer is made of (spoilt ones change it), but vectors of
    another encoder (a model switch) are ignored: the answer is the computed one."""
    desk = make_desk()
    desk.ingestor.ingest([ROOT / "corpus" / "2015", ROOT / "corpus" / "2006"])
    question = "How many people died in the Mecca crane collapse?"
    truth = desk.ask(question, as_of=dt.date(2024, 1, 1)).text
    rows = desk.store.db.execute("SELECT chunk_id, vectors FROM sentence_vectors").fetchall()
    rng = np.random.default_rng(7)
    spoilt = [(rng.normal(size=len(v) // 4).astype(np.float32).tobytes(), c) for c, v in rows]
    with desk.store.db:
        desk.store.db.executemany("UPDATE sentence_vectors SET vectors=? WHERE chunk_id=?", spoilt)
    assert desk.ask(question, as_of=dt.date(2024, 1, 1)).text != truth  # its own: used
    with desk.store.db:
        desk.store.db.execute("UPDATE sentence_vectors SET encoder='other'")
    assert desk.ask(question, as_of=dt.date(2024, 1, 1)).text == truth  # another encoder's


def sentence_rows(store: Store) -> dict[str, str]:
    """chunk id -> article id of every stored sentence-vector row (None: an orphan)."""
    return dict(
        store.db.execute(
            "SELECT s.chunk_id, c.article_id FROM sentence_vectors s "
            "LEFT JOIN chunks c ON c.id = s.chunk_id"
        ).fetchall()
    )


def test_updated_and_removed_articles_take_their_sentence_vectors_along(
    make_desk: MakeDesk, tmp_path: Path
) -> None:
    desk = make_desk()
    source = tmp_path / "bridge.md"
    source.write_text(
        "---\ntitle: Bridge to open\nurl: https://example.com/bridge\n---\n"
        "The new harbour bridge will open to traffic in June, the council said on Monday. "
        "Ferries will keep running until the end of the summer.\n"
    )
    (article,) = desk.ingestor.ingest([source]).added
    first = sentence_rows(desk.store)
    assert set(first) == set(desk.store.chunk_ids(article.id))
    source.write_text(
        "---\ntitle: Bridge to open\nurl: https://example.com/bridge\n---\n"
        "The harbour bridge will now open to traffic in May, a month early, the council said "
        "on Tuesday.\n"
    )
    assert desk.ingestor.ingest([source]).updated
    second = sentence_rows(desk.store)
    assert set(second) == set(desk.store.chunk_ids(article.id)) and set(second) != set(first)
    answer = desk.ask("When will the harbour bridge open?", as_of=dt.date(2024, 1, 1))
    assert "May" in answer.text and "June" not in answer.text
    desk.ingestor.remove(article.id)
    assert sentence_rows(desk.store) == {}


def test_an_index_from_before_sentence_vectors_answers_the_same(
    make_desk: MakeDesk, tmp_path: Path
) -> None:
    """An index built before the table existed (or with NEWSDESK_SENTENCE_VECTORS=false)
    answers as one built with it; `newsdesk reindex` fills the table."""
    desk = make_desk()
    desk.ingestor.ingest([ROOT / "corpus" / "2015", ROOT / "corpus" / "2008"])
    with_table = [desk.ask(q, as_of=dt.date(2024, 1, 1)).text for q in QUESTIONS[4:6]]
    desk.store.db.execute("DROP TABLE sentence_vectors")
    desk.store.db.commit()
    desk.store.close()
    old = make_desk(sentence_vectors=False)  # opening it again creates the table, empty
    assert old.store.db.execute("SELECT count(*) FROM sentence_vectors").fetchone()[0] == 0
    assert [old.ask(q, as_of=dt.date(2024, 1, 1)).text for q in QUESTIONS[4:6]] == with_table
    # What those answers encoded is kept (filled as you go): asked again, nothing is encoded.
    kept = old.composer.last_kept  # type: ignore[attr-defined]
    assert kept is not None
    kept.result(timeout=120)
    assert old.store.db.execute("SELECT count(*) FROM sentence_vectors").fetchone()[0] > 0
    counting = Counting(old.embedder)
    again_composer = composer(old, counting, stored=True)  # type: ignore[arg-type]
    pipeline = AnswerPipeline(old.retriever, old.reranker, again_composer, old.pipeline.params)
    texts = [pipeline.invoke(Request(q, dt.date(2024, 1, 1))).text for q in QUESTIONS[4:6]]
    assert texts == with_table and counting.texts == 0
    old.store.close()
    again = make_desk()
    again.ingestor.reindex()
    assert set(sentence_rows(again.store)) == again.store.all_chunk_ids()


# -- the two sides of retrieval at once ------------------------------------------------------


def test_the_keyword_side_runs_while_the_question_is_encoded(
    seeded: Desk, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retrieval costs the slower of its two sides, not both: the keyword search has started
    before the question's encoding (then the vector search) is over."""
    started = threading.Event()
    search = seeded.store.keyword_search

    def keyword_search(*args: Any, **kwargs: Any) -> Any:
        started.set()
        return search(*args, **kwargs)

    class Waiting(Counting):
        def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
            overlapped.append(started.wait(timeout=30))
            return self.inner.encode_queries(texts)

    overlapped: list[bool] = []
    monkeypatch.setattr(seeded.store, "keyword_search", keyword_search)
    retriever = Retriever(seeded.store, Waiting(embedder), seeded.retriever.params)  # type: ignore[arg-type]
    _, passages = retriever.retrieve("How much did Turkey pay Russia for the S-400?")
    assert overlapped == [True]
    assert passages == seeded.retriever.retrieve("How much did Turkey pay Russia for the S-400?")[1]


def test_retrieval_fetches_vectors_only_for_the_passages_it_returns(
    seeded: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keyword-only hits get their cosine from the vector store; fetching it for every one of
    the 80 keyword candidates cost a Chroma lookup each at 1M chunks. Only the returned
    passages need it, and they still all have it."""
    asked: list[int] = []
    vectors = seeded.store.vectors

    def counting(chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        asked.append(len(chunk_ids))
        return vectors(chunk_ids)

    monkeypatch.setattr(seeded.store, "vectors", counting)
    for question in QUESTIONS:
        _, passages = seeded.retriever.retrieve(question, k=6)
        assert passages and all(p.dense != 0.0 for p in passages), question
    assert asked and max(asked) <= 6


def test_a_bulk_load_leaves_the_keyword_index_merged(
    make_desk: MakeDesk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ingest transaction adds a segment to the FTS index, and a question walks them
    all; after a bulk load (here: any run of 3+ chunks) they are merged into one."""
    jsonl = tmp_path / "wire.jsonl"
    jsonl.write_text(
        "".join(
            json.dumps(
                {"title": f"Ferry strike day {n}", "text": f"Ferry crews struck on day {n}."}
            )
            + "\n"
            for n in range(4)
        )
    )
    monkeypatch.setattr("bot.batch.FLUSH_CHUNKS", 1)  # one transaction per article
    desk = make_desk()
    desk.ingestor.ingest([ROOT / "corpus" / "2011"])  # a small run: left as it is
    assert fts.segments(desk.store.db, fts.ENGLISH) == 2
    monkeypatch.setattr("bot.batch.OPTIMIZE_CHUNKS", 3)
    desk.ingestor.ingest([jsonl])
    assert fts.segments(desk.store.db, fts.ENGLISH) == 1
    hits = desk.store.keyword_search("ferry strike", 10, Filters())
    assert len(hits) == 4
