"""Admin callbacks: grow and curate the corpus from Telegram. Every action is audited.

Ingests run in a worker thread under the desk's write lock, with progress edits in the chat,
so a 3,000-article upload never holds up a journalist's question.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageOriginChannel,
    MessageOriginChat,
    MessageOriginHiddenUser,
    MessageOriginUser,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot import render, sources
from bot.desk import Desk
from bot.errors import InputError, NewsdeskError
from bot.handlers import NO_PREVIEW, guard, services, show_page, sources_page
from bot.models import Article, IngestReport
from bot.parse import apply_metadata, article_from_fields, metadata_lines, split_title
from bot.store import ArticleRow

log = logging.getLogger(__name__)

TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile refuses bigger files for bots
URL_ONLY = re.compile(r"^\s*(https?://\S+)\s*$")
PROGRESS_EVERY = 2.0  # seconds between progress edits (Telegram allows ~1 edit/s per chat)
LISTED = 15  # articles named in a summary; the rest are counted


# -- access and audit ------------------------------------------------------------------------


async def admin_guard(update: Update, context: ContextTypes.DEFAULT_TYPE, action: str) -> bool:
    """Admins only. Others are refused (and the attempt audited); nothing is stored."""
    if not await guard(update, context):
        return False
    user, message = update.effective_user, update.effective_message
    assert user is not None and message is not None
    if user.id in services(context).settings.admins:
        return True
    await message.reply_text("Only admins can change the corpus.", do_quote=True)
    await audit(context, update, action, "", "refused: not an admin")
    return False


async def audit(
    context: ContextTypes.DEFAULT_TYPE, update: Update, action: str, target: str, result: str
) -> None:
    user = update.effective_user
    name = (user.username or user.full_name) if user else ""
    await asyncio.to_thread(
        services(context).journal.audit, user.id if user else 0, name, action, target, result
    )


def is_admin(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    user = update.effective_user
    return user is not None and user.id in services(context).settings.admins


# -- ingesting -------------------------------------------------------------------------------


def summary_html(report: IngestReport) -> str:
    """What happened, article by article: title, outlet, date, chunks and id."""
    lines = [
        f"<b>{len(report.added)} added, {len(report.unchanged)} unchanged, "
        f"{len(report.updated)} updated, {len(report.failed)} failed</b>"
    ]
    changed = [("added", a) for a in report.added] + [("updated", a) for a in report.updated]
    for label, a in changed[:LISTED]:
        lines.append(
            f"• {label}: {render.esc(a.title)}{render.meta_html(a.source, a.published)} — "
            f"{report.chunks.get(a.id, 0)} chunks, id <code>{a.id}</code>"
        )
    for a in report.unchanged[: max(0, LISTED - len(changed))]:
        lines.append(f"• unchanged: {render.esc(a.title)} (<code>{a.id}</code>)")
    for name, reason in report.failed[:LISTED]:
        lines.append(f"• failed: {render.esc(name)}: {render.esc(reason)}")
    for name, note in report.notes[:LISTED]:
        lines.append(f"• note: {render.esc(name)}: {render.esc(note)}")
    shown = len(changed) + len(report.unchanged) + len(report.failed) + len(report.notes)
    hidden = shown - (len(lines) - 1)
    if hidden > 0:
        lines.append(f"… and {hidden} more (see /docs)")
    return render.pack(["\n".join(lines)])[0]


def result_text(report: IngestReport) -> str:
    return (
        f"{len(report.added)} added, {len(report.unchanged)} unchanged, "
        f"{len(report.updated)} updated, {len(report.failed)} failed"
        + "".join(f"; {name}: {reason}" for name, reason in report.failed[:3])
    )


async def run_ingest(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    status: Message,
    action: str,
    target: str,
    work: Callable[[Desk, Callable[[int, int], None]], IngestReport],
) -> IngestReport:
    """Run `work` in a thread under the write lock, editing `status` with progress; audit the
    result before telling the admin."""
    desk = services(context).desk
    loop = asyncio.get_running_loop()
    last = [0.0]

    def progress(done: int, total: int) -> None:  # called from the worker thread
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY and done < total:
            last[0] = now
            edit = status.edit_text(f"Indexing… {done}/{total}")
            asyncio.run_coroutine_threadsafe(_quietly(edit), loop)

    def locked() -> IngestReport:
        with desk.write_lock:
            return work(desk, progress)

    report = await asyncio.to_thread(locked)
    counted = services(context).metrics.ingested
    for result in ("added", "updated", "unchanged", "failed"):
        counted.labels(result).inc(len(getattr(report, result)))
    await audit(context, update, action, target, result_text(report))
    with contextlib.suppress(BadRequest):
        await status.edit_text(
            summary_html(report), parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
        )
    return report


async def _quietly(coro: object) -> None:
    """A progress edit that fails (rate limit, not modified) is simply skipped."""
    with contextlib.suppress(TelegramError):
        await coro  # type: ignore[misc]


async def on_document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An uploaded file: downloaded, parsed, saved in corpus/ and indexed."""
    message = update.effective_message
    if message is None or message.document is None:
        return
    document = message.document
    name = document.file_name or "upload"
    if not await admin_guard(update, context, "upload"):
        return
    if (document.file_size or 0) > TELEGRAM_DOWNLOAD_LIMIT:
        await message.reply_text(
            f"{name} is {(document.file_size or 0) / 1e6:.0f} MB: Telegram lets bots download "
            "at most 20 MB. Copy it to the server and run `newsdesk ingest` there.",
            do_quote=True,
        )
        await audit(context, update, "upload", name, "refused: over Telegram's 20 MB")
        return
    settings = services(context).settings
    try:
        fields = metadata_lines(message.caption or "")
        apply_metadata(Article(title="", text=""), fields)  # a bad caption date fails here
        sources.kind_of(name, document.mime_type or "")  # unsupported: refuse before download
        status = await message.reply_text(f"Reading {name}…", do_quote=True)
        telegram_file = await document.get_file()
        data = bytes(await telegram_file.download_as_bytearray())
        source = sources.from_bytes(name, data, settings.max_file_bytes, document.mime_type or "")
    except InputError as exc:
        await message.reply_text(f"{name}: {exc}", do_quote=True)
        await audit(context, update, "upload", name, f"failed: {exc}")
        return

    def work(desk: Desk, progress: Callable[[int, int], None]) -> IngestReport:
        return desk.ingestor.ingest_sources([(name, source)], progress=progress, metadata=fields)

    await run_ingest(update, context, status, "upload", name, work)


