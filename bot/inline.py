"""Inline mode: `@bot QUESTION` in any chat offers the cited answer and the best passages as
messages the journalist can send there.

Only allowed users (NEWSDESK_ALLOWED_USERS and admins; a chat allow-list cannot apply, the
query comes from no chat) get results; the access gate answers everyone else with nothing.
Telegram sends a query as the user types, so results are cached per user and question for a
short time, and only a question not in the cache counts against the rate limit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping

from telegram import (
    InlineQueryResultArticle,
    InlineQueryResultsButton,
    InputTextMessageContent,
    LinkPreviewOptions,
    Update,
)
from telegram.constants import ParseMode

from bot import render
from bot.conversation import split_filters
from bot.errors import InputError
from bot.i18n import _, ngettext
from bot.metrics import pseudonym
from bot.models import Answer, Passage
from bot.output import nearest_sources
from bot.services import Context
from bot.viewer import Span, links_for, quote_check

log = logging.getLogger(__name__)

CACHE_SECONDS = 120  # ours and Telegram's (cache_time) for one user's same question
CACHE_ENTRIES = 512
MIN_QUESTION_CHARS = 3
PASSAGES = 2  # besides the answer: up to 3 results
TITLE_CHARS = 100
DESCRIPTION_CHARS = 160
SHORT_ANSWER_CHARS = 2000  # an answer too long for one message, cut to leave room for Sources
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


class ResultCache:
    """(user, question) -> results, for `ttl` seconds, at most `entries` (oldest dropped)."""

    def __init__(self, ttl: float = CACHE_SECONDS, entries: int = CACHE_ENTRIES) -> None:
        self.ttl, self.entries = ttl, entries
        self._items: OrderedDict[tuple[int, str], tuple[float, list[InlineQueryResultArticle]]]
        self._items = OrderedDict()

    def get(self, key: tuple[int, str]) -> list[InlineQueryResultArticle] | None:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        return item[1]

    def put(self, key: tuple[int, str], results: list[InlineQueryResultArticle]) -> None:
        self._items[key] = (time.monotonic() + self.ttl, results)
        self._items.move_to_end(key)
        while len(self._items) > self.entries:
            self._items.popitem(last=False)


def answer_message(answer: Answer, pages: Mapping[int, str]) -> str:
    """An inline result is one message: when the whole answer does not fit in one, its text is
    shortened so that the Sources still come with it."""
    parts = render.answer_html(answer, pages)
    if len(parts) > 1:
        shorter = dataclasses.replace(answer, text=render.short(answer.text, SHORT_ANSWER_CHARS))
        parts = render.answer_html(shorter, pages)
    return parts[0]


def answer_result(answer: Answer, pages: Mapping[int, str]) -> InlineQueryResultArticle:
    text = answer_message(answer, pages)
    sources = len({c.article_id for c in answer.citations})
    title = (
        _(answer.text)
        if answer.abstained
        else ngettext("Answer with {n} source", "Answer with {n} sources", sources).format(
            n=sources
        )
    )
    text_shown = _(answer.text) if answer.abstained else answer.text
    return InlineQueryResultArticle(
        id="answer",
        title=render.short(title, TITLE_CHARS),
        description=render.short(text_shown, DESCRIPTION_CHARS),
        input_message_content=InputTextMessageContent(
            text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
        ),
    )


def passage_result(i: int, passage: Passage, page: str) -> InlineQueryResultArticle:
    text = render.short_quote(" ".join(passage.chunk.text.split()))
    title = render.link(passage.title, page or passage.url)
    # A title, its outlet and date, and at most QUOTE_CHARS of text: always one message.
    html_text = render.pack(
        [
            f"{title}{render.meta_html(passage.source, passage.published)}\n"
            f"<blockquote>{render.esc(text)}</blockquote>"
        ]
    )[0]
    return InlineQueryResultArticle(
        id=f"passage-{i}",
        title=render.short(passage.title, TITLE_CHARS) or _("(untitled)"),
        description=render.short(text, DESCRIPTION_CHARS),
        input_message_content=InputTextMessageContent(
            html_text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
        ),
    )


def results_for(answer: Answer, context: Context) -> list[InlineQueryResultArticle]:
    """The cited answer (or the abstention), then the best passages of other articles."""
    viewer = context.bot_data.viewer
    results = [answer_result(answer, links_for(viewer, answer.citations))]
    for i, passage in enumerate(nearest_sources(answer.passages, PASSAGES), 1):
        chunk = passage.chunk
        page = ""
        if viewer is not None:
            spans = [Span(1, chunk.start, chunk.end)]
            page = viewer.page_url(chunk.article_id, spans, quote_check([chunk.text])) + "#c1"
        results.append(passage_result(i, passage, page))
    return results


class InlineAnswers:
    """The inline query handler, with its cache."""

    def __init__(self, cache: ResultCache | None = None) -> None:
        self.cache = cache or ResultCache()

    async def on_inline_query(self, update: Update, context: Context) -> None:
        """@bot QUESTION: up to 3 sendable results for an allowed user (the gate refused others)."""
        query = update.inline_query
        if query is None:
            return
        text = " ".join(query.query.split())
        if len(text) < MIN_QUESTION_CHARS:
            await query.answer([], cache_time=0, is_personal=True)
            return
        key = (query.from_user.id, text)
        results = self.cache.get(key)
        if results is None:
            svc = context.bot_data
            try:
                question, filters = split_filters(text, as_of=dt.datetime.now(dt.UTC).date())
            except InputError as exc:
                await query.answer([], cache_time=0, is_personal=True, button=notice(str(exc)))
                return
            wait = svc.limiter.wait(query.from_user.id)
            if wait:
                button = notice(
                    _("Slow down: ask again in {seconds} s").format(seconds=f"{wait:.0f}")
                )
                await query.answer([], cache_time=0, is_personal=True, button=button)
                return
            svc.metrics.questions.inc()
            await asyncio.wrap_future(svc.desk.loading())  # loading since launch
            answer = await asyncio.to_thread(svc.desk.ask, question, filters)
            (svc.metrics.abstentions if answer.abstained else svc.metrics.answers).inc()
            results = results_for(answer, context)
            self.cache.put(key, results)
            log.info(
                "inline question user=%s abstained=%s results=%d%s",
                pseudonym(query.from_user.id),
                str(answer.abstained).lower(),
                len(results),
                f" text={question!r}" if svc.settings.log_questions else "",
            )
        await query.answer(results, cache_time=CACHE_SECONDS, is_personal=True)


def notice(text: str) -> InlineQueryResultsButton:
    """A line above the (empty) results; tapping it opens the bot's private chat."""
    return InlineQueryResultsButton(text=render.short(text, 64), start_parameter="inline")
