"""Builds the Telegram Application: the one place where the parts are wired."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, cast

from telegram import BotCommand, BotCommandScopeChat, Message, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import (
    access,
    admin,
    feeds_bot,
    handoff,
    i18n,
    inline,
    journalist,
    privacy,
    render,
    sending,
    watch_bot,
)
from bot.config import Settings
from bot.desk import Desk
from bot.errors import NewsdeskError
from bot.journal import Journal
from bot.metrics import HealthServer, Metrics
from bot.miniapp import MiniApp
from bot.services import ChatMemory, Context, Services, UserLimiter
from bot.viewer import Viewer, build_viewer
from bot.webhook import bound_address, listen_socket, webhook_from

log = logging.getLogger(__name__)
# A background job (watches every NEWSDESK_INBOX_INTERVAL, feeds) that fails fails again at its
# next run: its traceback is logged once an hour, not every few seconds onto a full disk.
JOB_ERROR_QUIET = 3600.0


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
    services = Services(
        desk=desk,
        settings=settings,
        journal=Journal(settings.index_dir / "feedback.db", keep_text=settings.journal_text),
        limiter=UserLimiter(settings.rate_limit_per_minute),
        metrics=Metrics(),
        viewer=viewer_from(settings, desk),
    )
    if services.viewer and settings.public_url.startswith("https://"):
        allowed = set(settings.allowed_users) | set(settings.admins)
        services.miniapp = MiniApp(services.viewer, token, allowed.__contains__)
    # PTB makes bot_data by calling the given type with no arguments: hand it ours.
    context_types = ContextTypes(
        bot_data=cast(type[Services], lambda: services),
        chat_data=ChatMemory,
    )
    builder = (
        Application.builder()
        .token(token)
        .context_types(context_types)
        .rate_limiter(AIORateLimiter(max_retries=3))  # Telegram's flood limits, 429 retries
        .concurrent_updates(32)  # one slow question never holds up the others
        .post_init(on_startup)
        .post_shutdown(on_shutdown)
    )
    if settings.telegram_api_url:
        api = settings.telegram_api_url.rstrip("/")
        builder = builder.base_url(f"{api}/bot").base_file_url(f"{api}/file/bot")
    app = builder.build()
    add_handlers(app, settings)
    return app


def viewer_from(settings: Settings, desk: Desk) -> Viewer | None:
    """Article pages need NEWSDESK_PUBLIC_URL and the web server that serves them."""
    if not settings.public_url:
        return None
    if not settings.health_port:
        raise NewsdeskError(
            "NEWSDESK_PUBLIC_URL needs the web server that serves the article pages: set "
            "NEWSDESK_HEALTH_PORT (default 8080) instead of 0"
        )
    return build_viewer(settings, desk)


def add_handlers(app: Application, settings: Settings) -> None:
    """Group -2: the user's language. Group -1: the access gate. Group 0: the first matching
    handler answers."""
    private = filters.ChatType.PRIVATE
    app.add_handler(TypeHandler(Update, speak_users_language), group=-2)
    app.add_handler(TypeHandler(Update, access.gate), group=-1)
    commands = {
        "start": journalist.on_start,
        "help": journalist.on_help,
        "ask": journalist.on_ask,
        "search": journalist.on_search,
        "sources": journalist.on_sources,
        "privacy": privacy.on_privacy,
        "forget": privacy.on_forget,
        "add": admin.on_add,
        "docs": admin.on_docs,
        "doc": admin.on_doc,
        "remove": admin.on_remove,
        "stats": admin.on_stats,
        "audit": admin.on_audit,
        "feeds": feeds_bot.on_feeds,
        "watch": watch_bot.on_watch,
        "watches": watch_bot.on_watches,
        "unwatch": watch_bot.on_unwatch,
        "timeline": watch_bot.on_timeline,
        "digest": watch_bot.on_digest,
    }
    for name, callback in commands.items():
        app.add_handler(CommandHandler(name, callback))
    app.add_handler(CallbackQueryHandler(admin.on_admin_button, pattern=r"^(remove|docs):"))
    app.add_handler(CallbackQueryHandler(privacy.on_forget_button, pattern=r"^forget:"))
    app.add_handler(CallbackQueryHandler(feeds_bot.on_feed_button, pattern=r"^feedrm:"))
    app.add_handler(CallbackQueryHandler(watch_bot.on_timeline_button, pattern=r"^timeline:"))
    app.add_handler(CallbackQueryHandler(journalist.on_button))
    # Uploads and forwards in private chats are admin actions (the gate refuses others).
    app.add_handler(MessageHandler(filters.Document.ALL & private, admin.on_document))
    app.add_handler(MessageHandler(filters.FORWARDED & private, admin.on_forward))
    admins = filters.User(user_id=settings.admins)
    url_only = filters.Regex(access.URL_ONLY) & ~filters.COMMAND & private & admins
    app.add_handler(MessageHandler(url_only, admin.on_url))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, journalist.on_text))
    app.add_handler(InlineQueryHandler(inline.InlineAnswers().on_inline_query))
    app.add_error_handler(on_error)


async def speak_users_language(update: Update, context: Context) -> None:
    """Every reply to this update, refusals included, in the sender's Telegram language."""
    user = update.effective_user
    i18n.use(user.language_code if user else None)


