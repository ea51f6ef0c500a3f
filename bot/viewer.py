"""Article pages behind citations: signed links, and the page that highlights the quotes.

A link names an article, the character spans an answer cited in it, an expiry and a short hash
of the cited text, all signed with HMAC-SHA256. The page is served by the bot's web server
(beside /healthz and /metrics): the whole article, escaped, with every cited span in <mark>
labelled [n]; the link's #cN fragment scrolls to the quote (no JavaScript). Anything wrong with
a link (tampered, expired, unknown or removed article, text changed since) gets a plain page
without a word of the article.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import html
import itertools
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from bot import private
from bot.config import Settings
from bot.errors import NewsdeskError
from bot.models import Article, Citation

if TYPE_CHECKING:  # the desk's heavy imports stay out of processes that only sign links
    from bot.desk import Desk

log = logging.getLogger(__name__)

KEY_FILE = "viewer.key"
MIN_SECRET_CHARS = 32
MAX_TOKEN_CHARS = 2048
MAX_SPANS = 50
_TOKEN = re.compile(r"(?P<body>[A-Za-z0-9_-]{1,2048})\.(?P<sig>[A-Za-z0-9_-]{43})")
_ID = re.compile(r"[0-9a-f]{1,64}")
_LANG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")


class BadLink(Exception):
    """Not a link this bot signed (or it was modified)."""


class ExpiredLink(Exception):
    """A genuine link past its expiry."""


@dataclass(frozen=True)
class Span:
    """Citation `n` is `article.text[start:end]`."""

    n: int
    start: int
    end: int


@dataclass(frozen=True)
class Link:
    article_id: str
    spans: tuple[Span, ...]
    expires: int  # unix seconds
    check: str  # hash of the cited text: a changed article does not show stale highlights


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def quote_check(quotes: Iterable[str]) -> str:
    """12 characters that change when any cited text changes."""
    return _b64(hashlib.sha256("\x1f".join(quotes).encode()).digest()[:9])


def text_check(text: str, spans: Iterable[Span]) -> str:
    return quote_check(text[s.start : s.end] for s in spans)


class Signer:
    """Makes and reads signed tokens; `now` is injectable so expiry can be tested."""

    def __init__(self, key: bytes, days: int, now: Callable[[], float] = time.time) -> None:
        self.key, self.days, self.now = key, days, now

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest())

    def token(self, link: Link) -> str:
        spans = ",".join(f"{s.n}.{s.start}.{s.end}" for s in link.spans)
        body = _b64(f"1:{link.article_id}:{spans}:{link.expires}:{link.check}".encode())
        return f"{body}.{self._sign(body)}"

    def make(self, article_id: str, spans: Sequence[Span], check: str) -> str:
        expires = int(self.now()) + self.days * 86400
        return self.token(Link(article_id, tuple(spans), expires, check))

    def read(self, token: str) -> Link:
        """The link a token carries; BadLink unless this key signed it, ExpiredLink after."""
        match = _TOKEN.fullmatch(token) if len(token) <= MAX_TOKEN_CHARS else None
        if match is None:
            raise BadLink("malformed")
        if not hmac.compare_digest(self._sign(match["body"]), match["sig"]):
            raise BadLink("bad signature")
        try:
            version, article_id, spans_text, expires, check = (
                _unb64(match["body"]).decode().split(":")
            )
            spans = tuple(
                Span(*(int(x) for x in part.split("."))) for part in spans_text.split(",")
            )
            link = Link(article_id, spans, int(expires), check)
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise BadLink("signed but unreadable") from exc  # only if the key leaked
        if version != "1" or not _ID.fullmatch(article_id) or not 0 < len(spans) <= MAX_SPANS:
            raise BadLink("signed but unreadable")
        if any(not (0 <= s.start < s.end and 0 < s.n < 1000) for s in spans):
            raise BadLink("signed but unreadable")
        if link.expires < self.now():
            raise ExpiredLink
        return link


def load_key(secret: str, index_dir: Path) -> bytes:
    """NEWSDESK_VIEWER_SECRET, else a random key made once in index/ (0600), shared by the bot
    and the CLI. Two processes making it at once agree: the first link() wins."""
    if secret:
        if len(secret) < MIN_SECRET_CHARS:
            raise NewsdeskError(
                f"NEWSDESK_VIEWER_SECRET must be at least {MIN_SECRET_CHARS} characters "
                "(or leave it empty: a random key is kept in index/)"
            )
        return secret.encode()
    path = private.private_dir(index_dir) / KEY_FILE
    if not path.exists():
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        private.write_text(tmp, secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)  # atomic, never replaces another process's key
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < MIN_SECRET_CHARS:
        raise NewsdeskError(f"{path} is damaged: delete it (open article links stop working)")
    return key.encode()


# -- the page ---------------------------------------------------------------------------------

CSS = (
    "body{margin:0;background:#fafaf7;color:#1b1b1b;font:17px/1.6 Georgia,serif}"
    "main{max-width:42rem;margin:0 auto;padding:1rem}"
    "h1{font-size:1.4rem;line-height:1.3;margin:.5rem 0}"
    ".meta,nav{font:14px/1.5 system-ui,sans-serif;color:#555}nav{margin-bottom:1rem}"
    "nav a,.meta a{color:#0645ad}"
    "article{white-space:pre-wrap;overflow-wrap:break-word}"
    "mark{background:#ffe066;padding:0 .1em}"
    ".n{font:bold 13px system-ui,sans-serif;color:#8a6d00;text-decoration:none;"
    "scroll-margin-top:3rem}"
    ".n:target{background:#8a6d00;color:#fff}"
    ":target+mark{background:#ffc400}"
    "@media (prefers-color-scheme:dark){body{background:#161616;color:#e8e8e8}"
    "mark{background:#6b5800;color:#fff}:target+mark{background:#8f7500}"
    ".meta,nav{color:#aaa}nav a,.meta a{color:#8ab4f8}.n{color:#e0c050}}"
)
CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CSP = (
    f"default-src 'none'; style-src 'sha256-{CSS_HASH}'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token must not leak to the original's site
    "Cache-Control": "no-store",  # a removed article is gone at once, caches included
    "X-Robots-Tag": "noindex, nofollow",
}
PROBLEMS = {
    403: "This link is not valid.",
    404: "This article is not available.",
    410: "This link has expired. Ask the bot again for a fresh one.",
}


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def highlighted(text: str, spans: Sequence[Span]) -> str:
    """The escaped text with each cited span in <mark data-c="n …">, labelled [n] at its start.
    Overlapping spans share the overlap; the label is outside the mark, so the marked text of
    citation n is exactly text[start:end]."""
    size = len(text)
    spans = [s for s in spans if s.end <= size]
    cuts = sorted({0, size, *(s.start for s in spans), *(s.end for s in spans)})
    starts: dict[int, list[int]] = {}
    for s in sorted(spans, key=lambda s: s.n):
        starts.setdefault(s.start, []).append(s.n)
    out = []
    for a, b in itertools.pairwise(cuts):
        for n in starts.get(a, []):
            out.append(f'<a class="n" id="c{n}" href="#c{n}">[{n}]</a>')
        piece = _esc(text[a:b])
        covering = [str(s.n) for s in spans if s.start <= a and b <= s.end]
        out.append(f'<mark data-c="{" ".join(covering)}">{piece}</mark>' if covering else piece)
    return "".join(out)


def page_html(article: Article, spans: Sequence[Span]) -> str:
    date = article.published.isoformat() if article.published else ""
    meta = " · ".join(_esc(x) for x in (article.source, date, article.language) if x)
    original = ""
    if article.url.startswith(("https://", "http://")):
        original = (
            f' · <a href="{_esc(article.url)}" rel="noopener noreferrer">original article</a>'
        )
    cited = " ".join(f'<a href="#c{s.n}">[{s.n}]</a>' for s in sorted(spans, key=lambda s: s.n))
    lang = article.language if _LANG.fullmatch(article.language) else "und"
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_esc(article.title) or 'Article'}</title><style>{CSS}</style></head>"
        f"<body><main><header><h1>{_esc(article.title) or '(untitled)'}</h1>"
        f'<p class="meta">{meta or "outlet and date unknown"}{original}</p>'
        f"<nav>Cited: {cited}</nav></header>"
        f"<article>{highlighted(article.text, spans)}</article></main></body></html>"
    )


def problem_page(status: int) -> web.Response:
    body = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{status}</title>'
        f"</head><body><p>{PROBLEMS[status]}</p></body></html>"
    )
    # 410 is said as 403: a client should not learn more than "not for you" about a link.
    code = 403 if status == 410 else status
    return web.Response(
        status=code, text=body, content_type="text/html", charset="utf-8", headers=HEADERS
    )


ArticleLoader = Callable[[str], Article | None]


class Viewer:
    """Signs links for citations, and serves them at PUBLIC_URL's path + /a/TOKEN."""

    def __init__(self, public_url: str, signer: Signer, load: ArticleLoader) -> None:
        self.base = public_url.rstrip("/")
        self.path = urlsplit(self.base).path + "/a/"
        self.signer, self.load = signer, load

    def page_url(self, article_id: str, spans: Sequence[Span], check: str) -> str:
        return self.base + "/a/" + self.signer.make(article_id, spans, check)

    def links(self, citations: Sequence[Citation]) -> dict[int, str]:
        """Citation n -> its article's page with every span of these citations in that article,
        scrolled to quote n."""
        grouped: dict[str, list[Citation]] = {}
        for c in citations:
            grouped.setdefault(c.article_id, []).append(c)
        urls = {}
        for article_id, cites in grouped.items():
            spans = [Span(c.n, c.start, c.end) for c in cites]
            # The citation carries the quoted text: hashed as the page hashes the article's.
            check = quote_check(c.quote for c in cites)
            url = self.page_url(article_id, spans, check)
            urls.update({c.n: f"{url}#c{c.n}" for c in cites})
        return urls

    def routes(self) -> list[web.RouteDef]:
        return [web.get(self.path + "{token}", self.page)]

    async def page(self, request: web.Request) -> web.Response:
        link = self.read(self.signer, request.match_info["token"])
        return link if isinstance(link, web.Response) else await self.article_page(link)

    @staticmethod
    def read(signer: Signer, token: str) -> Link | web.Response:
        """The link a token carries, or the refusal to send."""
        try:
            return signer.read(token)
        except BadLink as exc:
            log.info("refused an article link: %s", exc)
            return problem_page(403)
        except ExpiredLink:
            return problem_page(410)

    async def article_page(self, link: Link, headers: Mapping[str, str] = HEADERS) -> web.Response:
        article = await asyncio.to_thread(self.load, link.article_id)
        if article is None or text_check(article.text, link.spans) != link.check:
            return problem_page(404)  # unknown, removed, or changed since the answer
        return web.Response(
            text=page_html(article, link.spans),
            content_type="text/html",
            charset="utf-8",
            headers=headers,
        )


def corpus_loader(desk: Desk) -> ArticleLoader:
    """An article by id, only while the index has it ready (a removal hides it at once)."""

    def load(article_id: str) -> Article | None:
        row = desk.store.article(article_id)
        if row is None or row.state != "ready":
            return None
        try:
            article = desk.corpus.read(Path(row.path))
        except (OSError, NewsdeskError, ValueError, IndexError) as exc:
            log.warning("article %s is in the index but its file is unreadable: %s", row.id, exc)
            return None
        return article if article.id == article_id else None

    return load


def links_for(viewer: Viewer | None, citations: Sequence[Citation]) -> Mapping[int, str]:
    return viewer.links(citations) if viewer else {}


def build_viewer(settings: Settings, desk: Desk) -> Viewer:
    """The viewer for NEWSDESK_PUBLIC_URL, its key and the desk's articles."""
    key = load_key(settings.viewer_secret.get_secret_value(), settings.index_dir)
    signer = Signer(key, settings.viewer_link_days)
    return Viewer(settings.public_url, signer, corpus_loader(desk))
