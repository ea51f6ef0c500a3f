"""What admins do: grow and curate the corpus from Telegram. Every change is audited.

The gate (bot/access.py) has already refused everyone else. Writes (ingest, remove) run one at
a time on the services' own writer thread, under the desk's write lock, with progress edits in
the chat; questions keep their own threads meanwhile. A write that fails turns its status
message into the failure (see app.on_error) and is audited.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from telegram import (
    BotCommand,
    Message,
    MessageOriginChannel,
    MessageOriginChat,
    MessageOriginHiddenUser,
    MessageOriginUser,
    Update,
)

from bot import callbacks, render, sending, sources
from bot.access import URL_ONLY, audit
from bot.desk import Desk
from bot.errors import InputError, NotFound
from bot.i18n import N_, _
from bot.journalist import page_arg, send_listing, show_page
from bot.models import Article, IngestReport
from bot.parse import apply_metadata, article_from_fields, metadata_lines, split_title
from bot.services import Context
from bot.store import ArticleRow

log = logging.getLogger(__name__)
T = TypeVar("T")

COMMANDS = [
    BotCommand("add", N_("Add a web page (URL) or pasted text")),
    BotCommand("docs", N_("Articles with ids (admins)")),
    BotCommand("doc", N_("One article's metadata and first lines")),
    BotCommand("remove", N_("Remove an article (asks to confirm)")),
    BotCommand("stats", N_("Corpus and index statistics")),
    BotCommand("audit", N_("Latest admin actions")),
    BotCommand("feeds", N_("Feeds polled into the archive")),
]
TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile refuses bigger files for bots
PROGRESS_EVERY = 2.0  # seconds between progress edits (Telegram allows ~1 edit/s per chat)
Work = Callable[[Desk, Callable[[int, int], None]], IngestReport]


# -- writing ---------------------------------------------------------------------------------


async def write(context: Context, job: Callable[[Desk], T]) -> T:
    """Run a corpus write on the writer thread, under the desk's write lock."""
    desk = context.bot_data.desk

    def locked() -> T:
        with desk.write_lock:
            return job(desk)

    return await asyncio.get_running_loop().run_in_executor(context.bot_data.writer, locked)


async def run_ingest(
    update: Update, context: Context, status: Message, action: str, target: str, work: Work
) -> IngestReport:
    """Run `work` as a write, editing `status` with progress; audit the result, then show it.
    If it raises, `status` is handed to the error handler, which shows the failure there."""
    loop = asyncio.get_running_loop()
    last = [0.0]

    def progress(done: int, total: int) -> None:  # called from the writer thread
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY and done < total:
            last[0] = now
            text = render.status(_("Indexing… {done}/{total}").format(done=done, total=total))
            asyncio.run_coroutine_threadsafe(sending.quietly(sending.edit(status, text)), loop)

    try:
        report = await write(context, lambda desk: work(desk, progress))
    except Exception as exc:
        raise sending.Failed(status, action, target) from exc
    counted = context.bot_data.metrics.ingested
    for result in ("added", "updated", "unchanged", "failed"):
        counted.labels(result).inc(len(getattr(report, result)))
    await audit(update, context, action, target, result_text(report))
    await sending.edit(status, render.summary_html(report))
    return report


def result_text(report: IngestReport) -> str:
    return (
        f"{len(report.added)} added, {len(report.unchanged)} unchanged, "
        f"{len(report.updated)} updated, {len(report.failed)} failed"
        + "".join(f"; {name}: {reason}" for name, reason in report.failed[:3])
    )


# -- adding ----------------------------------------------------------------------------------


