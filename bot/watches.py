"""Watches: journalists' standing queries, checked against newly indexed articles only.

"New" means: an article (from any source: a feed, an upload, a link, the command line) whose
id and content hash the checker has not seen; the first check only takes note of what is
already there. A match uses the answers' own relevance rule (the extractive composer's
abstention) on the new article's passages, and its best sentence is the quote. State lives in
index/watches.db: it survives `reindex`, whose unchanged articles are not new.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import private
from bot.answer import ExtractiveComposer
from bot.conversation import split_filters
from bot.embed import Embedder
from bot.errors import InputError, NotFound
from bot.i18n import _
from bot.models import Filters, Passage
from bot.store import ArticleRow, Store

HOUR = 3600.0
MAX_QUERY = 300
MAX_WATCHES = 20  # per user
SCHEMA = """
CREATE TABLE IF NOT EXISTS watches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    chat_id INTEGER NOT NULL,
    text TEXT NOT NULL,                  -- as typed: the query and its filters
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS matches (
    watch_id INTEGER NOT NULL,
    article_id TEXT NOT NULL,
    at REAL NOT NULL,
    pushed INTEGER NOT NULL,             -- 1: pushed; 0: held back by the hourly limit
    noted INTEGER NOT NULL DEFAULT 0,    -- a held match already counted in a later push
    title TEXT NOT NULL, source TEXT NOT NULL, published TEXT, url TEXT NOT NULL,
    quote TEXT NOT NULL,
    PRIMARY KEY (watch_id, article_id)
);
CREATE TABLE IF NOT EXISTS checked (article_id TEXT PRIMARY KEY, content_hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS digests (
    user_id INTEGER PRIMARY KEY, chat_id INTEGER NOT NULL, hhmm TEXT NOT NULL, last REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- the user's Telegram language when they last set a watch or digest (an admin: used /feeds):
-- alerts and digests are sent with no message of theirs to say it
CREATE TABLE IF NOT EXISTS languages (user_id INTEGER PRIMARY KEY, code TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS timelines (
    id INTEGER PRIMARY KEY AUTOINCREMENT, chat_id INTEGER NOT NULL, query TEXT NOT NULL,
    entries TEXT NOT NULL, at REAL NOT NULL
);
"""
TIMELINE_DAYS = 7  # a timeline's page buttons work this long


@dataclass(frozen=True)
class Watch:
    id: int
    user_id: int
    chat_id: int
    text: str

    def parsed(self) -> tuple[str, Filters]:
        return split_filters(self.text)


@dataclass(frozen=True)
class Match:
    """A new article that matches a watch, with its best sentence."""

    watch: Watch
    article_id: str
    title: str
    source: str
    published: dt.date | None
    url: str
    quote: str
    held: int = 0  # earlier matches of this watch held back for the digest, told now


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


class WatchStore:
    """Watches, their matches, digests and what has been checked (index/watches.db)."""

    def __init__(self, index_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.db = private.open_db(index_dir / "watches.db", SCHEMA)
        self.clock = clock
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:  # not under a job thread's query: that would free what it reads
            self.db.close()

    def _rows(self, sql: str, *args: object) -> list[Any]:
        with self._lock:
            return list(self.db.execute(sql, args).fetchall())

    def _write(self, sql: str, *args: object) -> sqlite3.Cursor:
        with self._lock, self.db:
            return self.db.execute(sql, args)

    # -- watches ---------------------------------------------------------------------------

    def add(self, user_id: int, chat_id: int, text: str) -> Watch:
        text = " ".join(text.split())
        query = split_filters(text)[0]  # a bad filter is refused here, with its reason
        if not query:
            raise InputError(_("say what to watch: /watch wind farm Kestrel Bay source:Reuters"))
        if len(text) > MAX_QUERY:
            raise InputError(_("a watch is at most {n} characters").format(n=MAX_QUERY))
        if len(self.of_user(user_id)) >= MAX_WATCHES:
            raise InputError(
                _("you have {n} watches: remove one with /unwatch ID").format(n=MAX_WATCHES)
            )
        cursor = self._write(
            "INSERT INTO watches (user_id, chat_id, text, created) VALUES (?,?,?,?)",
            user_id,
            chat_id,
            text,
            self.clock(),
        )
        return Watch(int(cursor.lastrowid or 0), user_id, chat_id, text)

    def remove(self, user_id: int, watch_id: int) -> Watch:
        """Remove one of the user's own watches (another's is "not found", not "forbidden")."""
        found = [w for w in self.of_user(user_id) if w.id == watch_id]
        if not found:
            raise NotFound(_("you have no watch {id}: /watches lists yours").format(id=watch_id))
        self.drop(watch_id)
        return found[0]

    def drop(self, watch_id: int) -> None:
        with self._lock, self.db:
            self.db.execute("DELETE FROM watches WHERE id=?", (watch_id,))
            self.db.execute("DELETE FROM matches WHERE watch_id=?", (watch_id,))

    def forget(self, user_id: int) -> int:
        """/forget: the user's watches, their matches and digest; how many rows went."""
        gone = 0
        with self._lock, self.db:
            for sql in (
                "DELETE FROM matches WHERE watch_id IN (SELECT id FROM watches WHERE user_id=?)",
                "DELETE FROM watches WHERE user_id=?",
                "DELETE FROM digests WHERE user_id=?",
                "DELETE FROM languages WHERE user_id=?",
            ):
                gone += self.db.execute(sql, (user_id,)).rowcount
        return gone

    def of_user(self, user_id: int) -> list[Watch]:
        rows = self._rows(
            "SELECT id, user_id, chat_id, text FROM watches WHERE user_id=? ORDER BY id", user_id
        )
        return [Watch(*row) for row in rows]

    def all(self) -> list[Watch]:
        rows = self._rows("SELECT id, user_id, chat_id, text FROM watches ORDER BY id")
        return [Watch(*row) for row in rows]

    # -- new articles ----------------------------------------------------------------------

    def begin(self, store: Store) -> None:
        """On the very first start, take note of the archive as it is (nothing is new)."""
        if not self._meta("started"):
            self.new_articles(store)

    def new_articles(self, store: Store) -> list[ArticleRow]:
        """Ready articles not checked in this version; the first call only takes note.

        Only articles from past the last call's horizon are read: listing a large archive
        every few seconds would hold the store's lock against the answers.
        """
        horizon = store.ingest_horizon()
        started = self._meta("started")
        # The first call reads everything, so that a re-index of old articles is not news.
        rows = store.ready_since(self._meta("horizon") if started else "")
        with self._lock:
            known = private.content_hashes(self.db, "checked", [r.id for r in rows])
        fresh = [r for r in rows if known.get(r.id) != r.content_hash]
        with self._lock, self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO checked VALUES (?,?)",
                [(r.id, r.content_hash) for r in fresh],
            )
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('started', '1')")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('horizon', ?)", (horizon,))
        return fresh if started else []

    def _meta(self, key: str) -> str:
        rows = self._rows("SELECT value FROM meta WHERE key=?", key)
        return str(rows[0][0]) if rows else ""

    # -- matches and pushes ----------------------------------------------------------------

    def record(self, match: Match, limit: int) -> Match | None:
        """Keep a match; the match to push now (with the held count), or None when the watch
        had `limit` pushes in the last hour (it waits for the digest) or had it already."""
        now = self.clock()
        (recent,) = self._rows(
            "SELECT COUNT(*) FROM matches WHERE watch_id=? AND pushed=1 AND at>?",
            match.watch.id,
            now - HOUR,
        )[0]
        push = int(recent) < limit
        with self._lock, self.db:
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO matches (watch_id, article_id, at, pushed, title, source,"
                " published, url, quote) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    match.watch.id,
                    match.article_id,
                    now,
                    int(push),
                    match.title,
                    match.source,
                    match.published.isoformat() if match.published else None,
                    match.url,
                    match.quote,
                ),
            )
            if not cursor.rowcount or not push:
                return None
            (held,) = self.db.execute(
                "SELECT COUNT(*) FROM matches WHERE watch_id=? AND pushed=0 AND noted=0",
                (match.watch.id,),
            ).fetchone()
            self.db.execute(
                "UPDATE matches SET noted=1 WHERE watch_id=? AND pushed=0", (match.watch.id,)
            )
        return Match(**{**match.__dict__, "held": int(held)})

    # -- digests ---------------------------------------------------------------------------

    def set_digest(self, user_id: int, chat_id: int, hhmm: str | None) -> None:
        if hhmm is None:
            self._write("DELETE FROM digests WHERE user_id=?", user_id)
            return
        self._write(
            "INSERT INTO digests VALUES (?,?,?,?) ON CONFLICT(user_id) DO UPDATE SET "
            "chat_id=excluded.chat_id, hhmm=excluded.hhmm",
            user_id,
            chat_id,
            hhmm,
            self.clock(),
        )

    def set_language(self, user_id: int, code: str) -> None:
        self._write(
            "INSERT INTO languages VALUES (?,?) "
            "ON CONFLICT(user_id) DO UPDATE SET code=excluded.code",
            user_id,
            code[:16],
        )

    def language(self, user_id: int) -> str:
        """The language to write to this user in ("" when never told: English)."""
        rows = self._rows("SELECT code FROM languages WHERE user_id=?", user_id)
        return str(rows[0][0]) if rows else ""

    def digests(self) -> list[tuple[int, int, str, float]]:
        rows = self._rows("SELECT user_id, chat_id, hhmm, last FROM digests")
        return [(int(u), int(c), str(h), float(last)) for u, c, h, last in rows]

    def digest_matches(self, user_id: int, since: float) -> list[Match]:
        rows = self._rows(
            "SELECT w.id, w.user_id, w.chat_id, w.text, m.article_id, m.title, m.source, "
            "m.published, m.url, m.quote FROM matches m JOIN watches w ON w.id = m.watch_id "
            "WHERE w.user_id=? AND m.at>? ORDER BY w.id, m.published, m.at",
            user_id,
            since,
        )
        return [Match(Watch(*r[:4]), r[4], r[5], r[6], _date(r[7]), r[8], r[9]) for r in rows]

    def digest_sent(self, user_id: int, at: float) -> None:
        self._write("UPDATE digests SET last=? WHERE user_id=?", at, user_id)

    # -- timelines (kept for their page buttons) -------------------------------------------

    def save_timeline(self, chat_id: int, query: str, entries: list[dict[str, Any]]) -> int:
        now = self.clock()
        self._write("DELETE FROM timelines WHERE at<?", now - TIMELINE_DAYS * 86400)
        cursor = self._write(
            "INSERT INTO timelines (chat_id, query, entries, at) VALUES (?,?,?,?)",
            chat_id,
            query,
            json.dumps(entries),
            now,
        )
        return int(cursor.lastrowid or 0)

    def timeline(self, timeline_id: int) -> tuple[int, str, list[dict[str, Any]]] | None:
        rows = self._rows("SELECT chat_id, query, entries FROM timelines WHERE id=?", timeline_id)
        if not rows:
            return None
        chat_id, query, entries = rows[0]
        return int(chat_id), str(query), json.loads(entries)


