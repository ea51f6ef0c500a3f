"""With a language model configured: answers stream into Telegram, then carry verified sources."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from botkit import JOURNALISTS, buttons, running_bot
from conftest import settings_for
from fake_openai import FakeOpenAI, Reply
from fake_telegram import FakeTelegram

from bot.desk import Desk
from bot.embed import Embedder
from bot.llm import UNAVAILABLE_NOTE

pytestmark = pytest.mark.asyncio(loop_scope="session")
USER = JOURNALISTS[6]
S400 = "Why would the EU buy Russian S-400 systems from Turkey?"
ANSWER = (
    "The EU would use funds already set aside for military aid to Ukraine to buy the S-400 "
    "batteries from Ankara [1]. The idea is to help Turkey resolve its conflict with the "
    "United States, which expelled it from the F-35 programme [2]."
)


@pytest_asyncio.fixture(loop_scope="session")
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def llm_desk(seeded: Desk, embedder: Embedder, llm: FakeOpenAI, timeout: float = 60) -> Desk:
    settings = settings_for(
        seeded.settings.corpus_dir.parent,
        llm_base_url=llm.url,
        llm_model="fake-model",
        llm_timeout=timeout,
    )
    return Desk(settings, embedder=embedder)


async def test_answer_streams_then_shows_verified_sources(
    tg: FakeTelegram, seeded: Desk, embedder: Embedder, llm: FakeOpenAI
) -> None:
    llm.push(Reply(ANSWER, chunk_words=3, chunk_delay=0.12))
    async with running_bot(tg, llm_desk(seeded, embedder, llm)):
        start = len(tg.sent)
        q = tg.send_text(USER, S400)
        final = await tg.wait_for(
            lambda e: e["chat_id"] == USER and "Sources" in e["text"], start=start, timeout=60
        )
    mine = [e for e in tg.sent[start:] if e["chat_id"] == USER]
    first = mine[0]
    assert first["method"] == "sendMessage" and first["reply_to_message_id"] == q["message_id"]
    assert first["text"].endswith("…") and "Sources" not in first["text"]
    edits = [e for e in mine if e["method"] == "editMessageText"]
    assert len(edits) >= 2 and all(e["message_id"] == first["message_id"] for e in edits)
    # The final edit is the verified answer: fluent text, [n] markers, sources and buttons.
    assert final is edits[-1] and "Ankara [1]" in final["text"] and "[2]" in final["text"]
    assert set(buttons(final)) == {"Quotes", "👍", "👎"}
    assert "EU Considers Buying Russian S-400" in final["text"]
    assert llm.requests[-1]["stream"] is True


async def test_model_failure_falls_back_to_the_extractive_answer(
    tg: FakeTelegram, seeded: Desk, embedder: Embedder, llm: FakeOpenAI
) -> None:
    llm.push(Reply(status=500), Reply(status=500))
    async with running_bot(tg, llm_desk(seeded, embedder, llm, timeout=2)):
        start = len(tg.sent)
        tg.send_text(USER, "How much did Turkey pay Russia for the S-400?")
        final = await tg.wait_for(
            lambda e: e["chat_id"] == USER and "Sources" in e["text"], start=start, timeout=60
        )
    assert "$2.5 billion" in final["text"] and "extractive" in final["text"]


async def test_a_trickling_model_gets_the_extractive_answer_within_the_deadline(
    tg: FakeTelegram, seeded: Desk, embedder: Embedder, llm: FakeOpenAI
) -> None:
    """A byte every 50 ms: every read succeeds, the answer would take minutes. The user gets
    the extractive answer, with its note, soon after NEWSDESK_LLM_TIMEOUT (here 1.5 s)."""
    llm.push(Reply(ANSWER, byte_delay=0.05))
    async with running_bot(tg, llm_desk(seeded, embedder, llm, timeout=1.5)):
        start = len(tg.sent)
        started = time.monotonic()
        tg.send_text(USER, "How much did Turkey pay Russia for the S-400?")
        final = await tg.wait_for(
            lambda e: e["chat_id"] == USER and "Sources" in e["text"], start=start, timeout=90
        )
        took = time.monotonic() - started
    assert took < 30, took  # the deadline plus a loaded machine's margin; the reply takes minutes
    assert "$2.5 billion" in final["text"] and UNAVAILABLE_NOTE in final["text"]
    assert len(llm.requests) == 1 and llm.requests[0]["stream"] is True
