"""Thin async Telegram callbacks. Model and store calls run in threads, never on the loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from limits import parse as parse_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from telegram import (
    BotCommand,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import ContextTypes

from bot import render
from bot.config import Settings
from bot.conversation import Conversation, FilterError, split_filters
from bot.desk import Desk
from bot.journal import Journal
from bot.llm import stream_answer
from bot.metrics import HealthServer, Metrics, pseudonym
from bot.models import Answer, Filters, Passage

log = logging.getLogger(__name__)

COMMANDS = [
    BotCommand("ask", "Ask a question about the corpus"),
    BotCommand("search", "Show the best-matching passages"),
    BotCommand("sources", "Articles in the corpus, newest first"),
    BotCommand("help", "Commands and filters"),
    BotCommand("start", "What this bot does"),
]
ADMIN_COMMANDS = [
    BotCommand("add", "Add a web page (URL) or pasted text"),
    BotCommand("docs", "Articles with ids (admins)"),
    BotCommand("doc", "One article's metadata and first lines"),
    BotCommand("remove", "Remove an article (asks to confirm)"),
    BotCommand("stats", "Corpus and index statistics"),
    BotCommand("audit", "Latest admin actions"),
]
START_TEXT = (
    "<b>Newsdesk</b> answers questions from this newsroom's own articles. Every statement "
    "carries a number [n] that points to a verbatim quote, with the article's title, outlet, "
    "date and link. When the articles do not answer, it says so instead of guessing.\n\n"
    "Just type a question, for example:\n<i>Why would the EU buy S-400 systems from Turkey?</i>"
    "\n\n/help lists the commands and filters."
)
HELP_TEXT = (
    "<b>Asking</b>\n"
    "Type a question in this chat, or use /ask QUESTION (in groups: /ask, mention me, or reply "
    "to one of my messages). Follow-ups such as <i>and what did Ankara say?</i> continue the "
    "previous question.\n\n"
    "<b>Filters</b> (anywhere in the question)\n"
    "<code>since:2025-01-01</code> only articles published on or after that day\n"
    "<code>until:2025-12-31</code> only articles published on or before that day\n"
    '<code>source:Reuters</code> only that outlet (quotes for spaces: <code>source:"AP News"'
    "</code>)\nRecent coverage is preferred: the date of your message counts as “now”.\n\n"
    "<b>Commands</b>\n"
    "/ask QUESTION — a cited answer\n"
    "/search QUERY — the best-matching passages with their scores\n"
    "/sources — the articles in the corpus, newest first\n"
    "/help — this message\n\n"
    "<b>Admins</b>\n"
    "Send a file (txt, md, html, pdf, docx, jsonl; caption lines such as "
    "<code>source: Reuters</code>, <code>date: 2025-11-20</code>, <code>url: …</code> set its "
    "metadata), a link, or forward a message to add it. /add URL or /add TEXT, /docs, /doc ID, "
    "/remove ID, /stats, /audit.\n\n"
    "Under each answer: <b>Quotes</b> shows the quoted passages; 👍/👎 tell us how it went."
)
PAGE_SIZE = 10
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
TYPING_EVERY = 4.0  # Telegram shows "typing…" for about 5 s per chat action
STREAM_EVERY = 1.0  # seconds between edits of a streamed answer (Telegram: ~1 edit/s/chat)
STREAM_CHARS = 3500  # a streamed preview shows at most this much


class UserLimiter:
    """A per-user moving-window limit on questions (the `limits` library)."""

    def __init__(self, per_minute: int) -> None:
        self.rate = parse_limit(f"{max(1, per_minute)}/minute")
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.enabled = per_minute > 0

    def wait(self, user_id: int) -> float:
        """0 if the user may ask now, else the seconds until they may."""
        if not self.enabled or self.limiter.hit(self.rate, str(user_id)):
            return 0.0
        reset, _ = self.limiter.get_window_stats(self.rate, str(user_id))
        return max(1.0, reset - time.time())


@dataclass
class Services:
    """What the handlers share; kept in application.bot_data["services"]."""

    desk: Desk
    settings: Settings
    journal: Journal
    limiter: UserLimiter
    metrics: Metrics
    conversations: dict[int, Conversation] = field(default_factory=dict)
    health: HealthServer | None = None


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    svc: Services = context.application.bot_data["services"]
    return svc


# -- sending ---------------------------------------------------------------------------------


async def send_html(
    message: Message,
    parts: Sequence[str],
    keyboard: InlineKeyboardMarkup | None = None,
    quote: bool = True,
) -> Message | None:
    """Send HTML parts in order as replies; the keyboard goes on the last one."""
    sent = None
    for i, part in enumerate(parts):
        markup = keyboard if i == len(parts) - 1 else None
        sent = await _send_one(message, part, markup, quote and i == 0)
    return sent


async def _send_one(
    message: Message, part: str, markup: InlineKeyboardMarkup | None, quote: bool
) -> Message:
    """One message, retried on timeouts and 5xx; re-sent as plain text if Telegram refuses the
    markup (never twice in the same broken form). 429s are retried by the rate limiter."""
    html_mode = True
    for attempt in range(4):
        try:
            if html_mode:
                return await message.reply_html(
                    part, reply_markup=markup, do_quote=quote, link_preview_options=NO_PREVIEW
                )
            return await message.reply_text(
                render.plain_fallback(part),
                reply_markup=markup,
                do_quote=quote,
                link_preview_options=NO_PREVIEW,
            )
        except BadRequest as exc:
            if html_mode and "parse entities" in str(exc).lower():
                log.error("Telegram refused our HTML, sending plain text: %s", exc)
                html_mode = False
                continue
            raise
        except RetryAfter as exc:  # only when the rate limiter's own retries ran out
            await asyncio.sleep(float(getattr(exc, "retry_after", 1) or 1))
        except (TimedOut, NetworkError) as exc:
            if attempt == 3:
                raise
            log.warning("sending failed (%s), retrying", exc)
            await asyncio.sleep(0.5 * 2**attempt)
    raise NetworkError("could not send the message")


async def stream_reply(
    message: Message, desk: Desk, question: str, vector: np.ndarray, passages: list[Passage]
) -> tuple[Answer, Message | None]:
    """With a language model: show its text as it is written, editing one message at most
    once per STREAM_EVERY seconds; returns the verified Answer and that message (if any).
    Without a model, the answer simply arrives (no preview)."""
    preview: Message | None = None
    last = 0.0
    async for item in stream_answer(desk.composer, question, vector, passages):
        if isinstance(item, Answer):
            return item, preview
        now = time.monotonic()
        if not item.strip() or now - last < STREAM_EVERY:
            continue
        last = now
        text = render.esc(item[:STREAM_CHARS]) + " …"
        with contextlib.suppress(TelegramError):  # a skipped preview edit costs nothing
            if preview is None:
                preview = await message.reply_html(
                    text, do_quote=True, link_preview_options=NO_PREVIEW
                )
            else:
                await preview.edit_text(
                    text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
                )
    raise RuntimeError("the answer stream ended without an answer")


async def edit_html(message: Message, part: str, markup: InlineKeyboardMarkup | None) -> None:
    """Replace a message's text; as plain text if Telegram refuses the markup."""
    try:
        await message.edit_text(
            part, parse_mode=ParseMode.HTML, reply_markup=markup, link_preview_options=NO_PREVIEW
        )
    except BadRequest as exc:
        if "not modified" in str(exc).lower():
            return
        if "parse entities" not in str(exc).lower():
            raise
        log.error("Telegram refused our HTML, editing as plain text: %s", exc)
        await message.edit_text(
            render.plain_fallback(part), reply_markup=markup, link_preview_options=NO_PREVIEW
        )


