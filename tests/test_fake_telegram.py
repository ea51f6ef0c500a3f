"""Tests of the fake Telegram Bot API server, driven by real python-telegram-bot clients."""

from __future__ import annotations

import asyncio
import datetime as dtm
import warnings
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from fake_telegram import FakeTelegram, parse_html
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, MessageEntity, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, InvalidToken, NetworkError, RetryAfter
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")
USER = 42


@pytest_asyncio.fixture(loop_scope="session")
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url) as client:
        yield client


def _seconds(err: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that retry_after becomes a timedelta
        warnings.simplefilter("ignore")
        value = err.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else value


async def test_get_me_and_bad_token(tg: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot, me.can_join_groups) == (
        777,
        "newsdesk_test_bot",
        True,
        True,
    )
    with pytest.raises(InvalidToken):
        async with Bot("999:WRONG", base_url=tg.base_url):
            pass


async def test_send_html_message(tg: FakeTelegram, bot: Bot) -> None:
    tg.send_text(USER, "hi")
    html = '<b>a</b> &lt;x&gt; <a href="https://e.x">l</a>'
    msg = await bot.send_message(USER, html, parse_mode=ParseMode.HTML)
    assert msg.text == "a <x> l"
    assert msg.from_user is not None and msg.from_user.id == 777
    assert [(e.type, e.offset, e.length, e.url) for e in msg.entities] == [
        (MessageEntity.BOLD, 0, 1, None),
        (MessageEntity.TEXT_LINK, 6, 1, "https://e.x"),
    ]
    sent = tg.sent[-1]
    assert (sent["method"], sent["chat_id"], sent["text"], sent["html"]) == (
        "sendMessage",
        USER,
        "a <x> l",
        html,
    )
    assert tg.messages(USER)[-1]["text"] == "a <x> l"
    assert tg.calls[-1][0] == "sendMessage"


@pytest.mark.parametrize(
    ("html", "detail"),
    [
        ("<foo>", 'Unsupported start tag "foo" at byte offset 0'),
        ("a & b", 'Character "&"'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", "Unmatched end tag"),
        ("x</b>", "Unexpected end tag"),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ('<span class="x">s</span>', 'Tag "span" must have class "tg-spoiler"'),
        ("<b", "Unclosed start tag"),
    ],
)
async def test_bad_html(tg: FakeTelegram, bot: Bot, html: str, detail: str) -> None:
    tg.send_text(USER, "hi")
    # PTB drops the "Bad Request: " prefix and str.capitalize()s the description
    with pytest.raises(BadRequest, match=r"^Can't parse entities: ") as err:
        await bot.send_message(USER, html, parse_mode=ParseMode.HTML)
    assert detail.lower() in err.value.message.lower()
    assert tg.sent == []


async def test_parse_html_features() -> None:
    text, ents = parse_html(
        '<pre><code class="language-py">x=1</code></pre>'
        "<blockquote expandable>q</blockquote><tg-spoiler>s</tg-spoiler>"
        "<span class='tg-spoiler'>t</span><i><u>&#x41;&#66;&quot;</u></i><code>c</code>"
    )
    assert text == 'x=1qstAB"c'
    assert ents == [
        {"type": "pre", "offset": 0, "length": 3, "language": "py"},
        {"type": "expandable_blockquote", "offset": 3, "length": 1},
        {"type": "spoiler", "offset": 4, "length": 1},
        {"type": "spoiler", "offset": 5, "length": 1},
        {"type": "italic", "offset": 6, "length": 3},
        {"type": "underline", "offset": 6, "length": 3},
        {"type": "code", "offset": 9, "length": 1},
    ]
    assert parse_html("a & b", strict_ampersand=False) == ("a & b", [])


async def test_length_limits_and_utf16(tg: FakeTelegram, bot: Bot) -> None:
    tg.send_text(USER, "hi")
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(USER, "x" * 4097)
    msg = await bot.send_message(USER, "<b>" + "x" * 4096 + "</b>", parse_mode=ParseMode.HTML)
    assert len(msg.text or "") == 4096
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(USER, "😀" * 2049)  # 4098 UTF-16 code units
    msg = await bot.send_message(USER, "😀 <b>x</b>", parse_mode=ParseMode.HTML)
    assert (msg.entities[0].offset, msg.entities[0].length) == (3, 1)
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(USER, "<b> </b>", parse_mode=ParseMode.HTML)


async def test_unknown_chat_and_button_data(tg: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(12345, "x")
    tg.send_text(USER, "hi")
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data="x" * 65)]])
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await bot.send_message(USER, "x", reply_markup=markup)