async def on_document(update: Update, context: Context) -> None:
    """An uploaded file: downloaded, parsed, saved in corpus/ and indexed."""
    message = update.effective_message
    if message is None or message.document is None:
        return
    document = message.document
    name = document.file_name or "upload"
    size = document.file_size or 0
    if size > TELEGRAM_DOWNLOAD_LIMIT:
        raise InputError(
            _(
                "{size} MB: Telegram lets bots download at most 20 MB. Copy it to the server and "
                "run `newsdesk ingest` there"
            ).format(size=f"{size / 1e6:.0f}")
        )
    fields = metadata_lines(message.caption or "")
    apply_metadata(Article(title="", text=""), fields)  # a bad caption date fails here
    sources.kind_of(name, document.mime_type or "")  # unsupported: refuse before download
    status = await sending.status(message, _("Reading {name}…").format(name=name))
    try:
        telegram_file = await document.get_file()
        data = bytes(await telegram_file.download_as_bytearray())
        max_bytes = context.bot_data.settings.max_file_bytes
        source = sources.from_bytes(name, data, max_bytes, document.mime_type or "")
    except Exception as exc:
        raise sending.Failed(status, "upload", name) from exc

    def work(desk: Desk, progress: Callable[[int, int], None]) -> IngestReport:
        return desk.ingestor.ingest_sources([(name, source)], progress=progress, metadata=fields)

    await run_ingest(update, context, status, "upload", name, work)


async def on_add(update: Update, context: Context) -> None:
    """/add URL, or /add followed by pasted text (first line = title)."""
    message = update.effective_message
    if message is None:
        return
    text = (message.text or "").partition(" ")[2].strip()
    if not text:
        await sending.reply(message, _(render.ADD_USAGE))
    elif url := URL_ONLY.match(text):
        await add_url(update, context, message, url.group(1))
    else:
        await add_text(update, context, message, text)


async def on_url(update: Update, context: Context) -> None:
    """An admin's message that is only a URL: fetch and add the article."""
    message = update.effective_message
    match = URL_ONLY.match(message.text or "") if message else None
    if message and match:
        await add_url(update, context, message, match.group(1))


async def add_url(update: Update, context: Context, message: Message, url: str) -> None:
    status = await sending.status(message, _("Fetching {url}…").format(url=url))

    def work(desk: Desk, progress: Callable[[int, int], None]) -> IngestReport:
        return desk.ingestor.ingest([url], progress=progress)

    await run_ingest(update, context, status, "add-url", url, work)


async def add_text(update: Update, context: Context, message: Message, text: str) -> None:
    """Pasted text: trailing `key: value` lines are metadata; the rest is the article."""
    lines = text.rstrip().split("\n")
    fields: dict[str, str] = {}
    while lines and metadata_lines(lines[-1]):
        fields.update(metadata_lines(lines.pop()))
    await ingest_article(update, context, message, "add-text", "\n".join(lines), fields)


async def ingest_article(
    update: Update,
    context: Context,
    message: Message,
    action: str,
    text: str,
    fields: dict[str, str],
    published: dt.date | None = None,
) -> None:
    # Off the event loop: a dateline-only first line has the lede's sentence split (pysbd).
    title, body = await asyncio.to_thread(split_title, text)
    article = article_from_fields({"title": title, "published": published}, body)
    apply_metadata(article, fields)
    status = await sending.status(message, _("Adding…"))

    def work(desk: Desk, progress: Callable[[int, int], None]) -> IngestReport:
        return desk.ingestor.ingest_articles([article], progress=progress)

    await run_ingest(update, context, status, action, title[:200], work)


def forward_source(message: Message) -> tuple[str, dt.date | None, str]:
    """Outlet, date and link of a forwarded message, from its forward origin."""
    origin = message.forward_origin
    if origin is None:
        return "", None, ""
    day = origin.date.date() if origin.date else None
    if isinstance(origin, MessageOriginChannel):
        chat = origin.chat
        url = f"https://t.me/{chat.username}/{origin.message_id}" if chat.username else ""
        return chat.title or chat.username or "", day, url
    if isinstance(origin, MessageOriginChat):
        return origin.sender_chat.title or "", day, ""
    if isinstance(origin, MessageOriginUser):
        return origin.sender_user.full_name, day, ""
    if isinstance(origin, MessageOriginHiddenUser):
        return origin.sender_user_name, day, ""
    return "", day, ""