@contextlib.asynccontextmanager
async def typing(context: ContextTypes.DEFAULT_TYPE, chat_id: int) -> AsyncIterator[None]:
    """Show "typing…" until the block ends."""

    async def keep_typing() -> None:
        while True:
            with contextlib.suppress(NetworkError):
                await context.bot.send_chat_action(chat_id, ChatAction.TYPING)
            await asyncio.sleep(TYPING_EVERY)

    task = asyncio.create_task(keep_typing())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- access ----------------------------------------------------------------------------------


def is_allowed(settings: Settings, user_id: int, chat_id: int) -> bool:
    return (
        user_id in settings.admins
        or user_id in settings.allowed_users
        or chat_id in settings.allowed_chats
    )


async def guard(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Refuse strangers (showing their id, so an admin can add them); nothing else leaks."""
    user, chat, message = update.effective_user, update.effective_chat, update.effective_message
    if user is None or chat is None or message is None:
        return False
    if is_allowed(services(context).settings, user.id, chat.id):
        return True
    log.info("refused user %s in chat %s", user.id, chat.id)
    await message.reply_html(
        f"Sorry, this bot is private to the newsroom. Your user id is <code>{user.id}</code>"
        + (
            f" and this chat's id is <code>{chat.id}</code>"
            if chat.type != ChatType.PRIVATE
            else ""
        )
        + ": send it to an admin to get access.",
        do_quote=True,
    )
    return False


async def limited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """True (and tell the user how long to wait) when they ask too fast."""
    user, message = update.effective_user, update.effective_message
    assert user is not None and message is not None
    wait = services(context).limiter.wait(user.id)
    if wait:
        await message.reply_text(f"Slow down: you can ask again in {wait:.0f} s.", do_quote=True)
        return True
    return False


def addressed_text(message: Message, bot_username: str, bot_id: int) -> str | None:
    """The question in a message meant for the bot; None for group chatter."""
    text = message.text or ""
    if message.chat.type == ChatType.PRIVATE:
        return text
    mention = f"@{bot_username}"
    if mention.lower() in text.lower():
        start = text.lower().index(mention.lower())
        return (text[:start] + text[start + len(mention) :]).strip()
    replied = message.reply_to_message
    if replied and replied.from_user and replied.from_user.id == bot_id:
        return text
    return None


# -- questions -------------------------------------------------------------------------------


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A plain message: a question in private chats; in groups only mentions and replies."""
    message = update.effective_message
    if message is None:
        return
    text = addressed_text(message, context.bot.username, context.bot.id)
    if text is not None:
        await answer_question(update, context, text)


async def on_ask(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/ask QUESTION."""
    await answer_question(update, context, " ".join(context.args or []))


async def answer_question(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str) -> None:
    """Answer with citations; any failure becomes an apology with an error id."""
    if not await guard(update, context):
        return
    message, user, chat = update.effective_message, update.effective_user, update.effective_chat
    assert message is not None and user is not None and chat is not None
    request = await parse_request(update, context, text, "<code>/ask Who won?</code>")
    if request is None:
        return
    question, filters = request
    svc = services(context)
    svc.metrics.questions.inc()
    started = time.perf_counter()
    try:
        conversation = svc.conversations.setdefault(chat.id, Conversation())
        history = list(conversation.queries)
        query = await asyncio.to_thread(svc.desk.rewrite_followup, history, question)
        async with typing(context, chat.id):
            vector, passages = await asyncio.to_thread(svc.desk.retrieve, question, filters, query)
            answer, preview = await stream_reply(message, svc.desk, question, vector, passages)
        conversation.remember(query)
        answer_id = await asyncio.to_thread(svc.journal.save_answer, chat.id, user.id, answer)
        parts = render.answer_html(answer)
        keyboard = answer_keyboard(answer_id, answer)
        if preview is None:
            await send_html(message, parts, keyboard)
        else:  # the streamed message becomes the verified answer's first part
            await edit_html(preview, parts[0], keyboard if len(parts) == 1 else None)
            await send_html(message, parts[1:], keyboard, quote=False)
    except Exception:
        svc.metrics.errors.inc()
        await apologise(message, "answering your question")
        return
    elapsed = time.perf_counter() - started
    svc.metrics.latency.observe(elapsed)
    (svc.metrics.abstentions if answer.abstained else svc.metrics.answers).inc()
    # One structured line per question; the text only when NEWSDESK_LOG_QUESTIONS=1.
    log.info(
        "question chat=%s latency_ms=%.0f abstained=%s sources=%d%s",
        pseudonym(chat.id),
        elapsed * 1000,
        str(answer.abstained).lower(),
        len({c.article_id for c in answer.citations}),
        f" text={question!r}" if svc.settings.log_questions else "",
    )


async def parse_request(
    update: Update, context: ContextTypes.DEFAULT_TYPE, text: str, example: str
) -> tuple[str, Filters] | None:
    """Text and inline filters, with the message date as the as-of date; None (after telling
    the user why) for a bad filter, an empty request or a user asking too fast."""
    message = update.effective_message
    assert message is not None
    try:
        request, filters = split_filters(text, as_of=message.date.date())
    except FilterError as exc:
        await message.reply_text(str(exc), do_quote=True)
        return None
    if not request:
        await message.reply_html(
            f"What would you like to know? For example: {example}", do_quote=True
        )
        return None
    if await limited(update, context):
        return None
    return request, filters


async def apologise(message: Message, doing: str) -> None:
    error_id = secrets.token_hex(4)
    log.exception("error %s while %s", error_id, doing)
    with contextlib.suppress(Exception):
        await message.reply_text(
            f"Sorry, something went wrong while {doing} (error {error_id}). Please try again; "
            "if it keeps happening, tell an admin the error id.",
            do_quote=True,
        )


def answer_keyboard(answer_id: int, answer: Any) -> InlineKeyboardMarkup:
    votes = [
        InlineKeyboardButton("👍", callback_data=f"vote:{answer_id}:1"),
        InlineKeyboardButton("👎", callback_data=f"vote:{answer_id}:-1"),
    ]
    if answer.citations:
        votes.insert(0, InlineKeyboardButton("Quotes", callback_data=f"quotes:{answer_id}"))
    return InlineKeyboardMarkup([votes])


async def on_search(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/search QUERY: the top passages with their scores."""
    if not await guard(update, context):
        return
    message = update.effective_message
    assert message is not None
    text = " ".join(context.args or [])
    request = await parse_request(update, context, text, "<code>/search S-400 Turkey</code>")
    if request is None:
        return
    query, filters = request
    try:
        async with typing(context, message.chat_id):
            passages = await asyncio.to_thread(services(context).desk.search, query, filters, 5)
        await send_html(message, render.passages_html(query, passages))
    except Exception:
        await apologise(message, "searching")


# -- buttons ---------------------------------------------------------------------------------


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Quotes, votes and /sources paging."""
    query = update.callback_query
    if query is None or query.data is None or not await guard(update, context):
        if query:
            await query.answer()
        return
    svc = services(context)
    kind, _, rest = query.data.partition(":")
    if kind == "vote":
        answer_id, _, vote = rest.partition(":")
        await asyncio.to_thread(svc.journal.vote, int(answer_id), query.from_user.id, int(vote))
        await query.answer("Thanks, noted." if int(vote) > 0 else "Thanks, we will look into it.")
    elif kind == "quotes":
        stored = await asyncio.to_thread(svc.journal.answer, int(rest))
        await query.answer()
        if stored and stored.citations and isinstance(query.message, Message):
            await send_html(query.message, render.quotes_html(stored.citations))
    elif kind == "sources":
        await query.answer()
        await show_page(query, svc.desk, int(rest), admin=False)
    else:
        await query.answer()


# -- simple commands -------------------------------------------------------------------------


async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start: what the bot is and how to ask."""
    if update.effective_message and await guard(update, context):
        await update.effective_message.reply_html(START_TEXT, do_quote=True)


async def on_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: commands and filter syntax."""
    if update.effective_message and await guard(update, context):
        await update.effective_message.reply_html(HELP_TEXT, do_quote=True)


async def on_sources(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/sources [page]: the corpus, newest first, with paging buttons."""
    message = update.effective_message
    if message is None or not await guard(update, context):
        return
    page = int(context.args[0]) - 1 if context.args and context.args[0].isdigit() else 0
    text, keyboard = await asyncio.to_thread(sources_page, services(context).desk, max(0, page))
    await message.reply_html(
        text, reply_markup=keyboard, link_preview_options=NO_PREVIEW, do_quote=True
    )


async def show_page(query: CallbackQuery, desk: Desk, page: int, admin: bool) -> None:
    """Replace a listing message with another of its pages (the paging buttons)."""
    text, keyboard = await asyncio.to_thread(sources_page, desk, page, admin)
    if isinstance(query.message, Message):
        with contextlib.suppress(BadRequest):  # "message is not modified"
            await query.message.edit_text(
                text,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard,
                link_preview_options=NO_PREVIEW,
            )


def sources_page(
    desk: Desk, page: int, admin: bool = False
) -> tuple[str, InlineKeyboardMarkup | None]:
    """One page of the corpus, newest first; admins also see ids and chunk counts."""
    rows = desk.store.articles()
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    page = min(page, pages - 1)
    lines = [f"<b>Sources</b> — {len(rows)} articles, page {page + 1}/{pages}"]
    for i, row in enumerate(rows[page * PAGE_SIZE : (page + 1) * PAGE_SIZE], page * PAGE_SIZE + 1):
        meta = render.meta_html(row.source, row.published)
        extra = f"\n    <code>{row.id}</code> · {row.n_chunks} chunks" if admin else ""
        lines.append(f"{i}. {render.link(row.title, row.url)}{meta}{extra}")
    if not rows:
        lines.append("The corpus is empty.")
    prefix = "docs" if admin else "sources"
    buttons = []
    if page > 0:
        buttons.append(InlineKeyboardButton("◀ Newer", callback_data=f"{prefix}:{page - 1}"))
    if page < pages - 1:
        buttons.append(InlineKeyboardButton("Older ▶", callback_data=f"{prefix}:{page + 1}"))
    return "\n".join(lines), InlineKeyboardMarkup([buttons]) if buttons else None


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Anything a handler did not catch: logged with its traceback; the bot keeps running."""
    log.error(
        "unhandled error for update %s", getattr(update, "update_id", None), exc_info=context.error
    )