async def test_fault_injection(tg: FakeTelegram, bot: Bot) -> None:
    tg.send_text(USER, "hi")
    tg.fail_next("sendMessage", status=429, retry_after=3)
    with pytest.raises(RetryAfter) as err:
        await bot.send_message(USER, "x")
    assert _seconds(err.value) == 3
    tg.fail_next("SENDMESSAGE", status=502)
    with pytest.raises(NetworkError, match="Bad Gateway") as net_err:
        await bot.send_message(USER, "x")
    assert not isinstance(net_err.value, BadRequest)
    tg.delay_next("sendMessage", 0.2)
    msg = await bot.send_message(USER, "ok")
    assert msg.text == "ok" and len(tg.sent) == 1


async def test_document_round_trip(tg: FakeTelegram, bot: Bot) -> None:
    incoming = tg.send_document(USER, "notes.txt", b"hello file", caption="see /this")
    assert incoming["document"]["file_size"] == 10
    file = await bot.get_file(incoming["document"]["file_id"])
    assert file.file_size == 10
    assert await file.download_as_bytearray() == bytearray(b"hello file")
    sent = await bot.send_document(
        USER, document=b"%PDF-1.4", filename="r.pdf", caption="<b>r</b>", parse_mode=ParseMode.HTML
    )
    assert sent.document is not None and sent.caption == "r"
    uploaded = await bot.get_file(sent.document.file_id)
    assert await uploaded.download_as_bytearray() == bytearray(b"%PDF-1.4")
    big = tg.send_document(USER, "big.bin", b"\0" * (20 * 1024 * 1024 + 1))
    with pytest.raises(BadRequest, match=r"(?i)file is too big"):
        await bot.get_file(big["document"]["file_id"])


async def test_long_polling_and_offset(tg: FakeTelegram, bot: Bot) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    tg.send_text(USER, "/start now", username="ann")
    updates = await poll
    assert loop.time() - started < 1.5
    assert len(updates) == 1 and updates[0].message is not None
    assert updates[0].message.text == "/start now"
    assert updates[0].message.entities[0].type == MessageEntity.BOT_COMMAND
    again = await bot.get_updates(timeout=0)  # not confirmed yet
    assert [u.update_id for u in again] == [updates[0].update_id]
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == ()


async def test_edit_message_text(tg: FakeTelegram, bot: Bot) -> None:
    tg.send_text(USER, "hi")
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("go", callback_data="go")]])
    msg = await bot.send_message(USER, "<i>v1</i>", parse_mode=ParseMode.HTML, reply_markup=markup)
    assert msg.reply_markup == markup
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text(
            "<i>v1</i>", USER, msg.message_id, parse_mode=ParseMode.HTML, reply_markup=markup
        )
    edited = await bot.edit_message_text("v2", USER, msg.message_id)
    assert edited is not True and tg.messages(USER)[-1]["text"] == "v2"
    assert "reply_markup" not in tg.messages(USER)[-1]  # no markup given: keyboard removed
    assert [s["method"] for s in tg.sent] == ["sendMessage", "editMessageText"]
    with pytest.raises(BadRequest, match=r"(?i)message can't be edited"):
        await bot.edit_message_text("x", USER, 1)  # the user's own message


