"""Telegram HTML and keyboards for /privacy and /forget (render.py's rules: every dynamic string
escaped, every message packed within Telegram's limits, every fixed text a gettext msgid)."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot import callbacks
from bot.i18n import N_, _, ngettext
from bot.split import pack

NOTICE_NOT_YOURS = N_("Only the person who sent /forget can confirm it.")
FORGET_CANCELLED = N_("Cancelled: nothing was deleted.")


def privacy_html(
    held: dict[str, int], journal_days: int, audit_days: int, keeps_text: bool, is_admin: bool
) -> list[str]:
    """/privacy: exactly what is stored about this user, and for how long."""
    text = (
        _(
            "Your questions and the answers' text <b>are stored</b> (the operator turned this on "
            "to review answer quality)."
        )
        if keeps_text
        else _("Your questions and the answers' text are <b>not stored</b>.")
    )
    audit_rule = (
        _(
            "As an admin, your actions stay in the audit log for its full period, even after "
            "/forget: it is the newsroom's record of who changed the corpus."
        )
        if is_admin
        else _("/forget deletes these too.")
    )
    return pack(
        [
            "<b>{}</b>".format(_("What this bot keeps about you")),
            f"• {text}\n• "
            + _(
                "For each answer you get: your user id, the chat, the time, and its sources "
                "(article ids and the quoted passages), so that its buttons work. "
                "You have <b>{answers}</b>."
            ).format(answers=held["answers"])
            + "\n• "
            + _("Your 👍/👎 votes, with the time. You have <b>{votes}</b>.").format(
                votes=held["feedback"]
            )
            + "\n"
            + ngettext(
                "Both are deleted after <b>{n} day</b>.",
                "Both are deleted after <b>{n} days</b>.",
                journal_days,
            ).format(n=journal_days),
            "• "
            + ngettext(
                "The audit log records admin actions and refused requests (who, which command, "
                "when — never a question) for <b>{n} day</b>.",
                "The audit log records admin actions and refused requests (who, which command, "
                "when — never a question) for <b>{n} days</b>.",
                audit_days,
            ).format(n=audit_days)
            + " "
            + _("You are named in <b>{n}</b> entries.").format(n=held["audit"])
            + f" {audit_rule}",
            "• "
            + _(
                "Your watches (the topics you follow, with their filters), the articles pushed "
                "to you for them, your digest time and your Telegram language (to write to "
                "you in it), until /unwatch or /forget. You have <b>{n}</b> watches."
            ).format(n=held.get("watches", 0))
            + "\n• "
            + _(
                "To follow up on your last questions, the bot remembers your last 3 queries in "
                "memory only, never on disk; a restart forgets them."
            )
            + "\n• "
            + _("Logs name chats by a pseudonym and leave question text out."),
            _("/forget deletes everything stored about you, after you confirm."),
        ]
    )


def forget_prompt(user_id: int, is_admin: bool) -> tuple[str, InlineKeyboardMarkup]:
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(_("Delete"), callback_data=callbacks.forget(user_id, True)),
                InlineKeyboardButton(_("Cancel"), callback_data=callbacks.forget(user_id, False)),
            ]
        ]
    )
    if is_admin:
        text = _(
            "Delete everything this bot stores about you: your answers' records, your votes "
            "(your admin actions stay in the audit log) and your follow-up memory in every "
            "chat? This cannot be undone."
        )
    else:
        text = _(
            "Delete everything this bot stores about you: your answers' records, your votes, "
            "audit entries and your follow-up memory in every chat? This cannot be undone."
        )
    return text, keyboard


def forgotten(rows: int, conversations: int) -> str:
    done = ngettext(
        "Done: deleted {n} stored row about you.",
        "Done: deleted {n} stored rows about you.",
        rows,
    ).format(n=rows)
    if conversations:
        done += " " + ngettext(
            "Your follow-up memory in {n} chat is deleted too.",
            "Your follow-up memory in {n} chats is deleted too.",
            conversations,
        ).format(n=conversations)
    return done + " " + _("Nothing else is kept.")
