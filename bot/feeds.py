"""Feeds (RSS, Atom, news sitemaps) polled into the archive.

State lives in index/feeds.db, beside the index but not part of it: `reindex` never touches it.
Each item's page is fetched through the guarded fetcher (the SSRF rules of /add), extracted
like /add does it, and written through the caller's `write` (the writer lock in the CLI, the
writer thread in the bot). Dedupe: an item GUID already done (in any feed), a link or canonical
URL already in the archive, or the same text under another URL adds nothing; the same URL with
new text updates the article.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot import private, sources
from bot.corpus import Corpus
from bot.errors import FetchError, InputError, NotFound
from bot.feed_parse import FeedItem, ParsedFeed, content_text, parse_feed, web_link
from bot.fetch import Fetcher
from bot.i18n import message_of
from bot.models import Article, IngestReport
from bot.parse import check_article_text, parse
from bot.store import Store

DAY = 86400.0
MAX_BACKOFF = DAY  # a failing feed is tried at least daily
Write = Callable[[Article], IngestReport]
SCHEMA = """
CREATE TABLE IF NOT EXISTS feeds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL DEFAULT '',     -- the outlet given by the admin; else the feed's title
    title TEXT NOT NULL DEFAULT '',
    etag TEXT NOT NULL DEFAULT '',
    last_modified TEXT NOT NULL DEFAULT '',
    added_at REAL NOT NULL,
    last_poll REAL,
    last_new REAL,
    last_error TEXT NOT NULL DEFAULT '',
    failures INTEGER NOT NULL DEFAULT 0,
    failing_since REAL,
    next_due REAL NOT NULL DEFAULT 0,
    told INTEGER NOT NULL DEFAULT 0      -- admins were told it has failed for a day
);
CREATE TABLE IF NOT EXISTS items (
    feed_id INTEGER NOT NULL,
    key TEXT NOT NULL,                   -- GUID, else link
    link TEXT NOT NULL,
    version TEXT NOT NULL,               -- what was last done; '' while it has failed
    article_id TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,                 -- done, failed
    reason TEXT NOT NULL DEFAULT '',
    tries INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (feed_id, key)
);
CREATE INDEX IF NOT EXISTS items_key ON items(key);
-- What the archive holds, for dedupe: caught up from past the last look's ingest horizon.
CREATE TABLE IF NOT EXISTS archive (
    article_id TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,
    text_hash TEXT NOT NULL,             -- '' when the corpus file could not be read
    url TEXT NOT NULL                    -- normal_url() of the article's URL, or ''
);
CREATE INDEX IF NOT EXISTS archive_text ON archive(text_hash);
CREATE INDEX IF NOT EXISTS archive_url ON archive(url);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
DROP TABLE IF EXISTS texts;              -- the full-scan cache this replaced
"""


@dataclass
class Feed:
    id: int
    url: str
    source: str
    title: str
    etag: str
    last_modified: str
    added_at: float
    last_poll: float | None
    last_new: float | None
    last_error: str
    failures: int
    failing_since: float | None
    next_due: float
    told: bool

    @property
    def outlet(self) -> str:
        return self.source or self.title

    @property
    def state(self) -> str:
        if self.last_poll is None:
            return "new"
        return f"failing ({self.failures}x)" if self.failures else "ok"


@dataclass
class PollResult:
    """What one poll of one feed did."""

    feed: Feed
    added: list[Article] = field(default_factory=list)
    updated: list[Article] = field(default_factory=list)
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (item link, reason)
    error: str = ""  # the feed itself could not be read
    not_modified: bool = False  # 304: nothing was downloaded
    alert: bool = False  # failing for a day: tell the admins (once)
    waiting: int = 0  # new items beyond NEWSDESK_FEED_MAX_ITEMS, left for the next poll

    @property
    def line(self) -> str:
        if self.error:
            return f"feed {self.feed.id}: failed: {self.error}"
        parts = [f"{len(self.added)} added"]
        if self.updated:
            parts.append(f"{len(self.updated)} updated")
        parts += [f"{self.unchanged} unchanged", f"{len(self.failed)} failed"]
        more = f" ({self.waiting} more next poll)" if self.waiting else ""
        return f"feed {self.feed.id}: " + ", ".join(parts) + more


def text_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()


def normal_url(url: str) -> str:
    return url.strip().rstrip("/")


class FeedStore:
    """The feeds and what was done with their items (index/feeds.db)."""

    def __init__(self, index_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.db = private.open_db(index_dir / "feeds.db", SCHEMA)
        self.clock = clock
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:  # not under a job thread's query: that would free what it reads
            self.db.close()

    def add(self, url: str, source: str = "") -> Feed:
        link = web_link(url, "")
        if not link or link != url.strip():
            raise InputError(f"not an http(s) feed URL: {url[:200]!r}")
        if len(source) > 200:
            raise InputError("the outlet name is over 200 characters")
        try:
            with self._lock, self.db:
                cursor = self.db.execute(
                    "INSERT INTO feeds (url, source, added_at) VALUES (?,?,?)",
                    (link, " ".join(source.split()), self.clock()),
                )
        except sqlite3.IntegrityError:
            existing = next(f for f in self.all() if f.url == link)
            raise InputError(f"{link} is already feed {existing.id}") from None
        return self.get(int(cursor.lastrowid or 0))

    def remove(self, feed_id: int) -> Feed:
        feed = self.get(feed_id)
        with self._lock, self.db:
            self.db.execute("DELETE FROM feeds WHERE id=?", (feed_id,))
            self.db.execute("DELETE FROM items WHERE feed_id=?", (feed_id,))
        return feed

    def get(self, feed_id: int) -> Feed:
        rows = self._feeds("WHERE id=?", (feed_id,))
        if not rows:
            raise NotFound(f"no feed {feed_id}: list them with `feeds list` (or /feeds)")
        return rows[0]

    def all(self) -> list[Feed]:
        return self._feeds("ORDER BY id", ())

    def due(self) -> list[Feed]:
        return self._feeds("WHERE next_due <= ? ORDER BY id", (self.clock(),))

    def _feeds(self, clause: str, args: tuple[object, ...]) -> list[Feed]:
        with self._lock:
            rows = self.db.execute(
                "SELECT id, url, source, title, etag, last_modified, added_at, last_poll, "
                "last_new, last_error, failures, failing_since, next_due, told FROM feeds "
                + clause,
                args,
            ).fetchall()
        return [Feed(*row[:13], told=bool(row[13])) for row in rows]  # type: ignore[misc]

    def succeeded(self, feed: Feed, title: str, etag: str, modified: str, new: bool) -> None:
        now = self.clock()
        with self._lock, self.db:
            self.db.execute(
                "UPDATE feeds SET title=?, etag=?, last_modified=?, last_poll=?, last_error='', "
                "failures=0, failing_since=NULL, next_due=0, told=0, "
                "last_new=CASE WHEN ? THEN ? ELSE last_new END WHERE id=?",
                (title or feed.title, etag, modified, now, new, now, feed.id),
            )

    def failed(self, feed: Feed, error: str, interval: float) -> bool:
        """Record a failed poll and back off; True when the admins should now be told."""
        now = self.clock()
        failures = feed.failures + 1
        since = feed.failing_since or now
        alert = not feed.told and now - since >= DAY
        wait = min(MAX_BACKOFF, interval * 2 ** min(failures - 1, 20))
        with self._lock, self.db:
            self.db.execute(
                "UPDATE feeds SET last_poll=?, last_error=?, failures=?, failing_since=?, "
                "next_due=?, told=? WHERE id=?",
                (now, error[:500], failures, since, now + wait, feed.told or alert, feed.id),
            )
        return alert

    def item(self, feed_id: int, key: str) -> tuple[str, str] | None:
        """(version, state) of an item seen before."""
        with self._lock:
            row = self.db.execute(
                "SELECT version, state FROM items WHERE feed_id=? AND key=?", (feed_id, key)
            ).fetchone()
        return (row[0], row[1]) if row else None

    def done_elsewhere(self, key: str) -> str:
        """The article of an item with this GUID another feed has already done."""
        with self._lock:
            row = self.db.execute(
                "SELECT article_id FROM items WHERE key=? AND state='done'", (key,)
            ).fetchone()
        return str(row[0]) if row else ""

    def record(
        self, feed_id: int, item: FeedItem, state: str, article_id: str = "", reason: str = ""
    ) -> None:
        version = item.version if state == "done" else ""
        with self._lock, self.db:
            self.db.execute(
                "INSERT INTO items (feed_id, key, link, version, article_id, state, reason, tries)"
                " VALUES (?,?,?,?,?,?,?,1) ON CONFLICT(feed_id, key) DO UPDATE SET "
                "link=excluded.link, version=excluded.version, article_id=excluded.article_id, "
                "state=excluded.state, reason=excluded.reason, tries=tries+1",
                (feed_id, item.key, item.link, version, article_id, state, reason[:500]),
            )

    def catch_up(self, store: Store, corpus: Corpus) -> None:
        """Learn the text and URL of each article indexed since the last look. Only articles
        past the last look's horizon are read: a full scan of a large archive per feed item
        would hold the store's lock against the answers."""
        horizon = store.ingest_horizon()
        with self._lock:
            since = self.db.execute("SELECT value FROM meta WHERE key='horizon'").fetchone()
        rows = store.ready_since(since[0] if since else "")
        with self._lock:
            known = private.content_hashes(self.db, "archive", [r.id for r in rows])
        fresh = []
        for row in rows:
            if known.get(row.id) == row.content_hash:
                continue
            try:
                digest = text_hash(corpus.read(Path(row.path)).text)
            except (OSError, InputError):
                digest = ""
            fresh.append((row.id, row.content_hash, digest, normal_url(row.url) if row.url else ""))
        with self._lock, self.db:
            self.db.executemany("INSERT OR REPLACE INTO archive VALUES (?,?,?,?)", fresh)
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('horizon', ?)", (horizon,))

    def owner(self, store: Store, *, text: str = "", url: str = "") -> str:
        """The ready article with this text hash or this normal URL, else "". Call catch_up()
        first. A removed article is no owner: it may come back."""
        column, value = ("text_hash", text) if text else ("url", url)
        if not value:
            return ""
        with self._lock:
            rows = self.db.execute(
                f"SELECT article_id FROM archive WHERE {column}=?", (value,)
            ).fetchall()
        for (article_id,) in rows:
            row = store.article(article_id)
            if row is not None and row.state == "ready":
                return str(article_id)
        return ""


