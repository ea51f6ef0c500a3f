"""Who may do what: one gate, registered in handler group -1, decides for every update.

Strangers (not on NEWSDESK_ALLOWED_USERS/CHATS/ADMINS) are refused with their ids, so that an
admin can add them; journalists are refused admin actions. Every refused admin action, and
every stranger's command, upload or forward, is written to the audit log. A refused update
goes no further (`ApplicationHandlerStop`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

from telegram import Message, Update
from telegram.constants import ChatType, MessageEntityType
from telegram.ext import ApplicationHandlerStop

from bot import callbacks, render, sending
from bot.i18n import _
from bot.services import Context

log = logging.getLogger(__name__)

URL_ONLY = re.compile(r"^\s*(https?://\S+)\s*$")
ADMIN_COMMANDS = frozenset({"add", "docs", "doc", "remove", "stats", "audit", "feeds"})


@dataclass(frozen=True)
class Action:
    """What an update asks the bot to do, as the audit log names it."""

    name: str  # upload, forward, add-url, a command name, button, question, chatter, other
    target: str  # file name, URL, command arguments or button payload
    admin: bool  # only admins may do it
    addressed: bool  # meant for the bot (so a refusal is worth a reply)

    @property
    def audited_for_strangers(self) -> bool:
        return self.admin or self.name not in ("question", "chatter", "other", "button")

    @property
    def doing(self) -> str:
        """For an apology: "… went wrong while <doing>"."""
        if self.name == "question":
            return "answering your question"
        if self.name in ("upload", "forward", "add-url", "add", "add-text"):
            return f"adding {self.target}" if self.target else "adding the article"
        if self.name == "remove":
            return f"removing {self.target}"
        if self.name == "button":
            return "handling that button"
        return f"handling /{self.name}"

    @property
    def doing_said(self) -> str:
        """`doing` in the user's language (the log keeps the English)."""
        if self.name == "question":
            return _("answering your question")
        if self.name in ("upload", "forward", "add-url", "add", "add-text"):
            return (
                _("adding {target}").format(target=self.target)
                if self.target
                else _("adding the article")
            )
        if self.name == "remove":
            return _("removing {target}").format(target=self.target)
        if self.name == "button":
            return _("handling that button")
        return _("handling /{command}").format(command=self.name)


def addressed_text(message: Message, bot_username: str, bot_id: int) -> str | None:
    """The question in a message meant for the bot; None for group chatter."""
    text = message.text or ""
    if message.chat.type == ChatType.PRIVATE:
        return text
    mention = f"@{bot_username}"
    if mention.lower() in text.lower():
        start = text.lower().index(mention.lower())
        return (text[:start] + text[start + len(mention) :]).strip()
    replied = message.reply_to_message
    if replied and replied.from_user and replied.from_user.id == bot_id:
        return text
    return None


def command_of(message: Message, bot_username: str) -> tuple[str, str] | None:
    """(command, arguments) of a command meant for this bot, as CommandHandler sees it."""
    text = message.text or ""
    entity = message.entities[0] if message.entities else None
    if entity is None or entity.type != MessageEntityType.BOT_COMMAND or entity.offset != 0:
        return None
    name, _, addressee = text[1 : entity.length].partition("@")
    if addressee and addressee.lower() != bot_username.lower():
        return None
    return name.lower(), text[entity.length :].strip()


def action_of(update: Update, bot_username: str, bot_id: int, is_admin: bool) -> Action:
    """Classify an update the way app.py routes it to handlers."""
    query = update.callback_query
    if query is not None:
        data = query.data or ""
        return Action("button", data[:64], callbacks.is_admin_payload(data), True)
    message = update.message
    if message is None:
        return Action("other", "", False, False)
    private = message.chat.type == ChatType.PRIVATE
    command = command_of(message, bot_username)
    # Targets are audited: never what a journalist typed or forwarded (a question, a source's
    # message), only an admin's command arguments or forward.
    if command is not None:
        admin = command[0] in ADMIN_COMMANDS
        return Action(command[0], command[1][:200] if admin and is_admin else "", admin, True)
    if private and message.document is not None:
        return Action("upload", message.document.file_name or "upload", True, True)
    if private and message.forward_origin is not None:
        text = (message.text or message.caption or "")[:80] if is_admin else ""
        return Action("forward", text, True, True)
    if message.text is None:
        return Action("other", "", False, private)
    url = URL_ONLY.match(message.text)
    if private and is_admin and url:
        return Action("add-url", url.group(1), True, True)
    addressed = addressed_text(message, bot_username, bot_id) is not None
    return Action("question" if addressed else "chatter", "", False, addressed)


def action_for(update: Update, context: Context) -> Action:
    user = update.effective_user
    is_admin = user is not None and user.id in context.bot_data.settings.admins
    return action_of(update, context.bot.username, context.bot.id, is_admin)


async def audit(update: Update, context: Context, action: str, target: str, result: str) -> None:
    """One audit row: who, what, on what, and what happened (or why not)."""
    user = update.effective_user
    name = (user.username or user.full_name) if user else ""
    await asyncio.to_thread(
        context.bot_data.journal.audit, user.id if user else 0, name, action, target, result
    )


async def gate(update: Update, context: Context) -> None:
    """Group -1: let allowed updates through; refuse, audit and stop the rest."""
    user, chat = update.effective_user, update.effective_chat
    settings = context.bot_data.settings
    if update.inline_query is not None and user is not None:  # from no chat: users only
        if user.id in settings.admins or user.id in settings.allowed_users:
            return
        log.info("refused inline query of user %s", user.id)
        await update.inline_query.answer([], cache_time=0, is_personal=True)
        raise ApplicationHandlerStop
    if user is None or chat is None:  # channel posts, polls: nothing for this bot
        raise ApplicationHandlerStop
    is_admin = user.id in settings.admins
    allowed = is_admin or user.id in settings.allowed_users or chat.id in settings.allowed_chats
    action = action_of(update, context.bot.username, context.bot.id, is_admin)
    if allowed and (is_admin or not action.admin):
        return
    if not allowed:
        log.info("refused user %s in chat %s (%s)", user.id, chat.id, action.name)
        if action.audited_for_strangers:
            await audit(update, context, action.name, action.target, "refused: not allowed")
        private = chat.type == ChatType.PRIVATE
        await refuse(update, action, render.stranger(user.id, chat.id, private))
    else:
        await audit(update, context, action.name, action.target, "refused: not an admin")
        await refuse(update, action, _(render.NOT_ADMIN), _(render.NOTICE_NOT_ADMIN))
    raise ApplicationHandlerStop


async def refuse(
    update: Update, action: Action, text: str, notice: str = render.NOTICE_PRIVATE
) -> None:
    if update.callback_query is not None:
        await update.callback_query.answer(_(notice))
    elif action.addressed and update.effective_message is not None:
        await sending.reply(update.effective_message, text)
