"""Everything the bot sends goes out here: replies, edits, retries, typing, streaming.

Every text passes through split.fit(), so no message exceeds Telegram's limits; parts go out
in order with the keyboard on the last one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence

from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions, Message
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut

from bot import render
from bot.models import Answer
from bot.split import fit

log = logging.getLogger(__name__)

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
TYPING_EVERY = 4.0  # Telegram shows "typing…" for about 5 s per chat action
STREAM_EVERY = 1.0  # seconds between edits of a streamed answer (Telegram: ~1 edit/s/chat)
ATTEMPTS = 4


class Failed(Exception):
    """An action failed after its status message ("Reading…") was shown: the error handler
    turns that message into the failure notice. The cause is the original error."""

    def __init__(self, status: Message, action: str = "", target: str = "") -> None:
        super().__init__("action failed after its status message")
        self.status, self.action, self.target = status, action, target


async def reply(
    message: Message,
    parts: str | Sequence[str],
    keyboard: InlineKeyboardMarkup | None = None,
    quote: bool = True,
) -> Message | None:
    """Send HTML parts in order as replies to `message`; the keyboard goes on the last one."""
    pieces = fit([parts] if isinstance(parts, str) else parts)
    sent = None
    for i, part in enumerate(pieces):
        markup = keyboard if i == len(pieces) - 1 else None
        sent = await _send_one(message, part, markup, quote and i == 0)
    return sent


async def status(message: Message, text: str) -> Message:
    """A short status line ("Reading x…") in reply to `message`, to be edited later."""
    sent = await reply(message, render.status(text))
    assert sent is not None  # render.status never renders an empty message
    return sent


async def _send_one(
    message: Message, part: str, markup: InlineKeyboardMarkup | None, quote: bool
) -> Message:
    """One message, retried on timeouts and 5xx; re-sent as plain text if Telegram refuses the
    markup (never twice in the same broken form). 429s are retried by the rate limiter."""
    html_mode = True
    for attempt in range(ATTEMPTS):
        try:
            if html_mode:
                return await message.reply_html(
                    part, reply_markup=markup, do_quote=quote, link_preview_options=NO_PREVIEW
                )
            return await message.reply_text(
                render.plain_fallback(part),
                reply_markup=markup,
                do_quote=quote,
                link_preview_options=NO_PREVIEW,
            )
        except BadRequest as exc:
            if html_mode and "parse entities" in str(exc).lower():
                log.error("Telegram refused our HTML, sending plain text: %s", exc)
                html_mode = False
                continue
            raise
        except RetryAfter as exc:  # only when the rate limiter's own retries ran out
            await asyncio.sleep(float(getattr(exc, "retry_after", 1) or 1))
        except (TimedOut, NetworkError) as exc:
            if attempt == ATTEMPTS - 1:
                raise
            log.warning("sending failed (%s), retrying", exc)
            await asyncio.sleep(0.5 * 2**attempt)
    raise NetworkError("could not send the message")


async def edit(
    message: Message,
    parts: str | Sequence[str],
    keyboard: InlineKeyboardMarkup | None = None,
) -> None:
    """Replace a message's text with the first part; further parts follow as replies to it.
    As plain text if Telegram refuses the markup; "not modified" is not an error."""
    pieces = fit([parts] if isinstance(parts, str) else parts)
    first, rest = pieces[0], pieces[1:]
    markup = None if rest else keyboard
    try:
        await message.edit_text(
            first, parse_mode=ParseMode.HTML, reply_markup=markup, link_preview_options=NO_PREVIEW
        )
    except BadRequest as exc:
        if "not modified" in str(exc).lower():
            pass
        elif "parse entities" in str(exc).lower():
            log.error("Telegram refused our HTML, editing as plain text: %s", exc)
            await message.edit_text(
                render.plain_fallback(first), reply_markup=markup, link_preview_options=NO_PREVIEW
            )
        else:
            raise
    if rest:
        await reply(message, rest, keyboard, quote=False)


async def quietly(coro: object) -> None:
    """A progress edit that fails (rate limit, not modified) is simply skipped."""
    with contextlib.suppress(TelegramError):
        await coro  # type: ignore[misc]


@contextlib.asynccontextmanager
async def typing(bot: Bot, chat_id: int) -> AsyncIterator[None]:
    """Show "typing…" until the block ends."""

    async def keep_typing() -> None:
        while True:
            with contextlib.suppress(NetworkError):
                await bot.send_chat_action(chat_id, ChatAction.TYPING)
            await asyncio.sleep(TYPING_EVERY)

    task = asyncio.create_task(keep_typing())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def stream_reply(
    message: Message, stream: AsyncIterator[str | Answer]
) -> tuple[Answer, Message | None]:
    """With a language model: show its text as it is written, editing one message at most
    once per STREAM_EVERY seconds; returns the verified Answer and that message (if any).
    Without a model, the answer simply arrives (no preview)."""
    preview: Message | None = None
    last = 0.0
    async for item in stream:
        if isinstance(item, Answer):
            return item, preview
        now = time.monotonic()
        if not item.strip() or now - last < STREAM_EVERY:
            continue
        last = now
        text = render.preview_html(item)
        with contextlib.suppress(TelegramError):  # a skipped preview edit costs nothing
            if preview is None:
                preview = await message.reply_html(
                    text, do_quote=True, link_preview_options=NO_PREVIEW
                )
            else:
                await preview.edit_text(
                    text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
                )
    raise RuntimeError("the answer stream ended without an answer")


async def reply_or_edit_streamed(
    message: Message,
    preview: Message | None,
    parts: Sequence[str],
    keyboard: InlineKeyboardMarkup | None,
) -> None:
    """The final answer: the streamed preview becomes its first part, or it is sent anew."""
    if preview is None:
        await reply(message, parts, keyboard)
    else:
        await edit(preview, parts, keyboard)
