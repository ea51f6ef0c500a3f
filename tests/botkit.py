"""Runs the real bot (python-telegram-bot over HTTP) against the fake Bot API server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from conftest import settings_for
from fake_telegram import FakeTelegram
from telegram.ext import Application

from bot.app import build_application
from bot.desk import Desk
from bot.services import Services

JOURNALISTS = list(range(100, 140))


@contextlib.asynccontextmanager
async def running_bot(tg: FakeTelegram, desk: Desk, **overrides: Any) -> AsyncIterator[Application]:
    """Start polling with `desk` behind it; stop cleanly afterwards."""
    values: dict[str, Any] = {
        "telegram_token": tg.token,
        "telegram_api_url": tg.url,
        "allowed_users": JOURNALISTS,
        "rate_limit_per_minute": 100,
        "health_port": 0,
    }
    values.update(overrides)
    settings = settings_for(desk.settings.corpus_dir.parent, **values)
    app = build_application(settings, desk)
    async with app:
        if app.post_init:  # run_polling() calls it; a manual start must too
            await app.post_init(app)
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()
            if app.post_shutdown:
                await app.post_shutdown(app)


def services_of(app: Application) -> Services:
    svc: Services = app.bot_data
    return svc


def buttons(entry: dict[str, Any]) -> dict[str, str]:
    """Button text -> callback data of a sent message."""
    rows = (entry.get("reply_markup") or {}).get("inline_keyboard", [])
    return {b["text"]: b["callback_data"] for row in rows for b in row}


async def settled(tg: FakeTelegram, app: Application, update_id: int, timeout: float = 30) -> None:
    """The barrier before asserting that something did NOT happen: the bot has fetched updates
    again after `update_id`, its queue is empty and no handler is still running."""
    await tg.wait_polled_past(update_id, timeout)
    loop = asyncio.get_running_loop()
    deadline, idle_checks = loop.time() + timeout, 0
    while idle_checks < 2:  # twice, a loop turn apart: a fetched update's task has started
        busy = app.update_queue.qsize() or app.update_processor.current_concurrent_updates
        idle_checks = 0 if busy else idle_checks + 1
        if loop.time() > deadline:
            raise AssertionError(f"the bot was still busy {timeout}s after update {update_id}")
        await asyncio.sleep(0.01)


def reply_to(msg: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """Matches the bot's reply to `msg` (or a later edit of it), in its chat."""
    return lambda e: (
        e["chat_id"] == msg["chat"]["id"] and e["reply_to_message_id"] == msg["message_id"]
    )
