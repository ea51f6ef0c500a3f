"""The one answer pipeline: the same answer from Telegram and the CLI, the as-of date, verify."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from botkit import JOURNALISTS, running_bot
from conftest import MakeDesk, run_cli
from fake_telegram import FakeTelegram

from bot.answer import ExtractiveComposer
from bot.desk import Desk
from bot.models import Answer, Citation, Filters, Passage
from bot.pipeline import AnswerPipeline, Request

S400 = "Why would the EU buy Russian S-400 systems from Turkey?"


def cited(answer: Answer) -> list[tuple[str, str]]:
    return [(c.article_id, c.quote) for c in answer.citations]


@pytest.mark.asyncio(loop_scope="session")
async def test_telegram_and_the_cli_give_the_same_citations(
    seeded: Desk, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEWSDESK_CORPUS_DIR", str(seeded.settings.corpus_dir))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(seeded.settings.index_dir))
    async with FakeTelegram() as tg, running_bot(tg, seeded):
        question = tg.send_text(JOURNALISTS[5], S400)
        reply = await tg.wait_for(
            lambda e: (
                e["chat_id"] == question["chat"]["id"]
                and e["reply_to_message_id"] == question["message_id"]
            )
        )
    as_of = dt.datetime.fromtimestamp(question["date"], dt.UTC).date().isoformat()
    code, out, _ = run_cli(["ask", S400, "--as-of", as_of, "--json"], capsys)
    assert code == 0
    from_cli = json.loads(out)
    assert from_cli["citations"], "the seeded corpus answers this question"
    # Every quote the CLI cites is in the Telegram answer, in the same order.
    text = reply["text"]
    positions = [text.find(" ".join(c["quote"].split())[:60]) for c in from_cli["citations"]]
    assert all(p >= 0 for p in positions) and positions == sorted(positions)


def test_ask_uses_an_explicit_as_of_date(seeded: Desk) -> None:
    """Recency is relative to the as-of date: the same question on two dates can rank
    differently, and `ask` without a date means today (not "no date")."""
    today = seeded.ask(S400)
    explicit = seeded.ask(S400, as_of=dt.date.today())
    assert cited(today) == cited(explicit)


class Forger:
    """A composer that cites a quote the article does not contain (a bug or a lying model)."""

    def __init__(self, real: ExtractiveComposer) -> None:
        self.real = real

    def compose(
        self,
        question: str,
        vector: np.ndarray,
        passages: list[Passage],
        as_of: dt.date | None = None,
    ) -> Answer:
        answer = self.real.compose(question, vector, passages, as_of)
        forged = answer.citations[0]
        answer.citations[0] = Citation(
            **{**forged.__dict__, "quote": "Turkey refused, sources say."}
        )
        return answer

    async def astream(
        self,
        question: str,
        vector: np.ndarray,
        passages: list[Passage],
        as_of: dt.date | None = None,
    ) -> AsyncIterator[str | Answer]:
        yield self.compose(question, vector, passages, as_of)

    def rewrite(self, history: list[str], question: str) -> str:
        return question


def test_verify_never_shows_a_quote_that_is_not_in_the_article(seeded: Desk) -> None:
    assert not seeded.ask(S400).abstained
    extractive = ExtractiveComposer(seeded.embedder, min_relevance=seeded.settings.min_relevance)
    forging = AnswerPipeline(seeded.retriever, seeded.reranker, Forger(extractive))
    answer = forging.invoke(Request(S400, dt.date.today()))
    assert answer.abstained and not answer.citations


async def test_astream_verifies_too(seeded: Desk) -> None:
    extractive = ExtractiveComposer(seeded.embedder, min_relevance=seeded.settings.min_relevance)
    forging = AnswerPipeline(seeded.retriever, seeded.reranker, Forger(extractive))
    items = [x async for x in forging.astream(Request(S400, dt.date.today()))]
    assert len(items) == 1 and isinstance(items[0], Answer) and items[0].abstained


BREAKWATER = (
    "---\ntitle: Harbour board approves breakwater\nsource: Port Herald\n"
    "published: 2024-05-01\n---\n\n"
    "The harbour board approved a 400-metre breakwater on Tuesday after two years of debate. "
    "Work on the breakwater will start in the spring, the board's chair, Ines Alder, said. "
    "The breakwater will cost 12 million euros and protect the fishing fleet from storms.\n"
)


def test_a_this_week_question_after_the_archive_is_refused(
    make_desk: MakeDesk, tmp_path: Path
) -> None:
    source = tmp_path / "breakwater.md"
    source.write_text(BREAKWATER)
    desk = make_desk()
    assert not desk.ingestor.ingest([source]).failed
    question = "What did the harbour board approve this week?"
    fresh = desk.ask(question, as_of=dt.date(2024, 5, 3))
    assert not fresh.abstained and "breakwater" in fresh.text and not fresh.note
    later = desk.ask(question, as_of=dt.date(2024, 5, 10))
    assert not later.abstained and "9 days older than 2024-05-10" in later.note
    stale = desk.ask(question, as_of=dt.date(2024, 8, 1))
    assert stale.abstained and not stale.citations
    # Without "this week" the question is about the archive: old evidence answers it.
    timeless = desk.ask("What did the harbour board approve?", as_of=dt.date(2024, 8, 1))
    assert not timeless.abstained and not timeless.note
    # Nor do words that only sound new: a name, or what was announced back then.
    for asked in (
        "What breakwater was announced by the harbour board?",
        "What will the new breakwater cost?",
    ):
        old_news = desk.ask(asked, as_of=dt.date(2024, 8, 1))
        assert not old_news.abstained and not old_news.note, asked


def test_eval_and_ask_agree(
    seeded: Desk,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("NEWSDESK_CORPUS_DIR", str(seeded.settings.corpus_dir))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(seeded.settings.index_dir))
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "a", "question": S400, "date": "2024-03-01"}) + "\n")
    out = tmp_path / "out.jsonl"
    code, _, _ = run_cli(["eval", str(questions), "--out", str(out)], capsys)
    assert code == 0
    row = json.loads(out.read_text())
    code, printed, _ = run_cli(["ask", S400, "--as-of", "2024-03-01", "--json"], capsys)
    assert code == 0
    assert [c["quote"] for c in row["citations"]] == [
        c["quote"] for c in json.loads(printed)["citations"]
    ]
    answer = seeded.ask(S400, Filters(), as_of=dt.date(2024, 3, 1))
    assert [c["quote"] for c in row["citations"]] == [c.quote for c in answer.citations]


def test_the_pipeline_needs_no_vector_from_its_callers(make_desk: MakeDesk) -> None:
    """An empty index: the pipeline abstains (nothing retrieved), it does not fail."""
    desk = make_desk()
    answer = desk.ask("Who won?", as_of=dt.date(2024, 1, 1))
    assert answer.abstained and answer.query == "Who won?"
