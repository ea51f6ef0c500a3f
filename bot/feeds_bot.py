"""Feeds in the bot: `/feeds` for admins (list, add, remove, Remove buttons) and the poll in
PTB's JobQueue every NEWSDESK_FEED_POLL_MINUTES.

A poll fetches in a worker thread (a slow feed never blocks the event loop) and writes each
article on the services' writer thread under the desk's write lock, like an admin's upload.
Every change is audited; admins are told once when a feed has failed for a day.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable

from telegram import Bot, Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import TelegramError
from telegram.ext import Application

from bot import callbacks, i18n, render, render_feeds, sending
from bot.access import audit
from bot.feeds import FeedStore, PollResult, poll_feeds
from bot.feeds_cli import make_poller
from bot.i18n import _
from bot.models import Article, IngestReport
from bot.services import Context, Services

log = logging.getLogger(__name__)
POLL_JOB = "feeds"
FIRST_POLL = 10.0  # seconds after start-up, at most


def feed_store(svc: Services) -> FeedStore:
    if svc.feeds is None:
        svc.feeds = FeedStore(svc.settings.index_dir)
    return svc.feeds


async def on_feeds(update: Update, context: Context) -> None:
    """/feeds, /feeds add URL [outlet], /feeds remove ID (admins; the gate checked)."""
    message = update.effective_message
    if message is None:
        return
    if message.chat.type != ChatType.PRIVATE:
        await sending.reply(message, _(render_feeds.FEEDS_PRIVATE))
        return
    svc = context.bot_data
    feeds = feed_store(svc)
    if update.effective_user is not None:  # the language of this admin's feed alerts
        from bot.watch_bot import watch_store  # watch_bot imports push from here

        user_id = update.effective_user.id
        await asyncio.to_thread(watch_store(svc).set_language, user_id, i18n.language())
    args = context.args or []
    verb = args[0].lower() if args else ""
    if not args:
        listed = await asyncio.to_thread(feeds.all)
        text, keyboard = render_feeds.feeds_html(listed)
        await sending.reply(message, text, keyboard)
    elif verb == "add" and len(args) >= 2:
        url, outlet = args[1], " ".join(args[2:])
        feed = await asyncio.to_thread(feeds.add, url, outlet)
        await audit(update, context, "feeds-add", feed.url, f"added feed {feed.id}")
        await sending.reply(message, render_feeds.feed_added(feed, svc.settings.feed_poll_minutes))
    elif verb == "remove" and len(args) == 2 and args[1].isdigit() and len(args[1]) < 12:
        await remove_feed(update, context, message, int(args[1]), edit=False)
    else:
        await sending.reply(message, _(render_feeds.FEEDS_USAGE))


async def on_feed_button(update: Update, context: Context) -> None:
    """A feed's Remove button (admins only: the gate refused, and audited, everyone else)."""
    query = update.callback_query
    if query is None:
        return
    payload = callbacks.parse(query.data)
    message = query.message if isinstance(query.message, Message) else None
    if not isinstance(payload, callbacks.FeedRemove) or message is None:
        await query.answer(_(render.NOTICE_INVALID))
        return
    await query.answer()
    await remove_feed(update, context, message, payload.feed_id, edit=True)


async def remove_feed(
    update: Update, context: Context, message: Message, feed_id: int, edit: bool
) -> None:
    feeds = feed_store(context.bot_data)
    feed = await asyncio.to_thread(feeds.remove, feed_id)
    await audit(update, context, "feeds-remove", feed.url, f"removed feed {feed.id}")
    text = render_feeds.feed_removed(feed)
    await (sending.edit(message, text) if edit else sending.reply(message, text))


async def poll_job(context: Context) -> None:
    """The JobQueue job: poll the feeds that are due, then check the watches."""
    await poll_due(context.application)


async def poll_due(app: Application) -> list[PollResult]:
    svc: Services = app.bot_data
    desk, loop = svc.desk, asyncio.get_running_loop()
    feeds = feed_store(svc)

    def write(article: Article) -> IngestReport:  # called from the polling thread
        def locked() -> IngestReport:
            with desk.write_lock:
                return desk.ingestor.ingest_articles([article])

        return svc.writer.submit(locked).result()

    def poll() -> list[PollResult]:
        due = feeds.due()
        return poll_feeds(make_poller(desk, feeds), due, write) if due else []

    results = await loop.run_in_executor(None, poll)
    for result in results:
        if result.added or result.updated or result.error:
            await asyncio.to_thread(
                svc.journal.audit, 0, "feeds", "feeds-poll", result.feed.url, result.line
            )
        if result.alert:
            await tell_admins(app, functools.partial(render_feeds.feed_alert, result))
        counted = svc.metrics.ingested
        counted.labels("added").inc(len(result.added))
        counted.labels("updated").inc(len(result.updated))
    if any(r.added or r.updated for r in results):
        from bot.watch_bot import check_watches

        await check_watches(app)
    return results


async def tell_admins(app: Application, render_text: Callable[[], str]) -> None:
    """Each admin in the language they last used /feeds in (English if they never did)."""
    from bot.watch_bot import watch_store  # the users' languages; watch_bot imports push

    svc: Services = app.bot_data
    store = watch_store(svc)
    for admin_id in svc.settings.admins:
        with i18n.speaking(await asyncio.to_thread(store.language, admin_id)):
            text = render_text()
        with contextlib.suppress(TelegramError):  # an admin who never opened the bot
            await push(app.bot, admin_id, [text])


async def push(bot: Bot, chat_id: int, parts: list[str]) -> None:
    """Unprompted HTML messages to a chat (alerts, watches, digests): no preview cards."""
    for part in parts:
        await bot.send_message(
            chat_id, part, parse_mode=ParseMode.HTML, link_preview_options=sending.NO_PREVIEW
        )


async def start_polling(app: Application) -> None:
    """Poll every NEWSDESK_FEED_POLL_MINUTES in PTB's JobQueue (the first soon after start)."""
    svc: Services = app.bot_data
    interval = svc.settings.feed_poll_minutes * 60
    if app.job_queue is None:
        raise RuntimeError("python-telegram-bot's job-queue extra (APScheduler) is missing")
    app.job_queue.run_repeating(
        poll_job, interval=interval, first=min(interval, FIRST_POLL), name=POLL_JOB
    )