class Poller:
    """Polls feeds: conditional GET, new and changed items only, at most `max_items` a poll."""

    def __init__(
        self,
        feeds: FeedStore,
        fetcher: Fetcher,
        store: Store,
        corpus: Corpus,
        max_items: int,
        interval: float,
    ) -> None:
        self.feeds = feeds
        self.fetcher = fetcher
        self.store = store
        self.corpus = corpus
        self.max_items = max_items
        self.interval = interval  # seconds between polls: the first backoff step

    def poll(self, feed: Feed, write: Write) -> PollResult:
        result = PollResult(feed)
        try:
            fetched = self.fetcher.fetch(feed.url, feed.etag, feed.last_modified)
            if fetched.status == 304:
                result.not_modified = True
                self.feeds.succeeded(feed, feed.title, feed.etag, feed.last_modified, False)
                return result
            parsed = parse_feed(fetched.data, fetched.url)
            if parsed.kind == "sitemapindex":
                parsed = self._children(parsed)
        except InputError as exc:
            result.error = message_of(exc)  # a Said: each admin reads it in their language
            result.alert = self.feeds.failed(feed, result.error, self.interval)
            return result
        title = parsed.title or feed.title
        todo, result.unchanged = self._new_items(feed, parsed.items)
        result.waiting = max(0, len(todo) - self.max_items)
        for item in todo[: self.max_items]:
            self._item(feed, title or feed.url, item, write, result)
        new = bool(result.added or result.updated)
        self.feeds.succeeded(feed, title, fetched.etag, fetched.last_modified, new)
        return result

    def _children(self, index: ParsedFeed) -> ParsedFeed:
        """A sitemap index: its child sitemaps' items (a child that fails is skipped)."""
        merged = ParsedFeed("sitemap")
        errors = []
        for url in index.sitemaps:
            try:
                child = parse_feed(self.fetcher.fetch(url).data, url)
            except InputError as exc:
                errors.append(str(exc))
                continue
            merged.title = merged.title or child.title
            merged.items += child.items
        if errors and not merged.items:
            raise FetchError(f"no child sitemap could be read: {errors[0]}")
        return merged

    def _new_items(self, feed: Feed, items: list[FeedItem]) -> tuple[list[FeedItem], int]:
        """Items never done or changed since (new first, then earlier failures); and how
        many are unchanged."""
        fresh, retry, unchanged = [], [], 0
        seen: set[str] = set()
        for item in items:
            if item.key in seen:
                continue
            seen.add(item.key)
            known = self.feeds.item(feed.id, item.key)
            if known is None:
                fresh.append(item)
            elif known[1] == "failed" or known[0] != item.version:
                retry.append(item)
            else:
                unchanged += 1
        return fresh + retry, unchanged

    def _item(
        self,
        feed: Feed,
        outlet_default: str,
        item: FeedItem,
        write: Write,
        result: PollResult,
    ) -> None:
        self.feeds.catch_up(self.store, self.corpus)  # articles this poll just wrote, too
        first_time = self.feeds.item(feed.id, item.key) is None
        duplicate = self.feeds.done_elsewhere(item.key) or self.feeds.owner(
            self.store, url=normal_url(item.link)
        )
        if first_time and duplicate:  # another feed, an upload or a link has it already
            self.feeds.record(feed.id, item, "done", duplicate)
            result.unchanged += 1
            return
        try:
            article = self.article(feed, outlet_default, item)
            owner = self.feeds.owner(self.store, url=normal_url(article.url))
            if owner:  # the same URL: this updates that article (whatever its id)
                article.id = owner
            elif first_time and (
                same := self.feeds.owner(self.store, text=text_hash(article.text))
            ):  # the same text under another URL: a duplicate
                self.feeds.record(feed.id, item, "done", same)
                result.unchanged += 1
                return
            report = write(article)
        except InputError as exc:
            self.feeds.record(feed.id, item, "failed", reason=str(exc))
            result.failed.append((item.link, str(exc)))
            return
        if report.failed:
            reason = report.failed[0][1]
            self.feeds.record(feed.id, item, "failed", reason=reason)
            result.failed.append((item.link, reason))
            return
        done = (report.added + report.updated + report.unchanged)[0]
        self.feeds.record(feed.id, item, "done", done.id)
        result.added += report.added
        result.updated += report.updated
        result.unchanged += len(report.unchanged)

    def article(self, feed: Feed, outlet_default: str, item: FeedItem) -> Article:
        """The item's page as an article; else its own content when that is the full text."""
        try:
            source = sources.from_url(item.link, self.fetcher)
            parsed = parse(source)
            if not parsed.articles:
                raise InputError(parsed.failures[0][1] if parsed.failures else "no article")
            article = parsed.articles[0]
        except InputError as exc:
            text = content_text(item.content)
            try:
                check_article_text(text, b"")
            except InputError:
                raise InputError(f"{exc} (and the feed item holds no full text)") from exc
            article = Article(title=item.title or text[:80], text=text, url=item.link)
        article.source = feed.source or outlet_default
        article.published = item.published or article.published
        article.url = article.url or item.link
        article.title = article.title or item.title
        return article


def poll_feeds(poller: Poller, feeds: list[Feed], write: Write) -> list[PollResult]:
    """Poll each feed in turn; one feed's failure never stops the others."""
    return [poller.poll(feed, write) for feed in feeds]


def when(stamp: float | None) -> str:
    """A poll time as UTC text, for listings."""
    if stamp is None:
        return "never"
    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
