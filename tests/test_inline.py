"""Inline mode and page links through the real bot: PTB over HTTP against the fake Telegram
server, the seeded desk behind it, pages fetched from the bot's own web server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio
from botkit import ANY_PORT, JOURNALISTS, buttons, running_bot, services_of, settled
from fake_telegram import FakeTelegram
from telegram import Bot, InlineQueryResultArticle, InputTextMessageContent
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import Application

from bot.desk import Desk

S400 = "Why would the EU buy Russian S-400 systems from Turkey?"
SECRET = "inline-test-secret-" + "x" * 20
USER, ADMIN, STRANGER = JOURNALISTS[5], 9001, 666
PUBLIC = "http://newsdesk.test/newsdesk"  # as behind a proxy; the bot serves on a free port


class Marks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.by_n: dict[int, str] = {}
        self.open: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "mark":
            self.open = [int(n) for n in str(dict(attrs).get("data-c")).split()]

    def handle_endtag(self, tag: str) -> None:
        if tag == "mark":
            self.open = []

    def handle_data(self, data: str) -> None:
        for n in self.open:
            self.by_n[n] = self.by_n.get(n, "") + data


@pytest_asyncio.fixture(loop_scope="session")
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def bot_app(tg: FakeTelegram, seeded: Desk) -> AsyncIterator[Application]:
    async with running_bot(
        tg,
        seeded,
        admins=[ADMIN],
        health_port=ANY_PORT,
        public_url=PUBLIC,
        viewer_secret=SECRET,
        rate_limit_per_minute=2,
    ) as application:
        yield application


def asked(app: Application) -> float:
    return services_of(app).metrics.registry.get_sample_value("newsdesk_questions_total") or 0.0


def links(entry: dict[str, Any]) -> list[str]:
    return [e["url"] for e in entry["entities"] if e["type"] == "text_link"]


async def highlights(url: str, app: Application) -> tuple[int, dict[int, str], str]:
    """Fetch a page of the public URL from the bot's web server, as the proxy in front of it
    would: status, highlighted text by [n], body."""
    svc = services_of(app)
    assert svc.health is not None and url.startswith(svc.settings.public_url + "/")
    local = f"http://127.0.0.1:{svc.health.port}{urlsplit(url).path}"
    async with aiohttp.ClientSession() as session, session.get(local) as response:
        body = await response.text()
        marks = Marks()
        marks.feed(body)
        return response.status, marks.by_n, body


async def test_inline_answer_is_cited_shareable_and_its_pages_highlight_the_quotes(
    tg: FakeTelegram, bot_app: Application
) -> None:
    svc = services_of(bot_app)
    public = svc.settings.public_url
    query_id = tg.send_inline_query(USER, S400)
    answer = await tg.wait_inline_answer(query_id)
    results = answer["results"]
    assert 1 < len(results) <= 3 and results[0]["id"] == "answer"
    assert answer["is_personal"] in (True, "true") and int(answer["cache_time"]) > 0
    first = results[0]
    assert "[1]" in first["text"] and "Sources" in first["text"]
    # Every citation [n] of the answer links to its article page, scrolled to quote n.
    stored = svc.desk.ask(S400)
    pages = [u for u in links(first) if u.startswith(public + "/a/")]
    assert {u.rsplit("#c", 1)[1] for u in pages} >= {str(c.n) for c in stored.citations}
    for c in stored.citations:
        url = next(u for u in pages if u.endswith(f"#c{c.n}"))
        status, marks, _ = await highlights(url, bot_app)
        assert status == 200 and marks[c.n] == c.quote
    # The passages: each opens its article with the passage highlighted.
    for passage in results[1:]:
        url = next(u for u in links(passage) if u.startswith(public))
        status, marks, _ = await highlights(url, bot_app)
        assert status == 200 and " ".join(marks[1].split())[:80] in " ".join(
            passage["text"].split()
        )
    # Sent into another chat, the message is the cited answer with working links.
    shared = tg.choose_inline_result(USER, -5005, query_id, "answer")
    assert shared["via_bot"]["id"] == bot_app.bot.id and shared["text"] == first["text"]


async def test_strangers_get_nothing_and_the_desk_is_not_asked(
    tg: FakeTelegram, bot_app: Application
) -> None:
    questions = asked(bot_app)
    query_id = tg.send_inline_query(STRANGER, S400)
    answer = await tg.wait_inline_answer(query_id)
    assert answer["results"] == [] and answer.get("button") is None
    await settled(tg, bot_app, tg.last_update_id)
    assert asked(bot_app) == questions
    assert not [s for s in tg.sent if s["chat_id"] == STRANGER]


async def test_typing_the_same_question_is_cached_and_the_rate_limit_applies(
    tg: FakeTelegram, bot_app: Application
) -> None:
    before = asked(bot_app)
    first = await tg.wait_inline_answer(tg.send_inline_query(ADMIN, "Who is Thomas Barak?"))
    again = await tg.wait_inline_answer(tg.send_inline_query(ADMIN, " Who is  Thomas Barak? "))
    assert first["results"] and again["results"] == first["results"]
    assert asked(bot_app) == before + 1  # the second came from the cache
    # The limit is 2 a minute: a second new question passes, the third is refused with a notice.
    await tg.wait_inline_answer(tg.send_inline_query(ADMIN, "What did Ankara say?"))
    refused = await tg.wait_inline_answer(tg.send_inline_query(ADMIN, "Who won the vote?"))
    assert refused["results"] == [] and "Slow down" in refused["button"]["text"]
    bad = await tg.wait_inline_answer(tg.send_inline_query(ADMIN, "Who? since:2025-13-45"))
    assert bad["results"] == [] and "is not a date" in bad["button"]["text"]


async def test_chat_answers_link_sources_and_quotes_to_the_pages(
    tg: FakeTelegram, bot_app: Application
) -> None:
    public = services_of(bot_app).settings.public_url
    start = len(tg.sent)
    question = tg.send_text(USER, S400)
    reply = await tg.wait_for(
        lambda e: e["reply_to_message_id"] == question["message_id"], start=start
    )
    source_links = [u for u in links(reply) if u.startswith(public + "/a/")]
    assert source_links
    start = len(tg.sent)
    tg.press_button(USER, reply["message_id"], buttons(reply)["Quotes"])
    quotes = await tg.wait_for(lambda e: "Quotes" in e["text"], start=start)
    quote_links = [u for u in links(quotes) if u.startswith(public + "/a/")]
    answer = services_of(bot_app).desk.ask(S400)
    assert len(quote_links) == len(answer.citations)  # one per quote
    for c, url in zip(answer.citations, quote_links, strict=True):
        assert url.endswith(f"#c{c.n}")
        status, marks, _ = await highlights(url, bot_app)
        assert status == 200 and marks[c.n] == c.quote
    # A link with one character changed is refused, and shows nothing of the article.
    url = quote_links[0].split("#")[0]
    i = url.rindex(".") - 3
    modified = url[:i] + ("A" if url[i] != "A" else "B") + url[i + 1 :]
    status, marks, body = await highlights(modified, bot_app)
    assert status == 403 and not marks and "S-400" not in body


async def test_the_fake_server_validates_inline_answers_like_telegram(tg: FakeTelegram) -> None:
    def article(rid: str, text: str = "hello") -> InlineQueryResultArticle:
        content = InputTextMessageContent(text, parse_mode=ParseMode.HTML)
        return InlineQueryResultArticle(rid, "title", content)

    async with Bot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url) as bot:
        cases = [
            ([article(str(i)) for i in range(51)], "RESULTS_TOO_MUCH"),
            ([article("a"), article("a")], "RESULT_ID_DUPLICATE"),
            ([article("x" * 65)], "RESULT_ID_INVALID"),
            ([article("a", "x" * 4097)], "too long"),
            ([article("a", "<b>open")], "can't parse entities"),
            ([article("a", "Tom & Jerry")], "can't parse entities"),
        ]
        for results, error in cases:
            query_id = tg.send_inline_query(1, "q")
            with pytest.raises(BadRequest, match=f"(?i){error}"):
                await bot.answer_inline_query(query_id, results)
        query_id = tg.send_inline_query(1, "q")
        assert await bot.answer_inline_query(query_id, [article("a", "<b>fine</b> &amp;")])
        assert tg.inline_answers[query_id]["results"][0]["text"] == "fine &"
        with pytest.raises(BadRequest, match=r"(?i)query is too old"):  # answered once only
            await bot.answer_inline_query(query_id, [])
        await asyncio.sleep(0)


def test_an_answer_too_long_for_one_message_is_shortened_not_cut_off() -> None:
    from fake_telegram import MAX_TEXT, parse_html, utf16_len

    from bot.inline import answer_message
    from bot.models import Answer, Citation

    quote = "A sentence of a long quote & more. " * 40
    citations = [
        Citation(n, f"{n:016x}", f"Title {n}", "Outlet", None, "", quote, 0, len(quote))
        for n in range(1, 6)
    ]
    answer = Answer("q", " ".join(f"{quote} [{n}]" for n in range(1, 6)), citations, False)
    pages = {n: f"https://x.org/a/t{n}#c{n}" for n in range(1, 6)}
    text, entities = parse_html(answer_message(answer, pages))
    assert utf16_len(text) <= MAX_TEXT and "Sources" in text
    assert {e["url"] for e in entities if e["type"] == "text_link"} >= set(pages.values())
