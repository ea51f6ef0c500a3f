"""Builds the Telegram Application: the one place where the parts are wired."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from telegram import BotCommandScopeChat, Update
from telegram.error import TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot import admin, handlers, handoff
from bot.config import Settings
from bot.desk import Desk
from bot.errors import NewsdeskError
from bot.journal import Journal
from bot.metrics import HealthServer, Metrics
from bot.webhook import webhook_from

log = logging.getLogger(__name__)


SECRETS: set[str] = set()  # tokens redacted from every log record


def protect_logs(token: str) -> None:
    """Keep the bot token (part of every Bot API URL) out of all log records, whoever logs them
    and wherever they go: the record factory redacts it before any handler sees it. The factory
    is installed once; building another application only adds its token."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs every URL at INFO
    if not token or token in SECRETS:
        return
    if not SECRETS:
        logging.setLogRecordFactory(_redacting(logging.getLogRecordFactory()))
    SECRETS.add(token)


def redact(text: str) -> str:
    for token in SECRETS:
        text = text.replace(token, "<token>")
    return text


def _redacting(make_record: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def redacting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        message = record.getMessage()
        if any(token in message for token in SECRETS):
            record.msg, record.args = redact(message), ()
        error = record.exc_info[1] if record.exc_info else None
        if record.exc_info and any(token in str(error) for token in SECRETS):
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return record

    return redacting


def build_application(settings: Settings, desk: Desk) -> Application:
    token = settings.telegram_token.get_secret_value()
    if not token:
        raise NewsdeskError("set NEWSDESK_TELEGRAM_TOKEN to the token @BotFather gave you")
    protect_logs(token)
    builder = (
        Application.builder()
        .token(token)
        .rate_limiter(AIORateLimiter(max_retries=3))  # Telegram's flood limits, 429 retries
        .concurrent_updates(32)  # one slow question never holds up the others
        .post_init(on_startup)
        .post_shutdown(on_shutdown)
    )
    if settings.telegram_api_url:
        api = settings.telegram_api_url.rstrip("/")
        builder = builder.base_url(f"{api}/bot").base_file_url(f"{api}/file/bot")
    app = builder.build()
    app.bot_data["services"] = handlers.Services(
        desk=desk,
        settings=settings,
        journal=Journal(settings.index_dir / "feedback.db"),
        limiter=handlers.UserLimiter(settings.rate_limit_per_minute),
        metrics=Metrics(),
    )
    admins = filters.User(user_id=settings.admins)
    private = filters.ChatType.PRIVATE
    app.add_handler(CommandHandler("start", handlers.on_start))
    app.add_handler(CommandHandler("help", handlers.on_help))
    app.add_handler(CommandHandler("ask", handlers.on_ask))
    app.add_handler(CommandHandler("search", handlers.on_search))
    app.add_handler(CommandHandler("sources", handlers.on_sources))
    app.add_handler(CommandHandler("add", admin.on_add))
    app.add_handler(CommandHandler("docs", admin.on_docs))
    app.add_handler(CommandHandler("doc", admin.on_doc))
    app.add_handler(CommandHandler("remove", admin.on_remove))
    app.add_handler(CommandHandler("stats", admin.on_stats))
    app.add_handler(CommandHandler("audit", admin.on_audit))
    app.add_handler(CallbackQueryHandler(admin.on_admin_button, pattern=r"^(remove|docs):"))
    app.add_handler(CallbackQueryHandler(handlers.on_button))
    # Uploads and forwards in private chats are admin actions (refused for others).
    app.add_handler(MessageHandler(filters.Document.ALL & private, admin.on_document))
    app.add_handler(MessageHandler(filters.FORWARDED & private, admin.on_forward))
    url_only = filters.Regex(admin.URL_ONLY) & ~filters.COMMAND & private & admins
    app.add_handler(MessageHandler(url_only, admin.on_url))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, handlers.on_text))
    app.add_error_handler(handlers.on_error)
    return app


async def on_startup(app: Application) -> None:
    """Register the command menu; finish any interrupted ingest; load the model before users."""
    svc: handlers.Services = app.bot_data["services"]
    await app.bot.set_my_commands(handlers.COMMANDS)
    for admin_id in svc.settings.admins:  # admins see their commands in the menu too
        with contextlib.suppress(TelegramError):  # a chat the bot has not seen yet
            await app.bot.set_my_commands(
                handlers.COMMANDS + handlers.ADMIN_COMMANDS, scope=BotCommandScopeChat(admin_id)
            )
    await handoff.start(app, svc.desk)  # index/'s writer lock, repair, CLI hand-offs
    if not (svc.settings.allowed_users or svc.settings.allowed_chats or svc.settings.admins):
        log.warning("no NEWSDESK_ALLOWED_USERS/CHATS/ADMINS: everyone will be refused")
    if svc.settings.health_port:
        svc.health = HealthServer(
            svc.metrics,
            lambda: health(svc.desk),
            svc.settings.health_host,
            svc.settings.health_port,
        )
        await svc.health.start()
    log.info("serving as @%s", app.bot.username)


async def on_shutdown(app: Application) -> None:
    svc: handlers.Services = app.bot_data["services"]
    await handoff.stop(app)
    if svc.health:
        await svc.health.stop()


async def health(desk: Desk) -> dict[str, object]:
    """Healthy when both stores answer: the SQLite index and Chroma."""

    def counts() -> dict[str, object]:
        return {"chunks": desk.store.count_chunks(), "vectors": desk.store.collection.count()}

    return await asyncio.to_thread(counts)


def serve(settings: Settings, desk: Desk | None = None) -> None:
    """Long polling until interrupted, or a webhook server when NEWSDESK_WEBHOOK_URL is set.

    A webhook always checks Telegram's secret-token header: PTB's server answers 403 to any
    POST without the right one, so nobody who merely reaches the port can forge updates."""
    hook = webhook_from(settings) if settings.webhook_url else None  # bad settings: fail first
    app = build_application(settings, desk or Desk(settings))
    if hook is None:
        app.run_polling(allowed_updates=Update.ALL_TYPES)
        return
    protect_logs(hook.secret)  # redacted like the token, should anything ever log it
    if hook.generated:
        log.info(
            "webhook: generated a random secret token for this run (set "
            "NEWSDESK_WEBHOOK_SECRET or --secret-token to choose one)"
        )
    log.info("webhook: listening on %s:%d for %s", hook.host, hook.port, hook.url)
    app.run_webhook(
        listen=hook.host,
        port=hook.port,
        url_path=hook.path,
        webhook_url=hook.url,
        secret_token=hook.secret,
        allowed_updates=Update.ALL_TYPES,
    )