class WatchMatcher:
    """Does a new article answer a watch? The extractive composer's relevance rule decides."""

    def __init__(self, store: Store, embedder: Embedder, min_relevance: float) -> None:
        self.store = store
        self.embedder = embedder
        self.composer = ExtractiveComposer(embedder, 1, min_relevance)

    def matches(self, watch: Watch, rows: list[ArticleRow]) -> list[Match]:
        query, filters = watch.parsed()
        rows = [r for r in rows if _passes(r, filters)]
        if not rows:
            return []
        vector = self.embedder.encode_queries([query])[0]
        found = []
        for row in rows:
            passages = self.best_passages(row.id, vector)
            answer = self.composer.compose(query, vector, passages)
            if not answer.abstained and answer.citations:
                quote = answer.citations[0].quote
                found.append(
                    Match(watch, row.id, row.title, row.source, row.published, row.url, quote)
                )
        return found

    def best_passages(self, article_id: str, vector: object, k: int = 2) -> list[Passage]:
        passages = self.store.passages_of(article_id)
        stored = self.store.vectors([p.chunk.id for p in passages])
        for p in passages:
            if p.chunk.id in stored:
                p.dense = p.score = float(stored[p.chunk.id] @ vector)
        return sorted(passages, key=lambda p: -p.score)[:k]


def _passes(row: ArticleRow, filters: Filters) -> bool:
    if filters.source and row.source.lower() != filters.source.lower():
        return False
    if (filters.since or filters.until) and row.published is None:
        return False
    if filters.since and row.published and row.published < filters.since:
        return False
    return not (filters.until and row.published and row.published > filters.until)


def check_new(
    watches: WatchStore,
    matcher: WatchMatcher,
    store: Store,
    allowed: Callable[[Watch], bool],
    limit: int,
) -> tuple[list[Match], list[Watch]]:
    """New articles against every watch: (matches to push now, watches dropped because their
    owner is no longer allowed). Blocking: run it in a thread."""
    rows = watches.new_articles(store)
    if not rows:
        return [], []
    pushes, dropped = [], []
    for watch in watches.all():
        if not allowed(watch):
            watches.drop(watch.id)
            dropped.append(watch)
            continue
        for match in matcher.matches(watch, rows):
            push = watches.record(match, limit)
            if push is not None:
                pushes.append(push)
    return pushes, dropped
