"""Builds the Telegram Application: the one place where the parts are wired."""

from __future__ import annotations

import asyncio
import contextlib
import logging

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

from bot import admin, handlers
from bot.config import Settings
from bot.desk import Desk
from bot.errors import NewsdeskError
from bot.journal import Journal

log = logging.getLogger(__name__)


class RedactToken(logging.Filter):
    """Keeps the bot token out of every log line (it is part of Bot API URLs)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if self.token:
            message = record.getMessage()
            if self.token in message:
                record.msg = message.replace(self.token, "<token>")
                record.args = ()
        return True


def protect_logs(token: str) -> None:
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactToken(token))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs every URL, token included


def build_application(settings: Settings, desk: Desk) -> Application:
    token = settings.telegram_token.get_secret_value()
    if not token:
        raise NewsdeskError("set NEWSDESK_TELEGRAM_TOKEN to the token @BotFather gave you")
    builder = (
        Application.builder()
        .token(token)
        .rate_limiter(AIORateLimiter(max_retries=3))  # Telegram's flood limits, 429 retries
        .concurrent_updates(32)  # one slow question never holds up the others
        .post_init(on_startup)
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
    await asyncio.to_thread(svc.desk.ingestor.repair)
    if not (svc.settings.allowed_users or svc.settings.allowed_chats or svc.settings.admins):
        log.warning("no NEWSDESK_ALLOWED_USERS/CHATS/ADMINS: everyone will be refused")
    log.info("serving as @%s", app.bot.username)


def serve(settings: Settings) -> None:
    """Long polling until interrupted."""
    protect_logs(settings.telegram_token.get_secret_value())
    desk = Desk(settings)
    app = build_application(settings, desk)
    app.run_polling(allowed_updates=Update.ALL_TYPES)
