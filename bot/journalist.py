"""What journalists do: ask, search, list sources, press the buttons under an answer.

Thin callbacks: access was decided by the gate (bot/access.py), HTML comes from render, and
anything that goes wrong is raised to the one error handler. Model and store calls run in
threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time

from telegram import BotCommand, CallbackQuery, Message, Update
from telegram.constants import ChatType

from bot import callbacks, i18n, render, sending
from bot.access import addressed_text
from bot.conversation import split_filters
from bot.desk import Desk
from bot.errors import InputError
from bot.i18n import N_, _
from bot.language import reader_language
from bot.metrics import pseudonym
from bot.models import Answer, Filters
from bot.pipeline import Request
from bot.services import Context
from bot.viewer import links_for

log = logging.getLogger(__name__)

COMMANDS = [
    BotCommand("ask", N_("Ask a question about the corpus")),
    BotCommand("search", N_("Show the best-matching passages")),
    BotCommand("sources", N_("Articles in the corpus, newest first")),
    BotCommand("watch", N_("Be told about new articles on a topic")),
    BotCommand("watches", N_("Your watches (/unwatch ID removes one)")),
    BotCommand("timeline", N_("A story in time order")),
    BotCommand("digest", N_("A daily digest of your watches: HH:MM or off")),
    BotCommand("privacy", N_("What is stored about you, and for how long")),
    BotCommand("forget", N_("Delete everything stored about you")),
    BotCommand("help", N_("Commands and filters")),
    BotCommand("start", N_("What this bot does")),
]


async def on_start(update: Update, context: Context) -> None:
    """/start: what the bot is and how to ask."""
    if update.effective_message:
        await sending.reply(update.effective_message, _(render.START))


async def on_help(update: Update, context: Context) -> None:
    """/help: commands and filter syntax."""
    if update.effective_message:
        await sending.reply(update.effective_message, _(render.HELP))


async def on_text(update: Update, context: Context) -> None:
    """A plain message: a question in private chats; in groups only mentions and replies."""
    message = update.effective_message
    if message is None:
        return
    text = addressed_text(message, context.bot.username, context.bot.id)
    if text is not None:
        await answer_question(update, context, message, text)


async def on_ask(update: Update, context: Context) -> None:
    """/ask QUESTION."""
    if update.effective_message:
        text = " ".join(context.args or [])
        await answer_question(update, context, update.effective_message, text)


async def answer_question(update: Update, context: Context, message: Message, text: str) -> None:
    """A cited answer, streamed when a language model writes it."""
    request = await parse_request(update, context, message, text, "/ask Who won?")
    if request is None:
        return
    question, filters = request
    svc, chat_id = context.bot_data, message.chat_id
    uid = message.from_user.id if message.from_user else 0
    svc.metrics.questions.inc()
    started = time.perf_counter()
    conversation = context.chat_data.conversation(uid) if context.chat_data is not None else None
    history = list(conversation.queries) if conversation else []
    asked = Request(question, filters.as_of or message.date.date(), filters, history)
    async with sending.typing(context.bot, chat_id):
        # Loading since launch (model and index), in a thread: awaited, never blocking the loop.
        pipeline = await asyncio.wrap_future(svc.desk.loading())
        answer, preview = await sending.stream_reply(message, pipeline.astream(asked))
    if conversation is not None:
        conversation.remember(answer.query or question)
    answer_id = await asyncio.to_thread(svc.journal.save_answer, chat_id, uid, answer)
    keyboard = render.answer_keyboard(answer_id, bool(answer.citations))
    pages = links_for(svc.viewer, answer.citations)
    languages, reader = await asyncio.to_thread(source_languages, svc.desk, question, answer)
    parts = render.answer_html(answer, pages, languages, reader)
    await sending.reply_or_edit_streamed(message, preview, parts, keyboard)
    elapsed = time.perf_counter() - started
    svc.metrics.latency.observe(elapsed)
    (svc.metrics.abstentions if answer.abstained else svc.metrics.answers).inc()
    # One structured line per question; the text only when NEWSDESK_LOG_QUESTIONS=1.
    log.info(
        "question chat=%s latency_ms=%.0f abstained=%s sources=%d%s",
        pseudonym(chat_id),
        elapsed * 1000,
        str(answer.abstained).lower(),
        len({c.article_id for c in answer.citations}),
        f" text={question!r}" if svc.settings.log_questions else "",
    )


def source_languages(desk: Desk, question: str, answer: Answer) -> tuple[dict[str, str], str]:
    """The stored language of each article the answer names, and the question's language (the
    reader's, when the question is too short to tell): sources in another language say so."""
    ids = [c.article_id for c in answer.citations] + [p.article_id for p in answer.passages]
    written = desk.store.languages(ids)
    return written, reader_language(question, written.values(), i18n.language())


