"""A local web site for feed tests: RSS, Atom and sitemap documents and article pages that a
test changes between polls, with ETag/304, errors and slow answers. Binds 127.0.0.1, port 0."""

from __future__ import annotations

import html
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Resource:
    body: bytes
    media_type: str = "text/html; charset=utf-8"
    status: int = 200
    delay: float = 0.0  # seconds before answering (a slow feed)
    etag: str = ""  # answered with 304 when the client sends it back


@dataclass
class Site:
    """What the server serves, by path; tests edit it while the server runs."""

    base: str = ""
    pages: dict[str, Resource] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    not_modified: Counter[str] = field(default_factory=Counter)

    def url(self, path: str) -> str:
        return self.base + path

    def put(self, path: str, body: str | bytes, media_type: str = "", **kw: object) -> str:
        data = body.encode() if isinstance(body, str) else body
        default = "text/html; charset=utf-8"
        self.pages[path] = Resource(data, media_type or default, **kw)  # type: ignore[arg-type]
        return self.url(path)


def page(title: str, paragraphs: list[str], outlet: str = "The Coastal Gazette",
         published: str = "2025-03-14", canonical: str = "") -> str:  # fmt: skip
    """An article page as a newsroom's CMS writes it."""
    link = f'<link rel="canonical" href="{html.escape(canonical)}">' if canonical else ""
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)} | {html.escape(outlet)}</title>
<meta property="og:title" content="{html.escape(title)}">
<meta property="og:site_name" content="{html.escape(outlet)}">
<meta property="article:published_time" content="{published}T08:00:00Z">{link}
</head><body><nav><a href="/">Home</a></nav><article><h1>{html.escape(title)}</h1>
{body}</article><footer>Copyright</footer></body></html>"""


def rss(title: str, items: list[dict[str, str]]) -> str:
    """RSS 2.0; item keys: guid, link, title, date (RFC 822), description, content."""
    entries = []
    for item in items:
        parts = [f"<{k}>{html.escape(item[k])}</{k}>" for k in ("title", "link") if k in item]
        if "guid" in item:
            parts.append(f'<guid isPermaLink="false">{html.escape(item["guid"])}</guid>')
        if "date" in item:
            parts.append(f"<pubDate>{item['date']}</pubDate>")
        if "description" in item:
            parts.append(f"<description>{html.escape(item['description'])}</description>")
        if "content" in item:
            parts.append(f"<content:encoded><![CDATA[{item['content']}]]></content:encoded>")
        entries.append("<item>" + "".join(parts) + "</item>")
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        f"<title>{html.escape(title)}</title><link>http://example.org/</link>"
        f"<description>news</description>{''.join(entries)}</channel></rss>"
    )


def atom(title: str, items: list[dict[str, str]]) -> str:
    """Atom 1.0; item keys: id, link, title, updated (ISO), summary."""
    entries = "".join(
        f"<entry><id>{html.escape(i['id'])}</id><title>{html.escape(i['title'])}</title>"
        f'<link href="{html.escape(i["link"])}"/><updated>{i["updated"]}</updated>'
        f"<summary>{html.escape(i.get('summary', ''))}</summary></entry>"
        for i in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{html.escape(title)}</title><id>urn:feed</id>"
        f"<updated>2025-03-15T00:00:00Z</updated>{entries}</feed>"
    )


def news_sitemap(outlet: str, items: list[tuple[str, str, str]]) -> str:
    """A Google News sitemap: (loc, title, publication date) per url."""
    urls = "".join(
        f"<url><loc>{html.escape(loc)}</loc><news:news><news:publication><news:name>"
        f"{html.escape(outlet)}</news:name><news:language>en</news:language></news:publication>"
        f"<news:publication_date>{day}</news:publication_date><news:title>{html.escape(title)}"
        "</news:title></news:news></url>"
        for loc, title, day in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><urlset '
        'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">' + urls + "</urlset>"
    )


def sitemap_index(children: list[str]) -> str:
    locs = "".join(f"<sitemap><loc>{html.escape(c)}</loc></sitemap>" for c in children)
    return (
        '<?xml version="1.0" encoding="UTF-8"?><sitemapindex '
        'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">' + locs + "</sitemapindex>"
    )


@contextmanager
def serve() -> Iterator[Site]:
    site = Site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path
            site.hits[path] += 1
            resource = site.pages.get(path)
            if resource is None:
                self._send(404, b"not found", "text/plain")
                return
            if resource.delay:
                time.sleep(resource.delay)
            if resource.etag and self.headers.get("If-None-Match") == resource.etag:
                site.not_modified[path] += 1
                self.send_response(304)
                self.send_header("ETag", resource.etag)
                self.end_headers()
                return
            extra = {"ETag": resource.etag} if resource.etag else {}
            self._send(resource.status, resource.body, resource.media_type, extra)

        def _send(
            self, status: int, body: bytes, media_type: str, extra: dict[str, str] | None = None
        ) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", media_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    site.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
