"""A fake Telegram Bot API server for tests (aiohttp on 127.0.0.1).

python-telegram-bot talks to it exactly as to Telegram:
``Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url)``. Tests inject user
activity (``send_text``, ``send_document``, ``press_button``, ``send_inline_query``), observe
the bot (``sent``, ``calls``, ``wait_for`` ...) and inject faults (``fail_next``, ``delay_next``).

HTML parse mode follows Telegram's (tdlib's) parser and error messages. Deliberate difference: a
bare ``&`` is rejected (Telegram keeps it as text) to catch missing escaping;
``FakeTelegram(strict_ampersand=False)`` restores Telegram's behaviour.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import mimetypes
import pprint
import re
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, NamedTuple

from aiohttp import web

JSON = dict[str, Any]
BOT_ID, BOT_USERNAME, TOKEN = 777, "newsdesk_test_bot", "123456:TEST-token"
MAX_TEXT, MAX_CAPTION, MAX_DOWNLOAD = 4096, 1024, 20 * 1024 * 1024
MAX_INLINE_RESULTS = 50
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
POLLING_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
CHAT_ACTIONS = {
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
}  # fmt: skip
BUTTON_ACTIONS = {
    "url", "callback_data", "web_app", "login_url", "switch_inline_query", "pay", "callback_game",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
}  # fmt: skip
HTML_TAGS = {  # supported tag -> entity type
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "span": "spoiler", "tg-spoiler": "spoiler", "a": "text_link", "code": "code", "pre": "pre",
    "blockquote": "blockquote", "tg-emoji": "custom_emoji",
}  # fmt: skip
_ATTR = r"""([^\s=>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9.\-]+)))?"""
_ENTITY_RE = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|lt|gt|amp|quot);")
_HTML_TOKEN_RE = re.compile(
    rf"(?P<text>[^<&]+)|(?P<ent>{_ENTITY_RE.pattern})"
    rf"|</(?P<end>[^\s>]*)\s*>|<(?P<start>[^\s>/][^\s>]*|)(?P<attrs>(?:\s+{_ATTR})*)\s*>"
)
_ATTR_RE = re.compile(_ATTR)
_TAG_NAME_RE = re.compile(r"[^\s>]*")
_URL_OK_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://\S+")
_AUTO_ENTITY_RES = (  # what Telegram clients mark up in users' messages
    (re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?"), "bot_command"),
    (re.compile(r"(?<![\w/@])@[A-Za-z0-9_]{5,32}"), "mention"),
    (re.compile(r"https?://[^\s<>]+"), "url"),
)


# How long a test waits for the bot before failing: a guard, never a measurement, so ample for
# a loaded 2-core machine (a wait ends as soon as its condition holds).
WAIT = 90.0


class ApiError(Exception):
    """An error answered as ``{"ok": false, ...}`` with HTTP status ``code``."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after


