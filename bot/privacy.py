"""What the bot keeps about a journalist: /privacy says it, /forget deletes it, and the
retention job deletes what is older than NEWSDESK_JOURNAL_DAYS / NEWSDESK_AUDIT_DAYS.

/forget is confirmed with a button bound to the user who asked: anyone else's press is
refused (and answered).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from telegram import Message, Update
from telegram.ext import Application

from bot import callbacks, render, render_privacy, sending
from bot.i18n import _
from bot.services import Context, Services

log = logging.getLogger(__name__)

DAILY = dt.timedelta(days=1)


def is_admin(context: Context, user_id: int) -> bool:
    return user_id in context.bot_data.settings.admins


async def on_privacy(update: Update, context: Context) -> None:
    """/privacy: what is stored about this user, and for how long."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    settings = context.bot_data.settings
    held = await asyncio.to_thread(context.bot_data.journal.held_about, user.id)
    from bot.watch_bot import watch_store  # imported late, as /forget does: no import cycle

    watches = await asyncio.to_thread(watch_store(context.bot_data).of_user, user.id)
    held["watches"] = len(watches)
    await sending.reply(
        message,
        render_privacy.privacy_html(
            held,
            settings.journal_days,
            settings.audit_days,
            settings.journal_text,
            is_admin(context, user.id),
        ),
    )


async def on_forget(update: Update, context: Context) -> None:
    """/forget: ask for confirmation with buttons only this user can press."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    text, keyboard = render_privacy.forget_prompt(user.id, is_admin(context, user.id))
    await sending.reply(message, text, keyboard)


async def on_forget_button(update: Update, context: Context) -> None:
    """Delete (or cancel) — only for the user the prompt was made for."""
    query = update.callback_query
    if query is None:
        return
    payload = callbacks.parse(query.data)
    if not isinstance(payload, callbacks.Forget):
        await query.answer(_(render.NOTICE_INVALID))
        return
    if payload.user_id != query.from_user.id:
        log.info("refused a /forget confirmation pressed by another user")
        await query.answer(_(render_privacy.NOTICE_NOT_YOURS))
        return
    await query.answer()
    if not payload.confirmed:
        text = _(render_privacy.FORGET_CANCELLED)
    else:
        uid = payload.user_id
        rows = await asyncio.to_thread(context.bot_data.journal.forget, uid, is_admin(context, uid))
        from bot.watch_bot import watch_store  # watches, their matches and the digest too

        rows += await asyncio.to_thread(watch_store(context.bot_data).forget, uid)
        # chat_data of every chat (groups too), not only this one
        chats = sum(memory.forget(uid) for memory in context.application.chat_data.values())
        log.info("forget: deleted %d journal rows and %d conversations of a user", rows, chats)
        text = render_privacy.forgotten(rows, chats)
    if isinstance(query.message, Message):
        await sending.edit(query.message, text)


def expire(services: Services) -> dict[str, int]:
    """Delete journal rows past their retention (blocking: run in a thread)."""
    settings = services.settings
    gone = services.journal.expire(settings.journal_days, settings.audit_days)
    if any(gone.values()):
        log.info("retention: deleted %s", ", ".join(f"{n} {t}" for t, n in gone.items()))
    return gone


async def expire_job(context: Context) -> None:
    """The daily JobQueue job."""
    await asyncio.to_thread(expire, context.bot_data)


async def start_retention(app: Application) -> None:
    """Expire now, then daily in PTB's JobQueue."""
    svc: Services = app.bot_data
    await asyncio.to_thread(expire, svc)
    if app.job_queue is None:  # the job-queue extra is a dependency: a broken install
        raise RuntimeError("python-telegram-bot's job-queue extra (APScheduler) is missing")
    app.job_queue.run_repeating(expire_job, interval=DAILY, first=DAILY, name="retention")