async def on_forward(update: Update, context: Context) -> None:
    """A message forwarded to the bot: an article whose outlet and date come from its origin."""
    message = update.effective_message
    if message is None:
        return
    outlet, day, url = forward_source(message)
    fields = {k: v for k, v in (("source", outlet), ("url", url)) if v}
    text = message.text or message.caption or ""
    await ingest_article(update, context, message, "forward", text, fields, published=day)


# -- curating --------------------------------------------------------------------------------


async def on_docs(update: Update, context: Context) -> None:
    """/docs [page]: articles newest first, with ids and chunk counts."""
    message = update.effective_message
    if message is not None:
        await send_listing(message, context, page_arg(context), admin=True)


async def named_article(context: Context) -> ArticleRow:
    """The article a command names by its id or a unique prefix of it (hex digits only)."""
    article_id = " ".join(context.args or []).strip().lower()
    if not 4 <= len(article_id) <= 16 or not all(c in "0123456789abcdef" for c in article_id):
        raise NotFound(
            _("{value} is not an article id: see /docs for the ids").format(
                value=repr(article_id[:20])
            )
        )
    return await asyncio.to_thread(context.bot_data.desk.ingestor.resolve, article_id)


async def on_doc(update: Update, context: Context) -> None:
    """/doc ID: an article's metadata and first lines."""
    message = update.effective_message
    if message is None:
        return
    row = await named_article(context)
    try:
        article = await asyncio.to_thread(context.bot_data.desk.corpus.read, Path(row.path))
    except OSError as exc:
        raise NotFound(f"cannot read {row.path}: {exc.strerror}") from exc
    await sending.reply(message, render.doc_html(row, article))


async def on_remove(update: Update, context: Context) -> None:
    """/remove ID: asks for confirmation with a button."""
    message = update.effective_message
    if message is None:
        return
    text, keyboard = render.remove_prompt(await named_article(context))
    await sending.reply(message, text, keyboard)


async def on_admin_button(update: Update, context: Context) -> None:
    """`remove:<id>` confirmations and `/docs` paging (the gate let only admins through)."""
    query = update.callback_query
    if query is None:
        return
    payload = callbacks.parse(query.data)
    message = query.message if isinstance(query.message, Message) else None
    if isinstance(payload, callbacks.Page):
        await query.answer()
        await show_page(query, context, payload.page, admin=True)
    elif isinstance(payload, callbacks.Remove) and message is not None:
        await query.answer()
        await confirm_remove(update, context, message, payload.article_id)
    else:
        await query.answer(_(render.NOTICE_INVALID))
        await audit(update, context, "button", (query.data or "")[:64], "refused: invalid")


async def confirm_remove(
    update: Update, context: Context, message: Message, article_id: str
) -> None:
    if not article_id:
        await sending.edit(message, _(render.CANCELLED))
        return
    try:
        article = await write(context, lambda desk: desk.ingestor.remove(article_id))
    except Exception as exc:
        raise sending.Failed(message, "remove", article_id) from exc
    await audit(update, context, "remove", article_id, f"removed: {article.title}")
    await sending.edit(message, render.removed(article.title, article.id))


async def on_stats(update: Update, context: Context) -> None:
    """/stats: articles, chunks, outlets, dates, index size, last ingest."""
    if update.effective_message:
        data = await asyncio.to_thread(context.bot_data.desk.store.stats)
        await sending.reply(update.effective_message, render.stats_html(data))


async def on_audit(update: Update, context: Context) -> None:
    """/audit: the latest admin actions."""
    if update.effective_message:
        entries = await asyncio.to_thread(context.bot_data.journal.audit_log, 15)
        await sending.reply(update.effective_message, render.audit_html(entries))