class Upload(NamedTuple):
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of entity offsets and text limits."""
    return len(text.encode("utf-16-le")) // 2


def _decode_entity(ent: str) -> str | None:
    named = {"&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"'}
    if ent in named:
        return named[ent]
    code = int(ent[3:-1], 16) if ent[2] in "xX" else int(ent[2:-1])
    return chr(code) if 0 < code < 0x110000 and not 0xD800 <= code < 0xE000 else None


def parse_html(src: str, strict_ampersand: bool = True) -> tuple[str, list[JSON]]:
    """Parse Telegram HTML into (plain text, entities) or raise ApiError(400) like Telegram."""
    out: list[str] = []
    pos = 0  # UTF-16 length of the output so far
    stack: list[tuple[str, str, int]] = []  # open tags: (tag, argument, start offset)
    entities: list[JSON] = []

    def fail(msg: str) -> ApiError:
        return ApiError(400, f"Bad Request: can't parse entities: {msg}")

    i = 0
    while i < len(src):
        m = _HTML_TOKEN_RE.match(src, i)
        at = f"at byte offset {len(src[:i].encode())}"
        if src[i] != "<":  # text or character entity
            char = _decode_entity(m["ent"]) if m and m["ent"] else None
            if m and (m["text"] or char is not None):
                chunk, i = m["text"] or char or "", m.end()
            elif strict_ampersand:
                raise fail(f'Character "&" must be escaped as "&amp;" {at}')
            else:
                chunk, i = "&", i + 1
            out.append(chunk)
            pos += utf16_len(chunk)
        elif src.startswith("</", i):
            if not stack:
                raise fail(f"Unexpected end tag {at}")
            if not m:
                raise fail(f"Unclosed end tag {at}")
            tag, arg, start = stack.pop()
            name = m["end"].lower()
            if name and name != tag:
                raise fail(f'Unmatched end tag {at}, expected "</{tag}>", found "</{name}>"')
            if pos > start:
                _close_entity(entities, HTML_TAGS[tag], arg, start, pos - start, "".join(out))
            i = m.end()
        else:
            name_match = _TAG_NAME_RE.match(src, i + 1)
            tag = name_match.group().lower() if name_match else ""
            if name_match is None or name_match.end() >= len(src):
                raise fail(f"Unclosed start tag {at}")
            if tag not in HTML_TAGS:
                raise fail(f'Unsupported start tag "{tag}" {at}')
            if not m and ">" not in src[i:]:
                raise fail(f"Unclosed start tag {at}")
            if not m:
                raise fail(f'Can\'t parse attributes of the tag "{tag}" {at}')
            attrs = {  # entities in attribute values are decoded; a bare "&" is kept there
                a[0].lower(): _unescape(a[1] or a[2] or a[3]) for a in _ATTR_RE.findall(m["attrs"])
            }
            arg = ""
            if tag == "a":
                arg = attrs.get("href", "")
            elif tag == "code" and attrs.get("class", "").startswith("language-"):
                arg = attrs["class"][len("language-") :]
            elif tag == "span" and attrs.get("class") != "tg-spoiler":
                raise fail(f'Tag "span" must have class "tg-spoiler" {at}')
            elif tag == "tg-emoji":
                arg = attrs.get("emoji-id", "")
            elif tag == "blockquote" and "expandable" in attrs:
                arg = "expandable"
            stack.append((tag, arg, pos))
            i = m.end()
    if stack:
        raise fail(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    order = {id(e): n for n, e in enumerate(entities)}  # equal ranges: outer tag first
    entities.sort(key=lambda e: (e["offset"], -e["length"], -order[id(e)]))
    return "".join(out), entities


def _unescape(value: str) -> str:
    return _ENTITY_RE.sub(lambda m: _decode_entity(m.group()) or m.group(), value)


def _close_entity(
    entities: list[JSON], kind: str, arg: str, off: int, size: int, text: str
) -> None:
    entity: JSON = {"type": kind, "offset": off, "length": size}
    if kind == "text_link":
        url = arg or text.encode("utf-16-le")[off * 2 :].decode("utf-16-le")
        if not _URL_OK_RE.fullmatch(url):
            return  # Telegram silently drops links with an invalid URL
        entity["url"] = url
    elif kind == "custom_emoji":
        if not arg:
            return
        entity["custom_emoji_id"] = arg
    elif kind == "code" and arg:
        entity["language"] = arg  # only kept if an enclosing <pre> closes right after
    elif kind == "blockquote" and arg:
        entity["type"] = "expandable_blockquote"
    elif kind == "pre" and entities:
        last = entities[-1]
        if last["type"] == "code" and (last["offset"], last["length"]) == (off, size):
            entities.pop()  # <pre><code class="language-x">...</code></pre>
            entity.update({"language": last["language"]} if "language" in last else {})
    entities.append(entity)


def _strip(text: str, entities: list[JSON]) -> tuple[str, list[JSON]]:
    """Trim surrounding whitespace like Telegram, clipping the entities."""
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    text = text.strip()
    size, result = utf16_len(text), []
    for e in entities:
        start, end = max(e["offset"] - lead, 0), min(e["offset"] + e["length"] - lead, size)
        if end > start:
            keep = {k: v for k, v in e.items() if k != "language" or e["type"] == "pre"}
            result.append(keep | {"offset": start, "length": end - start})
    return text, result


def auto_entities(text: str) -> list[JSON]:
    """Entities a Telegram client adds to a user's message: commands, mentions, links."""
    found = [
        {"type": kind, "offset": utf16_len(text[: m.start()]), "length": utf16_len(m.group())}
        for rx, kind in _AUTO_ENTITY_RES
        for m in rx.finditer(text)
    ]
    return sorted(found, key=lambda e: e["offset"])


def _param(p: JSON, key: str, kind: str = "json") -> Any:
    """A typed parameter ("int", "bool" or "json"); form fields carry JSON-encoded values."""
    value = p.get(key)
    if value is None or value == "":
        return None
    try:
        if kind == "int":
            return int(value)
        if kind == "bool":
            return value is True or str(value).lower() in ("true", "1")
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        raise ApiError(400, f"Bad Request: can't parse {key}") from None


