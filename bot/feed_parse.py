"""Feed documents -> items: RSS 2.0 and Atom (feedparser), news sitemaps and sitemap indexes
(lxml, with entities, DTDs and the network off). Pure functions: bytes in, items out.

Anything that is not a feed raises FeedError (an InputError), whatever the bytes hold.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from lxml import etree
from lxml import html as lxml_html

from bot.errors import InputError
from bot.metadata import parse_date

MAX_ITEMS = 5000  # items read from one document; a bigger feed is read in this many
MAX_SITEMAPS = 50  # child sitemaps of one sitemap index
MAX_URL = 2048
BLOCKS = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr"}
XML = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=False
)


# feedparser falls back to its loose parser without a content type; ours is always XML.
HEADERS = {"content-type": "application/xml"}


class FeedError(InputError):
    """The document is not a feed we can read."""


@dataclass(frozen=True)
class FeedItem:
    """One entry: its stable key (GUID, else link), link, and what a change would alter."""

    key: str
    link: str
    title: str = ""
    published: dt.date | None = None
    content: str = ""  # the item's own HTML or text (full text in some feeds, else a summary)
    version: str = ""  # changes when the entry is edited (a correction)


@dataclass
class ParsedFeed:
    kind: str  # rss, atom, sitemap, sitemapindex
    title: str = ""
    items: list[FeedItem] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)  # children of a sitemap index


def parse_feed(data: bytes, url: str) -> ParsedFeed:
    """The feed in `data` (fetched from `url`); raise FeedError when it is none."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        raise FeedError("the feed is empty")
    if head.startswith(b"<") and re.search(rb"<(\w+:)?(urlset|sitemapindex)[\s>]", data[:4096]):
        return parse_sitemap(data, url)
    return _parse_syndication(data, url)


def _parse_syndication(data: bytes, url: str) -> ParsedFeed:
    import feedparser  # slow import: only when a feed is polled

    try:
        parsed = feedparser.parse(data, response_headers=HEADERS | {"content-location": url})
    except Exception as exc:  # feedparser's sax and sgml paths fail in their own ways on junk
        raise FeedError(f"unreadable feed ({exc.__class__.__name__})") from exc
    version = str(parsed.get("version") or "")
    if not version:
        raise FeedError("not an RSS or Atom feed, nor a sitemap")
    kind = "atom" if version.startswith("atom") else "rss"
    title = _text(parsed.feed.get("title", ""))
    items: list[FeedItem] = []
    for entry in parsed.entries[:MAX_ITEMS]:
        link = web_link(_text(entry.get("link", "")), url)
        if not link:
            continue
        contents = entry.get("content") or []
        content = max((_text(c.get("value", "")) for c in contents), key=len, default="")
        content = content or _text(entry.get("summary", ""))
        when = entry.get("published_parsed") or entry.get("updated_parsed")
        headline = _text(entry.get("title", ""))
        key = _text(entry.get("id", "")) or link
        stamp = _text(entry.get("updated", "")) or _text(entry.get("published", ""))
        items.append(
            FeedItem(
                key=key[:MAX_URL],
                link=link,
                title=headline,
                published=_date_of(when),
                content=content,
                version=fingerprint(stamp, headline, link, content),
            )
        )
    return ParsedFeed(kind, title, items)


def parse_sitemap(data: bytes, url: str) -> ParsedFeed:
    """A `<urlset>` (with or without `news:` tags) or a `<sitemapindex>`."""
    try:
        root = etree.fromstring(data, parser=XML)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise FeedError(f"unreadable sitemap ({str(exc)[:120]})") from exc
    name = etree.QName(root).localname if isinstance(root.tag, str) else ""
    if name == "sitemapindex":
        children = [web_link(_child_text(s, "loc"), url) for s in _children(root, "sitemap")]
        return ParsedFeed("sitemapindex", sitemaps=[c for c in children if c][:MAX_SITEMAPS])
    if name != "urlset":
        raise FeedError("not an RSS or Atom feed, nor a sitemap")
    items: list[FeedItem] = []
    outlet = ""
    for node in _children(root, "url")[:MAX_ITEMS]:
        link = web_link(_child_text(node, "loc"), url)
        if not link:
            continue
        news = next(iter(_children(node, "news")), None)
        title, published, stamp = "", "", _child_text(node, "lastmod")
        if news is not None:
            title = _child_text(news, "title")
            published = _child_text(news, "publication_date")
            publication = next(iter(_children(news, "publication")), None)
            if publication is not None and not outlet:
                outlet = _child_text(publication, "name")
        items.append(
            FeedItem(
                key=link,
                link=link,
                title=title,
                published=parse_date(published[:10]) if published else None,
                version=fingerprint(stamp, published, title, link),
            )
        )
    return ParsedFeed("sitemap", outlet, items)


def _children(node: Any, name: str) -> list[Any]:
    """Child elements by local name, whatever their namespace (sitemaps vary)."""
    return [c for c in node if isinstance(c.tag, str) and etree.QName(c).localname == name]


def _child_text(node: Any, name: str) -> str:
    found = _children(node, name)
    return " ".join((found[0].text or "").split()) if found else ""


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _date_of(when: object) -> dt.date | None:
    try:
        return dt.datetime.fromtimestamp(calendar.timegm(when), dt.UTC).date()  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None


def web_link(link: str, base: str) -> str:
    """`link` made absolute against `base`, if it is a sensible http(s) URL; else ""."""
    link = link.strip()
    if not link or len(link) > MAX_URL or any(c.isspace() for c in link):
        return ""
    try:
        absolute = urljoin(base, link)
        parts = urlsplit(absolute)
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    return absolute


def fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()[:32]


def content_text(content: str) -> str:
    """A feed item's HTML (or plain text) as article text, paragraph by paragraph."""
    if "<" not in content:
        return content.strip()
    try:
        tree = lxml_html.fragment_fromstring(content, create_parent="div")
    except (etree.ParserError, ValueError):
        return ""
    for element in tree.iter():
        if isinstance(element.tag, str) and element.tag.lower() in BLOCKS:
            element.tail = "\n\n" + (element.tail or "")
    lines = (" ".join(line.split()) for line in tree.text_content().split("\n\n"))
    return "\n\n".join(line for line in lines if line)
