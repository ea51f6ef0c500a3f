"""Runs the real bot (python-telegram-bot over HTTP) against the fake Bot API server."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

from conftest import settings_for
from fake_telegram import FakeTelegram
from telegram.ext import Application

from bot.app import build_application
from bot.desk import Desk
from bot.services import Services

JOURNALISTS = list(range(100, 140))


ANY_PORT = -1  # running_bot(health_port=ANY_PORT): the web server on a free port (see below)
BIND_ATTEMPTS = 5


def free_port() -> int:
    """A port that was free a moment ago: only for a server that retries when it is not."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def running_bot(tg: FakeTelegram, desk: Desk, **overrides: Any) -> AsyncIterator[Application]:
    """Start polling with `desk` behind it; stop cleanly afterwards.

    `health_port=ANY_PORT` serves /healthz and the pages on a free port, read back as
    `services_of(app).health.port`. The product has no "any port" setting (0 turns the server
    off), so a free port is picked and the start retried should another process take it first."""
    values: dict[str, Any] = {
        "telegram_token": tg.token,
        "telegram_api_url": tg.url,
        "allowed_users": JOURNALISTS,
        "rate_limit_per_minute": 100,
        "health_port": 0,
    }
    values.update(overrides)
    any_port = values["health_port"] == ANY_PORT
    for attempt in range(1, BIND_ATTEMPTS + 1):
        if any_port:
            values["health_port"] = free_port()
        app = build_application(settings_for(desk.settings.corpus_dir.parent, **values), desk)
        try:
            await started(app)
            break
        except OSError as exc:
            if not (any_port and exc.errno == errno.EADDRINUSE and attempt < BIND_ATTEMPTS):
                raise
    try:
        yield app
    finally:
        await stopped(app)


async def started(app: Application) -> None:
    """What run_polling() does before it polls; undone again if any of it fails."""
    await app.initialize()
    try:
        if app.post_init:  # run_polling() calls it; a manual start must too
            await app.post_init(app)
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
    except BaseException:
        await stopped(app)
        raise


async def stopped(app: Application) -> None:
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if app.running:
        await app.stop()
    if app.post_shutdown:
        await app.post_shutdown(app)
    await app.shutdown()


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
