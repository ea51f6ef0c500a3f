"""Watches, timelines and digests in the bot.

`/watch QUERY [filters]`, `/watches`, `/unwatch ID`: a journalist's standing queries. A JobQueue
job (every NEWSDESK_INBOX_INTERVAL seconds, and after each feed poll) checks newly indexed
articles against them and pushes each match; it also sends the daily digests that are due.
`/timeline QUERY [filters]`: the story in time order, paged with buttons. `/digest HH:MM|off`.
Store and model work runs in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telegram import Message, Update
from telegram.error import TelegramError
from telegram.ext import Application

from bot import callbacks, i18n, render, render_feeds, sending
from bot.conversation import split_filters
from bot.errors import InputError, NewsdeskError
from bot.feeds_bot import push
from bot.i18n import _
from bot.services import Context, Services
from bot.timeline import entry_of, timeline
from bot.watches import Watch, WatchMatcher, WatchStore, check_new

log = logging.getLogger(__name__)
WATCH_JOB = "watches"
HHMM = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")


def watch_store(svc: Services) -> WatchStore:
    if svc.watches is None:
        svc.watches = WatchStore(svc.settings.index_dir)
    return svc.watches


def zone(svc: Services) -> ZoneInfo:
    try:
        return ZoneInfo(svc.settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise NewsdeskError(
            f"NEWSDESK_TIMEZONE={svc.settings.timezone!r} is not a time zone: use an IANA "
            "name such as Europe/Berlin, or UTC"
        ) from None


def ids(message: Message) -> tuple[int, int]:
    return (message.from_user.id if message.from_user else 0), message.chat_id


async def on_watch(update: Update, context: Context) -> None:
    """/watch QUERY [since: until: source:]."""
    message = update.effective_message
    if message is None:
        return
    text = " ".join(context.args or [])
    if not text.strip():
        await sending.reply(message, _(render_feeds.WATCH_USAGE))
        return
    user_id, chat_id = ids(message)
    store = watch_store(context.bot_data)
    watch = await asyncio.to_thread(store.add, user_id, chat_id, text)
    await asyncio.to_thread(store.set_language, user_id, i18n.language())  # for its alerts
    await sending.reply(message, render_feeds.watching(watch))


async def on_watches(update: Update, context: Context) -> None:
    """/watches: the user's own watches."""
    message = update.effective_message
    if message is not None:
        mine = await asyncio.to_thread(watch_store(context.bot_data).of_user, ids(message)[0])
        await sending.reply(message, render_feeds.watches_html(mine))


async def on_unwatch(update: Update, context: Context) -> None:
    """/unwatch ID: one of the user's own watches."""
    message = update.effective_message
    if message is None:
        return
    arg = (context.args or [""])[0]
    if not (arg.isdigit() and len(arg) < 12):
        raise InputError(
            _("{value} is not a watch id: /watches lists yours").format(value=repr(arg[:20]))
        )
    store = watch_store(context.bot_data)
    watch = await asyncio.to_thread(store.remove, ids(message)[0], int(arg))
    await sending.reply(message, render_feeds.unwatched(watch))


async def on_timeline(update: Update, context: Context) -> None:
    """/timeline QUERY [since: until: source:]: the story in time order, paged."""
    message = update.effective_message
    if message is None:
        return
    query, filters = split_filters(" ".join(context.args or []))
    if not query:
        await sending.reply(message, _(render_feeds.TIMELINE_USAGE))
        return
    svc = context.bot_data
    wait = svc.limiter.wait(message.from_user.id) if message.from_user else 0.0
    if wait:  # a timeline costs as much as several answers
        await sending.reply(message, render.slow_down(wait))
        return
    async with sending.typing(context.bot, message.chat_id):
        entries = await asyncio.to_thread(timeline, svc.desk, query, filters)
    stored = [e.as_dict() for e in entries]
    timeline_id = await asyncio.to_thread(
        watch_store(svc).save_timeline, message.chat_id, query, stored
    )
    parts, keyboard = render_feeds.timeline_html(timeline_id, query, entries, 0)
    await sending.reply(message, parts, keyboard)


async def on_timeline_button(update: Update, context: Context) -> None:
    """A timeline's Earlier/Later buttons: only in the chat the timeline was made in."""
    query = update.callback_query
    if query is None:
        return
    payload = callbacks.parse(query.data)
    message = query.message if isinstance(query.message, Message) else None
    if not isinstance(payload, callbacks.TimelinePage) or message is None:
        await query.answer(_(render.NOTICE_INVALID))
        return
    stored = await asyncio.to_thread(watch_store(context.bot_data).timeline, payload.timeline_id)
    if stored is None:
        await query.answer(_("That timeline is no longer available: ask again."))
        return
    chat_id, text, entries = stored
    if chat_id != message.chat_id:
        await query.answer(_(render.NOTICE_OTHER_CHAT))
        return
    await query.answer()
    parts, keyboard = render_feeds.timeline_html(
        payload.timeline_id, text, [entry_of(e) for e in entries], payload.page
    )
    await sending.edit(message, parts, keyboard)