async def parse_request(
    update: Update, context: Context, message: Message, text: str, example: str
) -> tuple[str, Filters] | None:
    """Text and inline filters, with the message date as the as-of date; None (after telling
    the user why) for an empty request or a user asking too fast. A bad filter raises."""
    request, filters = split_filters(text, as_of=message.date.date())
    if not request:
        await sending.reply(message, render.ask_example(example))
        return None
    user = message.from_user
    wait = context.bot_data.limiter.wait(user.id) if user else 0.0
    if wait:
        await sending.reply(message, render.slow_down(wait))
        return None
    return request, filters


async def on_search(update: Update, context: Context) -> None:
    """/search QUERY: the top passages with their scores."""
    message = update.effective_message
    if message is None:
        return
    text = " ".join(context.args or [])
    request = await parse_request(update, context, message, text, "/search S-400 Turkey")
    if request is None:
        return
    query, filters = request
    async with sending.typing(context.bot, message.chat_id):
        await asyncio.wrap_future(context.bot_data.desk.loading())
        passages = await asyncio.to_thread(context.bot_data.desk.search, query, filters, 5)
    await sending.reply(message, render.passages_html(query, passages))


async def on_sources(update: Update, context: Context) -> None:
    """/sources [page]: the corpus, newest first, with paging buttons."""
    message = update.effective_message
    if message is not None:
        await send_listing(message, context, page_arg(context), admin=False)


def page_arg(context: Context) -> int:
    """The page a listing command asks for; a bad number is refused with a clear message."""
    if not context.args:
        return 0
    page = callbacks.page_number(context.args[0])
    if page is None:
        raise InputError(
            _("{value} is not a page number: try 2").format(value=repr(context.args[0][:20]))
        )
    return page


async def send_listing(message: Message, context: Context, page: int, admin: bool) -> None:
    listed = await asyncio.to_thread(
        context.bot_data.desk.store.visible_page, page, render.PAGE_SIZE
    )
    parts, keyboard = render.listing_html(*listed, admin)
    await sending.reply(message, parts, keyboard)


async def show_page(query: CallbackQuery, context: Context, page: int, admin: bool) -> None:
    """Replace a listing message with another of its pages (the paging buttons)."""
    listed = await asyncio.to_thread(
        context.bot_data.desk.store.visible_page, page, render.PAGE_SIZE
    )
    parts, keyboard = render.listing_html(*listed, admin)
    if isinstance(query.message, Message):
        await sending.edit(query.message, parts, keyboard)


async def on_button(update: Update, context: Context) -> None:
    """Quotes, votes and /sources paging. Every press is answered, refusals with a notice."""
    query = update.callback_query
    if query is None:
        return
    payload = callbacks.parse(query.data)
    if isinstance(payload, callbacks.Page) and payload.listing == "sources":
        await query.answer()
        await show_page(query, context, payload.page, admin=False)
    elif isinstance(payload, callbacks.Quotes | callbacks.Vote):
        await answer_button(query, context, payload)
    else:  # admin payloads have their own handler; anything else is not ours
        log.info("refused callback data %r", (query.data or "")[:64])
        await query.answer(_(render.NOTICE_INVALID))


async def answer_button(
    query: CallbackQuery, context: Context, payload: callbacks.Quotes | callbacks.Vote
) -> None:
    """Buttons of one answer work in the chat it was given in; votes only for its asker."""
    journal = context.bot_data.journal
    stored = await asyncio.to_thread(journal.answer, payload.answer_id)
    chat_id = query.message.chat.id if query.message else None
    if stored is None:
        await query.answer(_(render.NOTICE_GONE))
    elif stored.chat_id != chat_id:
        await query.answer(_(render.NOTICE_OTHER_CHAT))
    elif isinstance(payload, callbacks.Vote):
        if stored.user_id != query.from_user.id:
            await query.answer(_(render.NOTICE_NOT_ASKER))
            return
        await asyncio.to_thread(journal.vote, stored.id, query.from_user.id, payload.vote)
        await query.answer(_(render.THANKS if payload.vote > 0 else render.SORRY))
    else:
        await query.answer()
        if stored.citations and isinstance(query.message, Message):
            svc = context.bot_data
            pages = links_for(svc.viewer, stored.citations)
            keyboard = None
            if svc.miniapp and query.message.chat.type == ChatType.PRIVATE:  # Telegram's rule
                keyboard = render.page_keyboard(svc.miniapp.url(stored.citations))
            parts = render.quotes_html(stored.citations, pages)
            await sending.reply(query.message, parts, keyboard)