def _error(code: int, description: str, retry_after: int | None = None) -> web.Response:
    body: JSON = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=code)


def _shallow(msg: JSON) -> JSON:
    return {k: v for k, v in msg.items() if k != "reply_to_message"}


async def _read_params(request: web.Request) -> JSON:
    """Query string plus a JSON, form-urlencoded or multipart body."""
    params: JSON = dict(request.query)
    if not request.body_exists:
        return params
    if request.content_type == "application/json":
        body = await request.json()
        params.update(body if isinstance(body, dict) else {})
        return params
    for key, value in (await request.post()).items():
        if isinstance(value, web.FileField):
            params[key] = Upload(value.filename, value.content_type, value.file.read())
        else:
            params[key] = value
    return params


class FakeTelegram:
    """In-process fake Telegram Bot API server; ``async with FakeTelegram() as tg: ...``."""

    def __init__(self, token: str = TOKEN, *, strict_ampersand: bool = True) -> None:
        self.token, self.strict_ampersand = token, strict_ampersand
        self.bot_user: JSON = {
            "id": BOT_ID, "is_bot": True, "first_name": "Newsdesk", "username": BOT_USERNAME,
            "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False, "can_connect_to_business": False,
            "has_main_web_app": False,
        }  # fmt: skip
        self.sent: list[JSON] = []  # every message the bot sent or edited (snapshots)
        self.calls: list[tuple[str, JSON]] = []  # every API call: (method, params)
        self.answered_callbacks: list[JSON] = []  # answerCallbackQuery params
        self.inline_answers: dict[str, JSON] = {}  # inline query id -> answer, results parsed
        self.chat_actions: list[tuple[int, str]] = []  # (chat_id, action)
        self.commands: list[JSON] = []  # the last setMyCommands list
        # A user's Telegram language_code (what their app is set to); "en" unless set here,
        # None: the field is left out, as Telegram does for some clients.
        self.languages: dict[int, str | None] = {}
        self.deleted: list[tuple[int, int]] = []  # (chat_id, message_id) deleted by the bot
        self.webhook: JSON = {}
        self.polled_offsets: list[int] = []  # the offset of every getUpdates call, in order
        self.last_update_id = 0  # the id of the latest update delivered to the bot
        self._chats: dict[int, JSON] = {}
        self._msgs: dict[int, dict[int, JSON]] = {}  # chat id -> message id -> message
        self._last_id: dict[int, int] = {}  # chat id -> last message id
        self._updates: list[JSON] = []
        self._update_ids = itertools.count(1)
        self._allowed: list[str] = []
        self._files: dict[str, tuple[JSON, bytes]] = {}  # file_id -> (File, content)
        self._file_ids = itertools.count(1)
        self._queries: dict[str, bool] = {}  # callback query id -> answered
        self._inline: dict[str, bool] = {}  # inline query id -> answered
        self._query_ids = itertools.count(4_000_000_000_000_000)
        self._my_commands: dict[str, list[JSON]] = {}
        self._faults: dict[str, list[tuple[int, int, str | None]]] = {}
        self._delays: dict[str, list[float]] = {}
        self._changed = asyncio.Event()  # replaced on every state change, see _notify
        self._poll_gen, self._closing, self._port = 0, False, 0
        self._runner: web.AppRunner | None = None
        self._methods: dict[str, tuple[str, Callable[[JSON], Awaitable[Any]]]] = {
            n[5:].lower(): (n[5:], getattr(self, n)) for n in dir(self) if n.startswith("_api_")
        }

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self._closing = True  # releases pending long polls
        self._notify()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    # Injecting user activity: each call delivers an update and returns what it carries.

    def send_text(
        self,
        user_id: int,
        text: str,
        chat_id: int | None = None,
        chat_type: str = "private",
        reply_to_message_id: int | None = None,
        username: str | None = None,
        first_name: str = "User",
        forward_origin: JSON | None = None,
        entities: list[JSON] | None = None,
    ) -> JSON:
        """A user sends ``text`` (commands/mentions/URLs get entities); returns the Message."""
        user = self._user(user_id, username, first_name)
        chat = self._touch_chat(user, chat_id, chat_type)
        reply = None
        if reply_to_message_id is not None:
            reply = _shallow(self._msgs[chat["id"]][reply_to_message_id])
        ents = auto_entities(text) if entities is None else entities
        fields = {"entities": ents, "reply_to_message": reply, "forward_origin": forward_origin}
        msg = self._new_message(chat, user, text=text, **fields)
        self._push_update("message", msg)
        return msg

    def send_document(
        self,
        user_id: int,
        filename: str,
        data: bytes,
        mime_type: str | None = None,
        caption: str | None = None,
        chat_id: int | None = None,
        chat_type: str = "private",
    ) -> JSON:
        """A user sends a file (kept for getFile and download); returns the Message."""
        user = self._user(user_id, None, "User")
        chat = self._touch_chat(user, chat_id, chat_type)
        mime = mime_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        doc = self._store_file(data, filename, mime)
        ents = auto_entities(caption or "")
        msg = self._new_message(chat, user, document=doc, caption=caption, caption_entities=ents)
        self._push_update("message", msg)
        return msg

    def press_button(
        self,
        user_id: int,
        message_id: int,
        callback_data: str,
        chat_id: int | None = None,
        forged: bool = False,
    ) -> str:
        """A user presses an inline button of a message; returns the callback query id.
        ``forged=True``: a modified client sends ``callback_data`` that no button carries."""
        cid = user_id if chat_id is None else chat_id
        msg = self._msgs.get(cid, {}).get(message_id)
        if msg is None:
            raise AssertionError(f"no message {message_id} in chat {cid}")
        rows = (msg.get("reply_markup") or {}).get("inline_keyboard", [])
        if not forged and callback_data not in [
            b.get("callback_data") for row in rows for b in row
        ]:
            raise AssertionError(f"message {message_id} has no button {callback_data!r}: {rows}")
        query_id = str(next(self._query_ids))
        self._queries[query_id] = False
        user, instance = self._user(user_id, None, "User"), str(abs(cid) + 1000)
        query = {"id": query_id, "from": user, "message": msg, "chat_instance": instance}
        self._push_update("callback_query", query | {"data": callback_data})
        return query_id

    def send_inline_query(self, user_id: int, query: str, chat_type: str = "supergroup") -> str:
        """A user types ``@bot query`` in a chat of ``chat_type``; returns the inline query id."""
        query_id = str(next(self._query_ids))
        self._inline[query_id] = False
        user = self._user(user_id, None, "User")
        inline = {
            "id": query_id,
            "from": user,
            "query": query,
            "offset": "",
            "chat_type": chat_type,
        }
        self._push_update("inline_query", inline)
        return query_id

    def choose_inline_result(
        self, user_id: int, chat_id: int, query_id: str, result_id: str
    ) -> JSON:
        """The user taps a result: its message appears in ``chat_id``, sent by the user via the
        bot, as Telegram does it (the bot is not told: no chosen_inline_result feedback)."""
        answer = self.inline_answers[query_id]
        result = next(r for r in answer["results"] if r["id"] == result_id)
        chat = self._chats.get(chat_id) or {"id": chat_id, "type": "supergroup", "title": "Other"}
        self._chats.setdefault(chat_id, chat)
        user = self._user(user_id, None, "User")
        fields = {"entities": result["entities"], "via_bot": self._bot_from()}
        return self._new_message(chat, user, text=result["text"], **fields)

    # Observing the bot.

    def messages(self, chat_id: int) -> list[JSON]:
        """Current messages of a chat (users' and the bot's; edits applied, deletions gone)."""
        return [m for _, m in sorted(self._msgs.get(chat_id, {}).items())]

    async def wait_for(
        self, predicate: Callable[[JSON], bool], timeout: float = WAIT, start: int = 0
    ) -> JSON:
        """The first entry of ``sent[start:]`` matching ``predicate``, waiting for it."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for entry in self.sent[start:]:
                if predicate(entry):
                    return entry
            if not await self._wait_change(deadline):
                raise AssertionError(f"no matching message in {timeout}s; sent: {self._summary()}")

    async def wait_answered(self, query_id: str, timeout: float = WAIT) -> JSON:
        """Wait until the bot answers callback query ``query_id``; its answerCallbackQuery."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for answered in self.answered_callbacks:
                if str(answered.get("callback_query_id")) == query_id:
                    return answered
            if not await self._wait_change(deadline):
                raise AssertionError(f"callback query {query_id} not answered in {timeout}s")

    async def wait_inline_answer(self, query_id: str, timeout: float = WAIT) -> JSON:
        """Wait until the bot answers inline query ``query_id``; its answer, results parsed."""
        deadline = asyncio.get_running_loop().time() + timeout
        while query_id not in self.inline_answers:
            if not await self._wait_change(deadline):
                raise AssertionError(f"inline query {query_id} not answered in {timeout}s")
        return self.inline_answers[query_id]

    async def wait_polled_past(self, update_id: int, timeout: float = WAIT) -> None:
        """Wait until the bot has fetched updates again after ``update_id`` (it has taken that
        update off the queue; whether it has finished handling it is the bot's side)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not any(offset > update_id for offset in self.polled_offsets):
            if not await self._wait_change(deadline):
                raise AssertionError(f"the bot did not poll past update {update_id} in {timeout}s")

    async def wait_messages(self, chat_id: int, count: int, timeout: float = WAIT) -> list[JSON]:
        """Wait until the bot sent >= ``count`` new messages (not edits) to a chat; return them."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = [s for s in self.sent if s["chat_id"] == chat_id and s["method"][:4] == "send"]
            if len(found) >= count:
                return found
            if not await self._wait_change(deadline):
                raise AssertionError(
                    f"{len(found)}/{count} messages to {chat_id} in {timeout}s: {self._summary()}"
                )

    # Fault injection.

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int = 1,
        description: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an error."""
        faults = self._faults.setdefault(method.lower(), [])
        faults.extend([(status, retry_after, description)] * times)

    def delay_next(self, method: str, seconds: float, times: int = 1) -> None:
        """Delay the next ``times`` calls of ``method`` by ``seconds``."""
        self._delays.setdefault(method.lower(), []).extend([seconds] * times)

    # Internals.

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, deadline: float) -> bool:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            await asyncio.wait_for(self._changed.wait(), max(remaining, 0))
        except TimeoutError:
            return False
        return True

    def _summary(self) -> str:
        keys = ("method", "chat_id", "message_id", "text")
        return pprint.pformat([{k: s[k] for k in keys} for s in self.sent])

    def _bot_from(self) -> JSON:  # Message.from of the bot's messages (no getMe-only fields)
        return {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}

    def _user(self, user_id: int, username: str | None, first_name: str) -> JSON:
        user: JSON = {"id": user_id, "is_bot": False, "first_name": first_name}
        language = self.languages.get(user_id, "en")
        return (
            user
            | ({"username": username} if username else {})
            | ({"language_code": language} if language else {})
        )

    def _touch_chat(self, user: JSON, chat_id: int | None, chat_type: str) -> JSON:
        if chat_type == "private":
            chat = {k: v for k, v in user.items() if k in ("id", "first_name", "username")}
            chat["type"] = "private"
        elif chat_id is None or chat_id >= 0:
            raise ValueError("group chats need a negative chat_id")
        else:
            chat = {"id": chat_id, "type": chat_type, "title": f"Test {chat_type}"}
        return self._chats.setdefault(chat["id"], chat)

    def _new_message(self, chat: JSON, sender: JSON, **fields: Any) -> JSON:
        msgs = self._msgs.setdefault(chat["id"], {})
        mid = self._last_id[chat["id"]] = self._last_id.get(chat["id"], 0) + 1  # ids never reused
        msg = {"message_id": mid, "from": sender, "chat": chat, "date": int(time.time())}
        msgs[mid] = msg | {k: v for k, v in fields.items() if v is not None and v != []}
        return msgs[mid]

    def _push_update(self, kind: str, obj: JSON) -> None:
        self.last_update_id = next(self._update_ids)
        self._updates.append({"update_id": self.last_update_id, kind: obj})
        self._notify()

    def _store_file(self, data: bytes, filename: str, mime: str) -> JSON:
        n = next(self._file_ids)
        doc: JSON = {"file_id": f"BQACAgIAAxkBAAI{n:06d}", "file_unique_id": f"AgAD{n:04d}",
                     "file_name": filename, "mime_type": mime, "file_size": len(data)}  # fmt: skip
        path = f"documents/file_{n}{mimetypes.guess_extension(mime) or ''}"
        self._files[doc["file_id"]] = (doc | {"file_path": path}, data)
        return doc

    def _record(self, method: str, msg: JSON, raw: str | None, markup: JSON | None) -> None:
        reply, text = msg.get("reply_to_message"), msg.get("text", msg.get("caption", ""))
        self.sent.append({
            "method": method, "chat_id": msg["chat"]["id"], "message_id": msg["message_id"],
            "text": text, "html": text if raw is None else raw,
            "entities": msg.get("entities", msg.get("caption_entities", [])),
            "reply_markup": markup, "reply_to_message_id": reply["message_id"] if reply else None,
            "document": msg.get("document"), "message": msg,
        })  # fmt: skip
        self._notify()

    def _chat_of(self, p: JSON) -> JSON:
        raw = p.get("chat_id")
        if raw is None or raw == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            chat = next((c for c in self._chats.values() if f"@{c.get('username')}" == raw), None)
        else:
            chat = self._chats.get(_param(p, "chat_id", "int"))
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    def _format(self, raw: str, p: JSON, ents_key: str, limit: int) -> tuple[str, list[JSON]]:
        """Apply parse_mode (or explicit entities), whitespace trimming and the length limit."""
        explicit, mode = _param(p, ents_key), str(p.get("parse_mode") or "").lower()
        if explicit:
            text, ents = raw, list(explicit)
        elif mode == "html":
            text, ents = parse_html(raw, self.strict_ampersand)
        elif mode in ("", "markdown", "markdownv2"):  # Markdown is not parsed by this fake
            text, ents = raw, []
        else:
            raise ApiError(400, "Bad Request: unsupported parse_mode")
        text, ents = _strip(text, ents)
        if utf16_len(text) > limit:
            what = "message" if ents_key == "entities" else "message caption"
            raise ApiError(400, f"Bad Request: {what} is too long")
        return text, ents

    @staticmethod
    def _markup(p: JSON) -> tuple[JSON | None, JSON | None]:
        """Validated (reply_markup as given, inline keyboard kept in the Message)."""
        markup = _param(p, "reply_markup")
        if not markup:
            return None, None
        if not isinstance(markup, dict):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        for button in itertools.chain.from_iterable(markup.get("inline_keyboard", [])):
            data = button.get("callback_data")
            if data is not None and not (isinstance(data, str) and 0 < len(data.encode()) <= 64):
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
            if not isinstance(button.get("text"), str) or not BUTTON_ACTIONS & button.keys():
                raise ApiError(400, "Bad Request: can't parse inline keyboard button")
            web_app = button.get("web_app")
            if web_app is not None and not str(web_app.get("url", "")).startswith("https://"):
                raise ApiError(400, "Bad Request: BUTTON_URL_INVALID")  # Mini Apps: https only
        return markup, (markup if "inline_keyboard" in markup else None)

    def _reply_to(self, chat_id: int, p: JSON) -> JSON | None:
        params = _param(p, "reply_parameters") or {}
        mid = params.get("message_id") or _param(p, "reply_to_message_id", "int")
        target = self._msgs.get(chat_id, {}).get(int(mid or 0))
        lenient = params.get("allow_sending_without_reply") or _param(
            p, "allow_sending_without_reply", "bool"
        )
        if mid and target is None and not lenient:
            raise ApiError(400, "Bad Request: message to be replied not found")
        return _shallow(target) if target else None

    def _editable(self, p: JSON) -> JSON:
        if p.get("inline_message_id"):
            raise ApiError(400, "Bad Request: MESSAGE_ID_INVALID")
        chat = self._chat_of(p)
        msg = self._msgs.get(chat["id"], {}).get(_param(p, "message_id", "int") or 0)
        if msg is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if msg["from"]["id"] != BOT_ID:
            raise ApiError(400, "Bad Request: message can't be edited")
        return msg

    def _replace(self, msg: JSON, **changes: Any) -> JSON:
        new = {k: v for k, v in msg.items() if k not in changes} | {"edit_date": int(time.time())}
        new.update({k: v for k, v in changes.items() if v is not None and v != []})
        self._msgs[msg["chat"]["id"]][msg["message_id"]] = new
        return new

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        entry = self._methods.get(request.match_info["method"].lower())
        if entry is None:
            return _error(404, "Not Found")
        name, handler = entry
        try:
            params = await _read_params(request)
        except ValueError:
            return _error(400, "Bad Request: can't parse request parameters")
        self.calls.append((name, params))
        if delays := self._delays.get(name.lower()):
            await asyncio.sleep(delays.pop(0))
        if faults := self._faults.get(name.lower()):
            status, retry_after, description = faults.pop(0)
            if status == 429:
                description = description or f"Too Many Requests: retry after {retry_after}"
                return _error(429, description, retry_after)
            return _error(status, description or HTTPStatus(status).phrase)
        try:
            return web.json_response({"ok": True, "result": await handler(params)})
        except ApiError as e:
            return _error(e.code, e.description, e.retry_after)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        for info, data in self._files.values():
            if info["file_path"] == request.match_info["path"]:
                return web.Response(body=data, content_type="application/octet-stream")
        return _error(404, "Not Found")

    # Bot API methods, looked up case-insensitively by the name after "_api_".

    async def _api_getMe(self, p: JSON) -> Any:
        return self.bot_user

    async def _api_close(self, p: JSON) -> Any:
        return True

    _api_logOut = _api_close

    async def _api_setWebhook(self, p: JSON) -> Any:
        allowed = _param(p, "allowed_updates")
        await self._api_deleteWebhook(p)
        if p.get("url"):
            self.webhook = {"url": p["url"]} | ({"allowed_updates": allowed} if allowed else {})
        return True

    async def _api_deleteWebhook(self, p: JSON) -> Any:
        self.webhook = {}
        if _param(p, "drop_pending_updates", "bool"):
            self._updates.clear()
        return True

    async def _api_getWebhookInfo(self, p: JSON) -> Any:
        info = {"url": "", "has_custom_certificate": False, "max_connections": 40}
        return info | self.webhook | {"pending_update_count": len(self._updates)}

    async def _api_getUpdates(self, p: JSON) -> Any:
        if self.webhook:
            raise ApiError(409, WEBHOOK_CONFLICT)
        offset, limit = _param(p, "offset", "int") or 0, _param(p, "limit", "int") or 100
        self.polled_offsets.append(offset)
        allowed = _param(p, "allowed_updates")
        self._allowed = self._allowed if allowed is None else list(allowed)
        if offset > 0:  # confirms every update before offset
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        self._poll_gen += 1
        gen = self._poll_gen
        self._notify()  # terminates an older long poll, as Telegram does
        deadline = asyncio.get_running_loop().time() + (_param(p, "timeout", "int") or 0)
        while True:
            ready = [u for u in self._updates if not self._allowed or set(u) & set(self._allowed)]
            if ready or self._closing:
                return ready[: min(max(limit, 1), 100)]
            if gen != self._poll_gen:
                raise ApiError(409, POLLING_CONFLICT)
            if not await self._wait_change(deadline):
                return []

    async def _api_sendMessage(self, p: JSON) -> Any:
        chat, raw = self._chat_of(p), str(p.get("text") or "")
        text, ents = self._format(raw, p, "entities", MAX_TEXT)
        if not text:
            raise ApiError(400, "Bad Request: message text is empty")
        markup, inline = self._markup(p)
        rows = (inline or {}).get("inline_keyboard", [])
        if chat["type"] != "private" and any("web_app" in b for row in rows for b in row):
            raise ApiError(400, "Bad Request: BUTTON_TYPE_INVALID")  # Mini App buttons: private
        reply = self._reply_to(chat["id"], p)
        fields = {"entities": ents, "reply_markup": inline, "reply_to_message": reply}
        msg = self._new_message(chat, self._bot_from(), text=text, **fields)
        self._record("sendMessage", msg, raw, markup)
        return msg

    async def _api_sendDocument(self, p: JSON) -> Any:
        chat, doc = self._chat_of(p), p.get("document")
        if isinstance(doc, str) and doc.startswith("attach://"):
            doc = p.get(doc[len("attach://") :])
        if isinstance(doc, Upload):
            mime = doc.content_type or mimetypes.guess_type(doc.filename)[0]
            info = self._store_file(doc.data, doc.filename, mime or "application/octet-stream")
        elif isinstance(doc, str) and doc in self._files:
            info = {k: v for k, v in self._files[doc][0].items() if k != "file_path"}
        else:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        raw = str(p.get("caption") or "")
        caption, ents = self._format(raw, p, "caption_entities", MAX_CAPTION)
        markup, inline = self._markup(p)
        fields = {"caption": caption or None, "caption_entities": ents, "reply_markup": inline}
        fields["reply_to_message"] = self._reply_to(chat["id"], p)
        msg = self._new_message(chat, self._bot_from(), document=info, **fields)
        self._record("sendDocument", msg, raw, markup)
        return msg

    async def _api_editMessageText(self, p: JSON) -> Any:
        msg, raw = self._editable(p), str(p.get("text") or "")
        if "text" not in msg:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        text, ents = self._format(raw, p, "entities", MAX_TEXT)
        if not text:
            raise ApiError(400, "Bad Request: message text is empty")
        markup, inline = self._markup(p)  # no reply_markup removes the keyboard
        if (text, ents, inline) == (msg["text"], msg.get("entities", []), msg.get("reply_markup")):
            raise ApiError(400, NOT_MODIFIED)
        new = self._replace(msg, text=text, entities=ents, reply_markup=inline)
        self._record("editMessageText", new, raw, markup)
        return new

    async def _api_editMessageReplyMarkup(self, p: JSON) -> Any:
        msg = self._editable(p)
        markup, inline = self._markup(p)
        if inline == msg.get("reply_markup"):
            raise ApiError(400, NOT_MODIFIED)
        new = self._replace(msg, reply_markup=inline)
        self._record("editMessageReplyMarkup", new, None, markup)
        return new

    async def _api_deleteMessage(self, p: JSON) -> Any:
        chat, mid = self._chat_of(p), _param(p, "message_id", "int") or 0
        if self._msgs.get(chat["id"], {}).pop(mid, None) is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        self.deleted.append((chat["id"], mid))
        return True

    async def _api_answerCallbackQuery(self, p: JSON) -> Any:
        query_id = str(p.get("callback_query_id") or "")
        if self._queries.get(query_id, True):  # unknown or already answered
            raise ApiError(400, QUERY_TOO_OLD)
        self._queries[query_id] = True
        self.answered_callbacks.append(dict(p))
        self._notify()
        return True

    async def _api_answerInlineQuery(self, p: JSON) -> Any:
        """Validated like Telegram: at most 50 results, ids of 1-64 bytes and unique, each
        message text within 4096 characters after its parse_mode, with valid entities."""
        query_id = str(p.get("inline_query_id") or "")
        if self._inline.get(query_id, True):  # unknown or already answered
            raise ApiError(400, QUERY_TOO_OLD)
        results = _param(p, "results")
        if not isinstance(results, list):
            raise ApiError(400, "Bad Request: can't parse inline query results JSON object")
        if len(results) > MAX_INLINE_RESULTS:
            raise ApiError(400, "Bad Request: RESULTS_TOO_MUCH")
        parsed, ids = [], set()
        for r in results:
            rid = r.get("id") if isinstance(r, dict) else None
            if not isinstance(rid, str) or not 0 < len(rid.encode()) <= 64:
                raise ApiError(400, "Bad Request: RESULT_ID_INVALID")
            if rid in ids:
                raise ApiError(400, "Bad Request: RESULT_ID_DUPLICATE")
            ids.add(rid)
            if r.get("type") != "article":  # the only kind this fake knows
                raise ApiError(400, "Bad Request: RESULT_TYPE_INVALID")
            if not str(r.get("title") or "").strip():
                raise ApiError(400, "Bad Request: RESULT_TITLE_EMPTY")
            content = r.get("input_message_content") or {}
            raw = str(content.get("message_text") or "")
            text, ents = self._format(raw, content, "entities", MAX_TEXT)
            if not text:
                raise ApiError(400, "Bad Request: MESSAGE_EMPTY")
            self._markup({"reply_markup": r.get("reply_markup")})
            parsed.append(r | {"text": text, "entities": ents, "html": raw})
        button = _param(p, "button")
        if button is not None:
            start = str(button.get("start_parameter") or "")
            if not str(button.get("text") or "") or (
                "web_app" not in button and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", start)
            ):
                raise ApiError(400, "Bad Request: BUTTON_INVALID")
        self._inline[query_id] = True
        self.inline_answers[query_id] = dict(p) | {"results": parsed, "button": button}
        self._notify()
        return True

    async def _api_sendChatAction(self, p: JSON) -> Any:
        chat = self._chat_of(p)
        if p.get("action") not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        self.chat_actions.append((chat["id"], str(p["action"])))
        return True

    @staticmethod
    def _commands_key(p: JSON) -> str:
        scope = _param(p, "scope") or {"type": "default"}
        return json.dumps([scope, p.get("language_code") or ""], sort_keys=True)

    async def _api_setMyCommands(self, p: JSON) -> Any:
        commands = _param(p, "commands") or []
        for c in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(c.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(c.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: command description is invalid")
        self._my_commands[self._commands_key(p)] = self.commands = list(commands)
        return True

    async def _api_getMyCommands(self, p: JSON) -> Any:
        return self._my_commands.get(self._commands_key(p), [])

    async def _api_deleteMyCommands(self, p: JSON) -> Any:
        self._my_commands.pop(self._commands_key(p), None)
        return True

    async def _api_getFile(self, p: JSON) -> Any:
        entry = self._files.get(str(p.get("file_id") or ""))
        if entry is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if entry[0]["file_size"] > MAX_DOWNLOAD:
            raise ApiError(400, "Bad Request: file is too big")
        return {k: entry[0][k] for k in ("file_id", "file_unique_id", "file_size", "file_path")}
