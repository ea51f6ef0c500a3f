"""Retrieval and cited answers over the project's own corpus (seed + Wikinews)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from conftest import MakeDesk

from bot.desk import Desk
from bot.models import Answer, Filters


def check_citations(desk: Desk, answer: Answer) -> None:
    """Every quote is a verbatim slice of its article's corpus file text."""
    assert answer.citations
    for c in answer.citations:
        row = desk.store.article(c.article_id)
        assert row is not None
        article = desk.corpus.read(Path(row.path))
        assert article.text[c.start : c.end] == c.quote
        assert c.quote in Path(row.path).read_text(encoding="utf-8")
        assert f"[{c.n}]" in answer.text
        assert c.title == row.title


def test_seed_article_answers_the_s400_question(seeded: Desk) -> None:
    answer = seeded.ask("Why would the EU buy Russian S-400 systems from Turkey?")
    assert not answer.abstained
    check_citations(seeded, answer)
    assert all("S-400" in c.title for c in answer.citations)
    assert answer.citations[0].source == "" and answer.citations[0].published is None


@pytest.mark.parametrize(
    ("question", "must_quote"),
    [
        ("How much did Turkey pay Russia for the S-400?", "$2.5 billion"),
        ("What did Thomas Barak urge Turkey to do?", "abandon the S-400"),
        ("What did Murat Gyurgen suggest?", "Gyurgen"),
        ("How many pilgrims were killed in the Hajj stampede?", "345"),
    ],
)
def test_exact_names_and_numbers_are_found(seeded: Desk, question: str, must_quote: str) -> None:
    answer = seeded.ask(question)
    assert not answer.abstained
    check_citations(seeded, answer)
    assert any(must_quote in c.quote for c in answer.citations), answer.text


@pytest.mark.parametrize(
    "question",
    ["What is the best recipe for sourdough bread?", "Who won the 2030 football World Cup?"],
)
def test_unrelated_question_abstains(seeded: Desk, question: str) -> None:
    answer = seeded.ask(question)
    assert answer.abstained and answer.citations == []
    assert "does not answer" in answer.text
    assert answer.passages  # the nearest sources are still shown


def test_filters_by_date_and_outlet(seeded: Desk) -> None:
    since = seeded.search("stampede pilgrims", Filters(since=dt.date(2010, 1, 1)), k=8)
    assert since and all(p.published and p.published >= dt.date(2010, 1, 1) for p in since)
    until = seeded.search("stampede pilgrims", Filters(until=dt.date(2006, 12, 31)), k=8)
    assert until and all(p.published and p.published.year <= 2006 for p in until)
    assert any("Hajj" in p.title for p in until)
    none = seeded.search("S-400", Filters(source="Reuters"))
    assert none == []
    wiki = seeded.search("S-400 Turkey", Filters(source="wikinews"))
    assert wiki and all(p.source == "Wikinews" for p in wiki)


def test_at_most_two_passages_per_article(seeded: Desk) -> None:
    passages = seeded.search("S-400 Turkey Ukraine EU proposal", k=10)
    counts: dict[str, int] = {}
    for p in passages:
        counts[p.article_id] = counts.get(p.article_id, 0) + 1
    assert max(counts.values()) <= 2


def test_as_of_prefers_articles_published_just_before(make_desk: MakeDesk, tmp_path: Path) -> None:
    records = [
        {
            "id": f"budget-{year}",
            "title": f"City council adopts {year} budget",
            "published": f"{year}-03-01",
            "source": "Gazette",
            "text": f"The city council adopted the {year} budget, raising spending on schools.",
        }
        for year in (2021, 2022, 2023)
    ]
    src = tmp_path / "budgets.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    desk = make_desk()
    desk.ingestor.ingest([src])
    for year in (2021, 2022, 2023):
        top = desk.search("council budget schools", Filters(as_of=dt.date(year, 3, 5)), k=3)
        assert top[0].published == dt.date(year, 3, 1)
