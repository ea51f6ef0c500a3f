"""The keyword side at scale: bounded queries ranked on the FTS table alone (bot/keyword.py),
and still exactly the filtered, visible chunks a question asks for (real SQLite and Chroma)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import fts
from bot.keyword import TermCounts, bounded, split_terms
from bot.models import Article, Chunk, Filters
from bot.store import Store

DIM = 8


def add(store: Store, n: int, title: str, text: str, source: str, day: dt.date) -> str:
    article = Article(title=title, text=text, source=source, published=day, id=f"{n:016x}")
    chunk = Chunk(f"{article.id}-0", article.id, 0, 0, len(text), text)
    vector = np.random.default_rng(n).normal(size=(1, DIM)).astype(np.float32)
    store.begin_article(article, f"hash{n}")
    store.put_chunks(article, [chunk], vector / np.linalg.norm(vector), new=True)
    return article.id


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    made = Store(tmp_path / "index", postings_budget=30)
    yield made
    made.close()


def test_the_commonest_words_are_dropped_once_the_budget_is_spent(store: Store) -> None:
    day = dt.date(2024, 5, 1)
    for n in range(40):
        add(
            store,
            n,
            f"Council meeting {n}",
            "The council met on Monday about the budget.",
            "Post",
            day,
        )
    rare = add(store, 99, "Harbour", "The council approved the harbour dredging plan.", "Post", day)
    query = bounded(
        store.db, "chunks_fts", '"council" OR "dredging" OR "harbour"', 30, TermCounts()
    )
    assert query == '"dredging" OR "harbour"'  # 41 rows match "council": over the budget of 30
    hits = store.keyword_search("council dredging harbour", 5, Filters())
    assert hits[0].article_id == rare


def test_the_rarest_word_is_kept_even_when_every_word_is_common(store: Store) -> None:
    day = dt.date(2024, 5, 1)
    for n in range(40):
        add(store, n, "Weather", "Rain again today across the region.", "Post", day)
    assert bounded(store.db, "chunks_fts", '"rain" OR "region"', 30, TermCounts()) in {
        '"rain"',
        '"region"',
    }
    assert len(store.keyword_search("rain region", 5, Filters())) == 5
    assert bounded(store.db, fts.ENGLISH, '"zeppelin"', 30, TermCounts()) == ""  # found nowhere
    assert store.keyword_search("zeppelin", 5, Filters()) == []


def test_a_filter_still_finds_its_outlet_below_the_unfiltered_best(tmp_path: Path) -> None:
    """Ranking runs on the FTS table before the outlet is known: the filtered query must still
    reach a match that 2k better-scoring matches from another outlet push out of the top."""
    store = Store(tmp_path / "index")
    day = dt.date(2024, 5, 1)
    for n in range(30):
        add(store, n, "Flood flood", "Flood waters rose; flood warnings, flood maps.", "Post", day)
    mine = add(store, 77, "Roads", "One flood closed a road.", "Gazette", day)
    hits = store.keyword_search("flood", 5, Filters(source="gazette"))
    assert [h.article_id for h in hits] == [mine]
    since = store.keyword_search("flood", 5, Filters(since=dt.date(2024, 6, 1)))
    assert since == []
    store.close()


def test_an_article_being_taken_down_is_never_a_keyword_hit(tmp_path: Path) -> None:
    store = Store(tmp_path / "index")
    day = dt.date(2024, 5, 1)
    hidden = [
        add(store, n, "Leak", "The leaked memo, the leak, the leaker.", "Post", day)
        for n in range(12)
    ]
    shown = add(store, 50, "Other", "A leak was reported.", "Post", day)
    store.mark(hidden, "removing")
    hits = store.keyword_search("leak", 3, Filters())
    assert [h.article_id for h in hits] == [shown]
    store.close()


def test_an_empty_index_answers_nothing_on_both_sides(tmp_path: Path) -> None:
    store = Store(tmp_path / "index")
    assert store.dense_search(np.ones(DIM, dtype=np.float32) / DIM**0.5, 5, Filters()) == []
    assert store.keyword_search("anything at all", 5, Filters()) == []
    store.close()


def test_only_plain_or_queries_are_bounded() -> None:
    assert split_terms('"a" OR "b c"') == ['"a"', '"b c"']
    assert split_terms('"a" AND "b"') is None
    assert split_terms("a OR b") is None


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=80))
def test_any_question_text_is_a_safe_keyword_query(store: Store, text: str) -> None:
    if store.article(f"{1:016x}") is None:
        quoted = 'He said "no" -- NOT near(x) * OR AND.'
        add(store, 1, 'Quote " marks', quoted, "Post", dt.date(2024, 1, 1))
    for hit in store.keyword_search(text, 5, Filters(source="post")):
        assert hit.keyword > 0