async def test_application_end_to_end(tg: FakeTelegram) -> None:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("like", callback_data="like")]])
        text = f"echo: {update.message.text}"
        await update.message.reply_text(text, reply_markup=markup, do_quote=True)

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        await context.bot.send_chat_action(update.effective_chat.id, "typing")
        await context.bot.send_message(update.effective_chat.id, "welcome")

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.callback_query is not None
        await update.callback_query.answer("thanks")

    app = (
        Application.builder()
        .token(tg.token)
        .base_url(tg.base_url)
        .base_file_url(tg.base_file_url)
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    app.add_handler(CallbackQueryHandler(pressed))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            tg.send_text(USER, "hello")
            reply = await tg.wait_for(lambda s: s["text"] == "echo: hello")
            assert reply["reply_to_message_id"] == 1
            tg.send_text(USER, "/start@newsdesk_test_bot", chat_id=-100, chat_type="group")
            await tg.wait_messages(-100, 1)
            assert tg.chat_actions == [(-100, "typing")]
            tg.press_button(USER, reply["message_id"], "like")
            for _ in range(50):
                if tg.answered_callbacks:
                    break
                await asyncio.sleep(0.05)
            assert tg.answered_callbacks[0]["text"] == "thanks"
        finally:
            await app.updater.stop()
            await app.stop()
    with pytest.raises(AssertionError, match=r"(?i)no matching message"):
        await tg.wait_for(lambda s: s["text"] == "never", timeout=0.1)


async def test_raw_http_shapes(tg: FakeTelegram) -> None:
    tg.send_text(USER, "hi")
    api = f"{tg.base_url}{tg.token}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{api}/GETME") as resp:  # method names are case-insensitive
            assert resp.status == 200 and (await resp.json())["result"]["id"] == 777
        body = {"chat_id": USER, "text": "<b>j</b>", "parse_mode": "HTML"}
        async with http.post(f"{api}/sendMessage", json=body) as resp:
            assert (await resp.json())["result"]["entities"] == [
                {"type": "bold", "offset": 0, "length": 1}
            ]
        tg.fail_next("sendMessage", retry_after=7)
        async with http.post(f"{api}/sendMessage", data={"chat_id": str(USER), "text": "x"}) as r:
            assert r.status == 429
            assert await r.json() == {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 7",
                "parameters": {"retry_after": 7},
            }
        async with http.get(f"{api}/noSuchMethod") as resp:
            assert resp.status == 404 and (await resp.json())["description"] == "Not Found"
        async with http.get(f"{tg.base_url}1:bad/getMe") as resp:
            assert resp.status == 401 and (await resp.json())["description"] == "Unauthorized"


async def test_misc_methods(tg: FakeTelegram, bot: Bot) -> None:
    await bot.set_my_commands([("ask", "Ask the desk"), ("help", "Help")])
    assert [c.command for c in await bot.get_my_commands()] == ["ask", "help"]
    assert tg.commands == [
        {"command": "ask", "description": "Ask the desk"},
        {"command": "help", "description": "Help"},
    ]
    await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()
    await bot.set_webhook("https://example.org/hook")
    assert (await bot.get_webhook_info()).url == "https://example.org/hook"
    await bot.delete_webhook()
    user_msg = tg.send_text(USER, "hi @newsdesk_test_bot", username="ann")
    assert user_msg["entities"] == [{"type": "mention", "offset": 3, "length": 18}]
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("a", callback_data="a")]])
    msg = await bot.send_message(USER, "q", reply_markup=markup, reply_to_message_id=1)
    assert msg.reply_to_message is not None and msg.reply_to_message.text == user_msg["text"]
    await bot.edit_message_reply_markup(USER, msg.message_id, reply_markup=None)
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_reply_markup(USER, msg.message_id, reply_markup=None)
    assert await bot.delete_message(USER, msg.message_id)
    assert [m["message_id"] for m in tg.messages(USER)] == [1]
    with pytest.raises(AssertionError, match="no button"):
        tg.press_button(USER, 1, "a")
