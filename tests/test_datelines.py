"""An article with no headline whose first line is a wire dateline ("Washington CNN —").

The first line of an untitled text is taken as its title; a bare dateline there made citations
read "CNN —", which tells a journalist nothing. Such a line is no headline: the lede's first
sentence is the title instead, and the dateline stays in the body, so nothing is lost.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import MakeDesk
from hypothesis import given
from hypothesis import strategies as st

from bot.metadata import HEADLINE_CHARS, split_title

LEDE = "The harbour council approved a 4 million euro budget for the new ferry terminal on Tuesday."
BODY = LEDE + " Mr. Ortega, the council's chair, said work would start in May.\n\nMore text."


@pytest.mark.parametrize(
    "dateline",
    ["CNN —", "Washington CNN —", "New York CNN Business —", "WASHINGTON (AP) —",
     "LONDON, June 5 (Reuters) -", "Kyiv, Ukraine –"],
)  # fmt: skip
def test_a_dateline_is_not_taken_for_the_headline(dateline: str) -> None:
    title, body = split_title(f"{dateline}\n\n{BODY}")
    assert title == LEDE
    assert body.startswith(dateline) and LEDE in body  # the dateline is kept, in the body


@pytest.mark.parametrize(
    "headline",
    ["Turkey buys S-400 systems — again", "Ukraine war: the latest —", "Ferry terminal approved"],
)
def test_a_real_headline_stays_the_title(headline: str) -> None:
    assert split_title(f"{headline}\n{BODY}") == (headline, BODY)


def test_a_long_lede_makes_a_title_cut_at_a_word() -> None:
    lede = "The council " + "met again and " * 20 + "approved it."
    title, _ = split_title(f"CNN —\n{lede} Next sentence.")
    assert len(title) <= HEADLINE_CHARS and title.endswith("and…")


@given(st.text(max_size=300))
def test_no_word_of_the_text_is_lost(text: str) -> None:
    title, body = split_title(text)
    assert all(word in title or word in body for word in text.split())
    assert "\n" not in title.strip()


def test_a_record_without_a_title_is_cited_by_its_lede(tmp_path: Path, make_desk: MakeDesk) -> None:
    record = {"id": "wire-1", "url": "https://news.example/ferry", "text": f"CNN —\n\n{BODY}"}
    archive = tmp_path / "wire.jsonl"
    archive.write_text(json.dumps(record) + "\n", encoding="utf-8")
    desk = make_desk()
    desk.ingestor.ingest([archive])
    answer = desk.ask("What budget did the harbour council approve for the ferry terminal?")
    assert not answer.abstained
    assert answer.citations[0].title == LEDE
    assert desk.store.articles(state="ready")[0].title == LEDE