async def on_error(update: object, context: Context) -> None:
    """The one error policy. A user error (NewsdeskError) is said as it is; anything else gets
    an apology with an error id, and its traceback is logged under that id. A failed admin
    action is audited; a status message ("Reading…") becomes the failure notice."""
    error: BaseException | None = context.error
    status: Message | None = None
    action, target = "", ""
    if isinstance(error, sending.Failed):
        status, action, target = error.status, error.action, error.target
        error = error.__cause__ or error
    if not isinstance(update, Update):
        seen, now = context.bot_data.job_errors, time.monotonic()
        key = repr(error)
        if now - seen.get(key, -JOB_ERROR_QUIET) < JOB_ERROR_QUIET:
            log.debug("error outside an update, again: %s", key)
            return
        if len(seen) > 100:  # errors that differ every time (a timestamp in the text)
            seen.clear()
        seen[key] = now
        log.error(
            "error outside an update (the same one is logged again in an hour at the earliest)",
            exc_info=error,
        )
        return
    what = access.action_for(update, context)
    if action:  # the handler said what failed
        what = access.Action(action, target, admin=True, addressed=True)
    if isinstance(error, NewsdeskError):
        log.info("refused %s: %s", what.name, error)
        reason = i18n.said(error)  # raised in English by a parser or fetcher: said in theirs
        text = render.failed_html(what.target, reason) if what.admin else render.problem(reason)
        result = f"failed: {error}"
    else:
        error_id = secrets.token_hex(4)
        log.error("error %s while %s", error_id, what.doing, exc_info=error)
        context.bot_data.metrics.errors.inc()
        text, result = render.apology(what.doing_said, error_id), f"failed: error {error_id}"
    if what.admin:  # audited before the admin is told, as a successful action is
        try:
            await access.audit(update, context, what.name, what.target, result)
        except Exception:
            log.exception("could not audit the failed %s", what.name)
    await tell(update, status, text)


async def tell(update: Update, status: Message | None, text: str) -> None:
    """Say what failed where the user is looking; a Telegram failure here is only logged."""
    query = update.callback_query
    try:
        if query is not None:
            with contextlib.suppress(BadRequest):  # already answered by the handler
                await query.answer(render.short(render.plain_fallback(text), 190))
        if status is not None:
            await sending.edit(status, text)
        elif query is None and update.effective_message is not None:
            await sending.reply(update.effective_message, text)
    except TelegramError as exc:
        log.warning("could not tell the user about the failure: %s", exc)


async def on_startup(app: Application) -> None:
    """Start loading the desk (model, index) in a thread; register the command menu; take the
    writer lock. Polling starts right after: the first question waits for the desk, not the
    bot for its first question (repairs and the watches' first look run once it is loaded)."""
    svc: Services = app.bot_data
    svc.desk.loading()
    # Telegram shows each user the menu for their language_code, else the one without a code.
    await asyncio.gather(*(menus(app, language) for language in i18n.LANGUAGES))
    svc.handoff = await handoff.start(svc.desk, svc.writer)  # writer lock, repair, inbox
    await privacy.start_retention(app)
    await watch_bot.start_watches(app)
    await feeds_bot.start_polling(app)
    if not (svc.settings.allowed_users or svc.settings.allowed_chats or svc.settings.admins):
        log.warning("no NEWSDESK_ALLOWED_USERS/CHATS/ADMINS: everyone will be refused")
    if svc.settings.health_port:
        svc.health = HealthServer(
            svc.metrics,
            lambda: health(svc.desk),
            svc.settings.health_host,
            svc.settings.health_port,
            [
                *(svc.viewer.routes() if svc.viewer else ()),
                *(svc.miniapp.routes() if svc.miniapp else ()),
            ],
        )
        await svc.health.start()
    log.info("serving as @%s", app.bot.username)


async def menus(app: Application, language: str) -> None:
    """The command menu in `language`; admins see their commands in theirs too."""
    svc: Services = app.bot_data
    code = None if language == i18n.DEFAULT else language
    await app.bot.set_my_commands(translated(journalist.COMMANDS, language), language_code=code)
    for admin_id in svc.settings.admins:
        with contextlib.suppress(TelegramError):  # a chat the bot has not seen yet
            await app.bot.set_my_commands(
                translated(journalist.COMMANDS + admin.COMMANDS, language),
                scope=BotCommandScopeChat(admin_id),
                language_code=code,
            )


def translated(commands: list[BotCommand], language: str) -> list[BotCommand]:
    """The command menu with its descriptions in `language` (the commands stay as they are)."""
    with i18n.speaking(language):
        return [BotCommand(c.command, i18n._(c.description)) for c in commands]


async def on_shutdown(app: Application) -> None:
    svc: Services = app.bot_data
    if svc.handoff:
        await handoff.stop(svc.handoff)
    if svc.health:
        await svc.health.stop()
    await asyncio.to_thread(svc.writer.shutdown, True)  # a write in progress finishes
    for db in (svc.feeds, svc.watches):
        if db is not None:
            db.close()


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
    if hook is None:
        build_application(settings, desk or Desk(settings)).run_polling(
            allowed_updates=Update.ALL_TYPES
        )
        return
    protect_logs(hook.secret)  # redacted like the token, should anything ever log it
    # Bound before the model loads and before setWebhook: a taken port fails the start at once,
    # and the log gives the real address (port 0 takes any free one).
    with listen_socket(hook.host, hook.port) as sock:
        app = build_application(settings, desk or Desk(settings))
        if hook.generated:
            log.info(
                "webhook: generated a random secret token for this run (set "
                "NEWSDESK_WEBHOOK_SECRET or --secret-token to choose one)"
            )
        log.info("webhook: listening on %s for %s", bound_address(sock), hook.url)
        app.run_webhook(
            url_path=hook.path,
            webhook_url=hook.url,
            secret_token=hook.secret,
            allowed_updates=Update.ALL_TYPES,
            unix=sock,  # PTB serves on a socket given to it, TCP as well as Unix
        )
