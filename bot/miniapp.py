"""The article page as a Telegram Mini App, for allowed users only.

Under the Quotes of an answer in a private chat (NEWSDESK_PUBLIC_URL must be https), a button
opens the same page inside Telegram. Its link is signed with a key of its own, so it is not a
bearer link: Telegram hands the Mini App `initData` (the user, a date, an HMAC keyed with the
bot token, as https://core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app
describes), a small inline script sends it with the request, and the page is served only when
the signature holds, it is recent, and the user is on the allow-list.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Sequence
from urllib.parse import parse_qsl

from aiohttp import web

from bot.models import Citation
from bot.viewer import (
    CSS_HASH,
    HEADERS,
    BadLink,
    Signer,
    Span,
    Viewer,
    problem_page,
    quote_check,
)

log = logging.getLogger(__name__)

MAX_AGE = 24 * 3600  # initData older than this is refused (Telegram signs it when opening)
MAX_INIT_CHARS = 4096
# Reads Telegram's launch parameters from the fragment and asks again with them in the query.
BOOT_JS = (
    'var h=new URLSearchParams(location.hash.slice(1)),d=h.get("tgWebAppData"),'
    'c=new URLSearchParams(location.search).get("c")||"1";'
    'if(d){location.replace(location.pathname+"?c="+encodeURIComponent(c)+"&tgWebAppData="+'
    'encodeURIComponent(d)+"#c"+encodeURIComponent(c))}'
    'else{document.getElementById("m").textContent="Open this page from Telegram."}'
)
BOOT_HASH = base64.b64encode(hashlib.sha256(BOOT_JS.encode()).digest()).decode()
FRAMED_BY = "https://web.telegram.org"  # Telegram Web shows Mini Apps in an iframe
APP_HEADERS = HEADERS | {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{CSS_HASH}'; script-src 'sha256-{BOOT_HASH}'; "
        f"base-uri 'none'; form-action 'none'; frame-ancestors {FRAMED_BY}"
    )
}


def init_data_user(init_data: str, bot_token: str, now: float, max_age: int = MAX_AGE) -> int:
    """The Telegram user id that `initData` vouches for; BadLink if it does not hold."""
    if not init_data or len(init_data) > MAX_INIT_CHARS:
        raise BadLink("no or over-long initData")
    try:
        fields = dict(parse_qsl(init_data, keep_blank_values=True, strict_parsing=True))
    except ValueError as exc:
        raise BadLink("malformed initData") from exc
    given = fields.pop("hash", "")
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()
    expected = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        raise BadLink("initData signature does not match")
    try:
        auth_date = int(fields.get("auth_date", ""))
        user = json.loads(fields.get("user", ""))
        user_id = int(user["id"])
    except (ValueError, TypeError, KeyError) as exc:
        raise BadLink("initData without a user or date") from exc
    if not now - max_age <= auth_date <= now + 60:
        raise BadLink("initData too old")
    return user_id


def boot_page() -> web.Response:
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>Article</title></head><body><p id="m">Opening…</p><script>{BOOT_JS}</script>'
        "</body></html>"
    )
    return web.Response(text=body, content_type="text/html", charset="utf-8", headers=APP_HEADERS)


class MiniApp:
    """Mini App links (PUBLIC_URL path + /app/TOKEN?c=N) and the page behind them."""

    def __init__(
        self,
        viewer: Viewer,
        bot_token: str,
        allowed: Callable[[int], bool],
        now: Callable[[], float] = time.time,
    ) -> None:
        key = hmac.new(viewer.signer.key, b"newsdesk mini app", hashlib.sha256).digest()
        self.signer = Signer(key, viewer.signer.days, now)
        self.viewer, self.bot_token, self.allowed, self.now = viewer, bot_token, allowed, now

    def url(self, citations: Sequence[Citation]) -> str:
        """The first citation's article, with this answer's spans in it, opened at quote 1."""
        first = citations[0]
        cites = [c for c in citations if c.article_id == first.article_id]
        spans = [Span(c.n, c.start, c.end) for c in cites]
        token = self.signer.make(first.article_id, spans, quote_check(c.quote for c in cites))
        return f"{self.viewer.base}/app/{token}?c={first.n}"

    def routes(self) -> list[web.RouteDef]:
        path = self.viewer.path.removesuffix("/a/") + "/app/{token}"
        return [web.get(path, self.page)]

    async def page(self, request: web.Request) -> web.Response:
        link = self.viewer.read(self.signer, request.match_info["token"])
        if isinstance(link, web.Response):
            return link
        init_data = request.query.get("tgWebAppData", "")
        if not init_data:
            return boot_page()  # not a word of the article before Telegram vouches
        try:
            user_id = init_data_user(init_data, self.bot_token, self.now())
        except BadLink as exc:
            log.info("refused a Mini App page: %s", exc)
            return problem_page(403)
        if not self.allowed(user_id):
            log.info("refused a Mini App page to user %s: not allowed", user_id)
            return problem_page(403)
        return await self.viewer.article_page(link, APP_HEADERS)