async def on_digest(update: Update, context: Context) -> None:
    """/digest HH:MM (in NEWSDESK_TIMEZONE) or /digest off."""
    message = update.effective_message
    if message is None:
        return
    arg = (context.args or [""])[0].lower()
    svc = context.bot_data
    user_id, chat_id = ids(message)
    store = watch_store(svc)
    if arg == "off":
        await asyncio.to_thread(store.set_digest, user_id, chat_id, None)
        await sending.reply(message, _(render_feeds.DIGEST_OFF))
        return
    match = HHMM.fullmatch(arg)
    if match is None:
        await sending.reply(message, _(render_feeds.DIGEST_USAGE))
        return
    hhmm = f"{int(match[1]):02d}:{match[2]}"
    zone(svc)  # a bad NEWSDESK_TIMEZONE is said now, not at digest time
    await asyncio.to_thread(store.set_digest, user_id, chat_id, hhmm)
    await asyncio.to_thread(store.set_language, user_id, i18n.language())
    await sending.reply(message, render_feeds.digest_set(hhmm, svc.settings.timezone))


def allowed(svc: Services, watch: Watch) -> bool:
    s = svc.settings
    return (
        watch.user_id in s.admins
        or watch.user_id in s.allowed_users
        or watch.chat_id in s.allowed_chats
    )


async def check_watches(app: Application) -> int:
    """Newly indexed articles against every watch; push each match. How many were pushed."""
    svc: Services = app.bot_data
    store = watch_store(svc)
    desk = svc.desk
    matcher = WatchMatcher(desk.store, desk.embedder, svc.settings.min_relevance)
    pushes, dropped = await asyncio.to_thread(
        check_new,
        store,
        matcher,
        desk.store,
        lambda w: allowed(svc, w),
        svc.settings.watch_max_per_hour,
    )
    for watch in dropped:
        log.info("dropped watch %d: its user is no longer allowed", watch.id)
    sent = 0
    for match in pushes:
        try:
            language = await asyncio.to_thread(store.language, match.watch.user_id)
            with i18n.speaking(language):
                parts = render_feeds.push_html(match)
            await push(app.bot, match.watch.chat_id, parts)
            sent += 1
        except TelegramError as exc:  # a blocked bot, a deleted chat: the digest still has it
            log.warning("could not push watch %d: %s", match.watch.id, exc)
    return sent


def due(hhmm: str, last: float, now: dt.datetime) -> bool:
    """Has the day's HH:MM (in `now`'s zone) passed since `last`?"""
    hour, minute = (int(x) for x in hhmm.split(":"))
    slot = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if slot > now:
        slot -= dt.timedelta(days=1)
    return slot.timestamp() > last


async def send_digests(app: Application) -> int:
    svc: Services = app.bot_data
    store = watch_store(svc)
    now = dt.datetime.fromtimestamp(store.clock(), zone(svc))
    sent = 0
    for user_id, chat_id, hhmm, last in await asyncio.to_thread(store.digests):
        if not due(hhmm, last, now):
            continue
        matches = await asyncio.to_thread(store.digest_matches, user_id, last)
        if matches and allowed(svc, Watch(0, user_id, chat_id, "")):
            try:
                with i18n.speaking(await asyncio.to_thread(store.language, user_id)):
                    parts = render_feeds.digest_html(matches)
                await push(app.bot, chat_id, parts)
                sent += 1
            except TelegramError as exc:
                log.warning("could not send a digest: %s", exc)
                continue
        await asyncio.to_thread(store.digest_sent, user_id, now.timestamp())
    return sent


async def watch_job(context: Context) -> None:
    """The JobQueue job: new articles against the watches, then the digests due."""
    await check_watches(context.application)
    await send_digests(context.application)


async def start_watches(app: Application) -> None:
    """Take note of the articles already indexed, then check every NEWSDESK_INBOX_INTERVAL."""
    svc: Services = app.bot_data
    zone(svc)
    store = watch_store(svc)
    await asyncio.to_thread(store.begin, svc.desk.store)
    if app.job_queue is None:
        raise RuntimeError("python-telegram-bot's job-queue extra (APScheduler) is missing")
    interval = svc.settings.inbox_interval
    app.job_queue.run_repeating(watch_job, interval=interval, first=interval, name=WATCH_JOB)
