"""End to end: real python-telegram-bot against the fake Bot API server, real desk behind it."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from botkit import JOURNALISTS, buttons, running_bot, services_of, settled
from conftest import MakeDesk
from fake_telegram import FakeTelegram, parse_html
from telegram import Bot
from telegram.constants import ParseMode
from telegram.ext import Application

from bot import render
from bot.desk import Desk
from bot.models import Answer, Citation
from bot.sending import reply as send_html
from bot.services import UserLimiter

pytestmark = pytest.mark.asyncio(loop_scope="session")
S400 = "Why would the EU buy Russian S-400 systems from Turkey?"
USER = JOURNALISTS[0]


@pytest_asyncio.fixture(loop_scope="session")
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def app(tg: FakeTelegram, seeded: Desk) -> AsyncIterator[Application]:
    async with running_bot(tg, seeded, allowed_chats=[-1001]) as application:
        yield application


def answer_to(question: dict, entry: dict) -> bool:
    return entry["chat_id"] == question["chat"]["id"] and (
        entry["reply_to_message_id"] == question["message_id"]
    )


async def test_private_question_gets_a_cited_answer(tg: FakeTelegram, app: Application) -> None:
    assert {c["command"] for c in tg.commands} >= {"ask", "search", "sources", "help", "start"}
    start = len(tg.sent)
    question = tg.send_text(USER, S400)
    reply = await tg.wait_for(lambda e: answer_to(question, e), start=start)
    assert "[1]" in reply["text"] and "Sources" in reply["text"]
    assert "EU Considers Buying Russian S-400" in reply["text"]
    assert set(buttons(reply)) == {"Quotes", "👍", "👎"}
    assert (USER, "typing") in tg.chat_actions
    # The quotes button: each quote verbatim in a blockquote with its [n].
    start = len(tg.sent)
    tg.press_button(USER, reply["message_id"], buttons(reply)["Quotes"])
    quotes = await tg.wait_for(
        lambda e: e["chat_id"] == USER and "Quotes" in e["text"], start=start
    )
    assert any(e["type"] == "blockquote" for e in quotes["entities"])
    corpus_text = next(Path(services_of(app).desk.corpus.root).rglob("*s-400*.md")).read_text()
    stored = services_of(app).journal.answer(int(buttons(reply)["Quotes"].split(":")[1]))
    assert stored is not None and stored.citations
    for c in stored.citations:
        assert c.quote in corpus_text and f"[{c.n}] {c.quote}" in quotes["text"]
    # Feedback is stored without the question or the answer (NEWSDESK_JOURNAL_TEXT is off).
    pressed = tg.press_button(USER, reply["message_id"], buttons(reply)["👎"])
    assert (await tg.wait_answered(pressed)).get("text") == "Thanks, we will look into it."
    votes = services_of(app).journal.votes()
    assert votes[-1][1:] == (USER, -1, "", "")


FOLLOW_UP = "and how much did they pay?"  # alone, the corpus does not answer it


async def test_follow_up_question_stays_on_the_story(tg: FakeTelegram, app: Application) -> None:
    user = JOURNALISTS[1]
    alone = tg.send_text(user, FOLLOW_UP)
    assert "does not answer" in (await tg.wait_for(lambda e: answer_to(alone, e)))["text"]
    first = tg.send_text(user, S400)
    await tg.wait_for(lambda e: answer_to(first, e))
    follow = tg.send_text(user, FOLLOW_UP)
    reply = await tg.wait_for(lambda e: answer_to(follow, e))
    assert "$2.5 billion" in reply["text"] and "Sources" in reply["text"]


async def test_in_a_group_a_follow_up_continues_its_own_asker(
    tg: FakeTelegram, app: Application
) -> None:
    group, asker, other = -1001, 556, 557  # both allowed through the group's id
    kw = {"chat_id": group, "chat_type": "supergroup"}
    first = tg.send_text(asker, f"/ask {S400}", **kw)
    await tg.wait_for(lambda e: answer_to(first, e))
    theirs = tg.send_text(other, f"/ask {FOLLOW_UP}", **kw)
    assert "does not answer" in (await tg.wait_for(lambda e: answer_to(theirs, e)))["text"]
    mine = tg.send_text(asker, f"/ask {FOLLOW_UP}", **kw)
    assert "$2.5 billion" in (await tg.wait_for(lambda e: answer_to(mine, e)))["text"]


async def test_filters_in_the_question(tg: FakeTelegram, app: Application) -> None:
    q = tg.send_text(JOURNALISTS[2], f"{S400} source:Reuters")
    reply = await tg.wait_for(lambda e: answer_to(q, e))
    assert "does not answer" in reply["text"]
    bad = tg.send_text(JOURNALISTS[2], "Who? since:yesterday")
    reply = await tg.wait_for(lambda e: answer_to(bad, e))
    assert "since:YYYY-MM-DD" in reply["text"]


async def test_group_answers_only_mentions_replies_and_ask(
    tg: FakeTelegram, app: Application
) -> None:
    group, user = -1001, 555  # user 555 is allowed through the chat's id
    chatter = tg.send_text(user, "lunch at one?", chat_id=group, chat_type="supergroup")
    mention = tg.send_text(
        user, f"@newsdesk_test_bot {S400}", chat_id=group, chat_type="supergroup"
    )
    answer = await tg.wait_for(lambda e: answer_to(mention, e))
    assert "Sources" in answer["text"]
    reply = tg.send_text(
        user,
        "How much did Turkey pay for the S-400?",
        chat_id=group,
        chat_type="supergroup",
        reply_to_message_id=answer["message_id"],
    )
    assert "2.5" in (await tg.wait_for(lambda e: answer_to(reply, e)))["text"]
    ask = tg.send_text(
        user, "/ask What did Thomas Barak urge Turkey to do?", chat_id=group, chat_type="supergroup"
    )
    assert "abandon" in (await tg.wait_for(lambda e: answer_to(ask, e)))["text"]
    more_chatter = tg.send_text(
        user, "what about the S-400 then", chat_id=group, chat_type="supergroup"
    )
    await settled(tg, app, tg.last_update_id)
    answered = {e["reply_to_message_id"] for e in tg.sent if e["chat_id"] == group}
    assert chatter["message_id"] not in answered and more_chatter["message_id"] not in answered


async def test_unknown_user_is_refused_with_their_id(tg: FakeTelegram, app: Application) -> None:
    q = tg.send_text(999, S400)
    reply = await tg.wait_for(lambda e: answer_to(q, e))
    assert "999" in reply["text"] and "admin" in reply["text"]
    assert "S-400" not in reply["text"] and "Sources" not in reply["text"]


async def test_rate_limit_says_slow_down(tg: FakeTelegram, app: Application) -> None:
    svc = services_of(app)
    svc.limiter, normal = UserLimiter(2), svc.limiter
    try:
        user = JOURNALISTS[3]
        asked = [
            tg.send_text(user, "How many pilgrims died in the Hajj stampede?") for _ in range(3)
        ]
        replies = [await tg.wait_for(lambda e, q=q: answer_to(q, e)) for q in asked]
    finally:
        svc.limiter = normal
    slow = [r for r in replies if r["text"].startswith("Slow down")]
    assert len(slow) == 1 and " s." in slow[0]["text"]


async def test_twenty_users_at_once_all_get_answers(tg: FakeTelegram, app: Application) -> None:
    users = JOURNALISTS[10:30]
    questions = [tg.send_text(u, "How much did Turkey pay Russia for the S-400?") for u in users]
    replies = [await tg.wait_for(lambda e, q=q: answer_to(q, e), timeout=90) for q in questions]
    assert all("$2.5 billion" in r["text"] for r in replies)


async def test_429_is_retried_and_the_answer_arrives_once(
    tg: FakeTelegram, app: Application
) -> None:
    user = JOURNALISTS[4]
    tg.fail_next("sendMessage", status=429, retry_after=1)
    q = tg.send_text(user, S400)
    await tg.wait_for(lambda e: answer_to(q, e))
    await settled(tg, app, tg.last_update_id)
    assert len([e for e in tg.sent if answer_to(q, e)]) == 1


async def test_errors_get_an_apology_and_the_bot_keeps_running(
    tg: FakeTelegram, make_desk: MakeDesk
) -> None:
    desk = make_desk()
    async with running_bot(tg, desk):
        desk.store.close()  # a real failure inside answering: the index database is gone
        q = tg.send_text(USER, S400)
        reply = await tg.wait_for(lambda e: answer_to(q, e))
        assert reply["text"].startswith("Sorry, something went wrong") and "error" in reply["text"]
        help_ = tg.send_text(USER, "/help")
        assert "since:" in (await tg.wait_for(lambda e: answer_to(help_, e)))["text"]


async def test_html_in_articles_is_escaped(
    tg: FakeTelegram, make_desk: MakeDesk, tmp_path: Path
) -> None:
    desk = make_desk()
    record = {
        "title": "Tags <b>& ampersands</b> in a <script> headline",
        "source": "A&B <News>",
        "url": "https://example.org/a?b=1&c=<2>",
        "text": "The <i>tagged</i> report said 3 < 4 && 5 > 2 for the R&D budget of <Acme>. "
        "It also said the R&D budget grew by 7 % to <unknown> levels in the year.",
    }
    src = tmp_path / "tags.jsonl"
    src.write_text(json.dumps(record), encoding="utf-8")
    desk.ingestor.ingest([src])
    async with running_bot(tg, desk):
        q = tg.send_text(USER, "What did the report say about the R&D budget of <Acme>?")
        reply = await tg.wait_for(lambda e: answer_to(q, e))
        assert "3 < 4 && 5 > 2" in reply["text"] and "A&B <News>" in reply["text"]
        link = next(e for e in reply["entities"] if e["type"] == "text_link")
        assert link["url"] == record["url"]


async def test_long_answers_are_split_within_limits(tg: FakeTelegram, app: Application) -> None:
    quote = "A long sentence with <tags> & ampersands that goes on and on. " * 15
    citations = [
        Citation(n, f"a{n:03}", f"Title {n} <x>", "Outlet & Co", None, "https://e.x/", quote, 0, 9)
        for n in range(1, 41)
    ]
    answer = Answer("q", " ".join(f"{c.quote} [{c.n}]" for c in citations), citations, False)
    parts = render.answer_html(answer) + render.quotes_html(citations)
    assert len(parts) > 3
    for part in parts:
        text, _ = parse_html(part)
        assert len(text.encode("utf-16-le")) // 2 <= 4096
    # And Telegram (the fake, which refuses >4096 and bad markup) accepts every part in order.
    tg.send_text(USER, "hello there")  # makes the chat known
    async with Bot(tg.token, base_url=tg.base_url) as bot:
        message = await bot.send_message(USER, "anchor")
        start = len(tg.sent)
        await send_html(message, parts)
    # (the bot may still be answering "hello there" in the same chat: match by content)
    sent = [e for e in tg.sent[start:] if e["chat_id"] == USER and e["html"] in parts]
    assert len(sent) == len(parts)
    assert all(e["html"] == p for e, p in zip(sent, parts, strict=True))


async def test_refused_markup_is_resent_as_plain_text_once(
    tg: FakeTelegram, app: Application
) -> None:
    async with Bot(tg.token, base_url=tg.base_url) as bot:
        tg.send_text(USER, "hi")
        message = await bot.send_message(USER, "anchor", parse_mode=ParseMode.HTML)
        start_calls = len(tg.calls)
        await send_html(message, ["<b>unclosed tag & friends"])
    calls = [p for m, p in tg.calls[start_calls:] if m.lower() == "sendmessage"]
    assert len(calls) == 2
    assert calls[0].get("parse_mode") == "HTML" and not calls[1].get("parse_mode")
    assert tg.sent[-1]["text"] == "unclosed tag & friends"


async def test_search_shows_passages_with_scores(tg: FakeTelegram, app: Application) -> None:
    user = JOURNALISTS[7]
    q = tg.send_text(user, "/search S-400 Turkey source:nobody")
    assert "No passages match" in (await tg.wait_for(lambda e: answer_to(q, e)))["text"]
    q = tg.send_text(user, "/search S-400 Turkey")
    reply = await tg.wait_for(lambda e: answer_to(q, e))
    assert "Top passages for S-400 Turkey" in reply["text"] and "cosine" in reply["text"]
    assert "1. EU Considers Buying Russian S-400" in reply["text"]
    empty = tg.send_text(user, "/search")
    assert "/search S-400 Turkey" in (await tg.wait_for(lambda e: answer_to(empty, e)))["text"]


async def test_sources_are_listed_newest_first_with_paging(
    tg: FakeTelegram, app: Application
) -> None:
    user = JOURNALISTS[8]
    q = tg.send_text(user, "/sources")
    first = await tg.wait_for(lambda e: answer_to(q, e))
    assert "44 articles, page 1/5" in first["text"] and set(buttons(first)) == {"Older ▶"}
    dates = re.findall(r", (\d{4}-\d{2}-\d{2})", first["text"])
    assert len(dates) == 10 and dates == sorted(dates, reverse=True) and dates[0] == "2023-02-23"
    start = len(tg.sent)
    tg.press_button(user, first["message_id"], buttons(first)["Older ▶"])
    second = await tg.wait_for(lambda e: e["message_id"] == first["message_id"], start=start)
    assert "page 2/5" in second["text"] and set(buttons(second)) == {"◀ Newer", "Older ▶"}
    assert "11. " in second["text"]
    q = tg.send_text(user, "/sources 99")  # past the end: the last page, not an empty one
    last = await tg.wait_for(lambda e: answer_to(q, e))
    assert "page 5/5" in last["text"] and set(buttons(last)) == {"◀ Newer"}
    assert re.findall(r"^(\d+)\. ", last["text"], re.M) == ["41", "42", "43", "44"]


async def test_5xx_is_retried_with_backoff(tg: FakeTelegram, app: Application) -> None:
    user = JOURNALISTS[9]
    tg.fail_next("sendMessage", status=502, times=2)
    q = tg.send_text(user, S400)
    reply = await tg.wait_for(lambda e: answer_to(q, e))
    assert "Sources" in reply["text"]
    await settled(tg, app, tg.last_update_id)
    assert len([e for e in tg.sent if answer_to(q, e)]) == 1