async def on_add(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/add URL, or /add followed by pasted text (first line = title)."""
    message = update.effective_message
    if message is None or not await admin_guard(update, context, "add"):
        return
    text = (message.text or "").partition(" ")[2].strip()
    if not text:
        await message.reply_html(
            "Send <code>/add https://…</code> for a web page, or <code>/add</code> followed by "
            "the article text (first line = title; optional lines <code>source: …</code>, "
            "<code>date: YYYY-MM-DD</code>, <code>url: …</code> at the end).",
            do_quote=True,
        )
        return
    url = URL_ONLY.match(text)
    if url:
        await add_url(update, context, url.group(1))
    else:
        await add_text(update, context, text)


async def add_url(update: Update, context: ContextTypes.DEFAULT_TYPE, url: str) -> None:
    message = update.effective_message
    assert message is not None
    status = await message.reply_text(f"Fetching {url}…", do_quote=True)

    def work(desk: Desk, progress: Callable[[int, int], None]) -> IngestReport:
        return desk.ingestor.ingest([url], progress=progress)

    await run_ingest(update, context, status, "add-url", url, work)


async def add_text(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str) -> None:
    """Pasted text: trailing `key: value` lines are metadata; the rest is the article."""
    message = update.effective_message
    assert message is not None
    lines = text.rstrip().split("\n")
    fields: dict[str, str] = {}
    while lines and metadata_lines(lines[-1]):
        fields.update(metadata_lines(lines.pop()))
    await ingest_article(update, context, "add-text", "\n".join(lines), fields)


async def ingest_article(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    action: str,
    text: str,
    fields: dict[str, str],
    published: dt.date | None = None,
) -> None:
    message = update.effective_message
    assert message is not None
    title, body = split_title(text)
    try:
        article = article_from_fields({"title": title, "published": published}, body)
        apply_metadata(article, fields)
    except InputError as exc:
        await message.reply_text(f"Not added: {exc}", do_quote=True)
        await audit(context, update, action, title, f"failed: {exc}")
        return
    status = await message.reply_text("Adding…", do_quote=True)

    def work(desk: Desk, progress: Callable[[int, int], None]) -> IngestReport:
        return desk.ingestor.ingest_articles([article], progress=progress)

    await run_ingest(update, context, status, action, title, work)


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


async def on_forward(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A message forwarded to the bot: an article whose outlet and date come from its origin."""
    message = update.effective_message
    if message is None or not await admin_guard(update, context, "forward"):
        return
    outlet, day, url = forward_source(message)
    fields = {k: v for k, v in (("source", outlet), ("url", url)) if v}
    text = message.text or message.caption or ""
    await ingest_article(update, context, "forward", text, fields, published=day)


async def on_url(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An admin's message that is only a URL: fetch and add the article."""
    message = update.effective_message
    match = URL_ONLY.match(message.text or "") if message else None
    if match and await admin_guard(update, context, "add-url"):
        await add_url(update, context, match.group(1))


async def on_admin_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`remove:<id>` confirmations and `/docs` paging."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    kind, _, rest = query.data.partition(":")
    if kind == "remove":
        await confirm_remove(update, context, rest)
        return
    if not is_admin(update, context):
        await query.answer("Only admins can do that.")
        return
    await query.answer()
    await show_page(query, services(context).desk, int(rest or 0), admin=True)


# -- curating --------------------------------------------------------------------------------


async def on_docs(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/docs [page]: articles newest first, with ids and chunk counts."""
    message = update.effective_message
    if message is None or not await admin_guard(update, context, "docs"):
        return
    page = int(context.args[0]) - 1 if context.args and context.args[0].isdigit() else 0
    desk = services(context).desk
    text, keyboard = await asyncio.to_thread(sources_page, desk, max(0, page), True)
    await message.reply_html(
        text, reply_markup=keyboard, link_preview_options=NO_PREVIEW, do_quote=True
    )


async def named_article(update: Update, context: ContextTypes.DEFAULT_TYPE) -> ArticleRow | None:
    """The article a command names by id (or unique prefix); None after saying why not."""
    message = update.effective_message
    assert message is not None
    article_id = " ".join(context.args or [])
    try:
        return await asyncio.to_thread(services(context).desk.ingestor.resolve, article_id)
    except NewsdeskError as exc:
        await message.reply_text(str(exc), do_quote=True)
        return None


async def on_doc(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/doc ID: an article's metadata and first lines."""
    message = update.effective_message
    if message is None or not await admin_guard(update, context, "doc"):
        return
    desk = services(context).desk
    row = await named_article(update, context)
    if row is None:
        return
    try:
        article = await asyncio.to_thread(desk.corpus.read, Path(row.path))
    except OSError as exc:
        await message.reply_text(f"cannot read {row.path}: {exc.strerror}", do_quote=True)
        return
    head = article.text[:600].rsplit(" ", 1)[0] + ("…" if len(article.text) > 600 else "")
    lines = [
        f"<b>{render.esc(article.title)}</b>",
        f"id <code>{row.id}</code> · {row.n_chunks} chunks · {render.esc(row.state)}",
        f"outlet: {render.esc(article.source or '—')}",
        f"published: {article.published.isoformat() if article.published else '—'}",
        f"url: {render.esc(article.url or '—')}",
        f"authors: {render.esc(', '.join(article.authors) or '—')}",
        f"file: <code>{render.esc(row.path)}</code>",
        f"<blockquote>{render.esc(head)}</blockquote>",
    ]
    await message.reply_html(
        render.pack(["\n".join(lines)])[0], link_preview_options=NO_PREVIEW, do_quote=True
    )


async def on_remove(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/remove ID: asks for confirmation with a button."""
    message = update.effective_message
    if message is None or not await admin_guard(update, context, "remove"):
        return
    row = await named_article(update, context)
    if row is None:
        return
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Remove", callback_data=f"remove:{row.id}"),
                InlineKeyboardButton("Cancel", callback_data="remove:"),
            ]
        ]
    )
    await message.reply_html(
        f"Remove <b>{render.esc(row.title)}</b> (<code>{row.id}</code>) from the corpus and "
        "the index?",
        reply_markup=keyboard,
        do_quote=True,
    )


async def confirm_remove(
    update: Update, context: ContextTypes.DEFAULT_TYPE, article_id: str
) -> None:
    query = update.callback_query
    assert query is not None
    if not is_admin(update, context):
        await query.answer("Only admins can change the corpus.")
        await audit(context, update, "remove", article_id, "refused: not an admin")
        return
    await query.answer()
    message = query.message if isinstance(query.message, Message) else None
    if not article_id:
        if message:
            await message.edit_text("Cancelled: nothing was removed.")
        return
    desk = services(context).desk

    def remove() -> Article:
        with desk.write_lock:
            return desk.ingestor.remove(article_id)

    try:
        article = await asyncio.to_thread(remove)
        text = f"Removed <b>{render.esc(article.title)}</b> (<code>{article.id}</code>)."
        await audit(context, update, "remove", article_id, f"removed: {article.title}")
    except NewsdeskError as exc:
        text = render.esc(str(exc))
        await audit(context, update, "remove", article_id, f"failed: {exc}")
    if message:
        with contextlib.suppress(BadRequest):
            await message.edit_text(text, parse_mode=ParseMode.HTML)


async def on_stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/stats: articles, chunks, outlets, dates, index size, last ingest."""
    message = update.effective_message
    if message is None or not await admin_guard(update, context, "stats"):
        return
    data = await asyncio.to_thread(services(context).desk.store.stats)
    text = (
        f"<b>Corpus</b>\narticles: {data['articles']}\nchunks: {data['chunks']}\n"
        f"outlets: {data['outlets']}\n"
        f"published: {data['first_published'] or '—'} … {data['last_published'] or '—'}\n"
        f"index size: {data['index_bytes'] / 1e6:.1f} MB\n"
        f"last ingest: {data['last_ingest'] or '—'}"
    )
    await message.reply_html(text, do_quote=True)


async def on_audit(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/audit: the latest admin actions."""
    message = update.effective_message
    if message is None or not await admin_guard(update, context, "audit"):
        return
    entries = await asyncio.to_thread(services(context).journal.audit_log, 15)
    lines = ["<b>Latest admin actions</b>"] + [
        f"{e.at[:16].replace('T', ' ')} {render.esc(e.user_name or str(e.user_id))} "
        f"<b>{render.esc(e.action)}</b> {render.esc(e.target[:80])} → {render.esc(e.result[:160])}"
        for e in entries
    ]
    if not entries:
        lines.append("Nothing yet.")
    await message.reply_html(render.pack(["\n".join(lines)])[0], do_quote=True)
