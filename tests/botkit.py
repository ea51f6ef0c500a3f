"""Runs the real bot (python-telegram-bot over HTTP) against the fake Bot API server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from conftest import settings_for
from fake_telegram import WAIT, FakeTelegram
from telegram.ext import Application

from bot.app import build_application
from bot.desk import Desk
from bot.services import Services

JOURNALISTS = list(range(100, 140))


ANY_PORT = -1  # running_bot(health_port=ANY_PORT): the web server on a reserved free port


@contextlib.contextmanager
def reserved_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A free port that stays ours while the block runs, for a server that cannot bind port 0
    itself. The socket holding it is bound but never listens, with SO_REUSEADDR: the server
    (aiohttp, uvicorn and tornado all set SO_REUSEADDR) can still bind the port, while the
    kernel gives it to no one else's bind(port 0) nor outgoing connection, even while that
    server is down. (Binding port 0, closing and passing the number on leaves a window in which
    another test can take it.)"""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind((host, 0))
        port: int = holder.getsockname()[1]
        yield port


@contextlib.asynccontextmanager
async def running_bot(tg: FakeTelegram, desk: Desk, **overrides: Any) -> AsyncIterator[Application]:
    """Start polling with `desk` behind it; stop cleanly afterwards.

    `health_port=ANY_PORT` serves /healthz and the pages on a reserved free port, read back as
    `services_of(app).health.port` (the product has no "any port" setting: 0 turns it off)."""
    values: dict[str, Any] = {
        "telegram_token": tg.token,
        "telegram_api_url": tg.url,
        "allowed_users": JOURNALISTS,
        "rate_limit_per_minute": 100,
        "health_port": 0,
    }
    values.update(overrides)
    with contextlib.ExitStack() as ports:
        if values["health_port"] == ANY_PORT:
            values["health_port"] = ports.enter_context(reserved_port())
        app = build_application(settings_for(desk.settings.corpus_dir.parent, **values), desk)
        await started(app)
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


async def settled(
    tg: FakeTelegram, app: Application, update_id: int, timeout: float = WAIT
) -> None:
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
