"""The journal: answers given in Telegram (so buttons can find them again), 👍/👎 votes, and
the audit log of admin actions.

A separate SQLite file: `reindex` rebuilds the index but never touches what people did.

What a journalist asks reveals what they are investigating, so by default no question or
answer text is stored: an answer row keeps who asked, where, when, and its citations (article
ids and the verbatim quotes from those articles, for the Quotes button). The text is kept
only with NEWSDESK_JOURNAL_TEXT=true. Every row expires (`expire`), a user can delete their
rows (`forget`), and deleted content is overwritten on disk (secure_delete, WAL truncated).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import private
from bot.metadata import parse_date
from bot.models import Answer, Citation
from bot.output import citation_dict

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    question TEXT NOT NULL,           -- '' unless NEWSDESK_JOURNAL_TEXT=true
    answer TEXT NOT NULL,             -- '' unless NEWSDESK_JOURNAL_TEXT=true
    abstained INTEGER NOT NULL,
    citations TEXT NOT NULL,          -- JSON list, as in `newsdesk ask --json`
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    answer_id INTEGER NOT NULL REFERENCES answers(id),
    user_id INTEGER NOT NULL,
    vote INTEGER NOT NULL,            -- +1 or -1; a second press replaces the first
    created_at TEXT NOT NULL,
    PRIMARY KEY (answer_id, user_id)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    user_name TEXT NOT NULL,
    action TEXT NOT NULL,             -- upload, add-url, add-text, forward, remove, ...
    target TEXT NOT NULL,             -- file name, URL, article id; never a question
    result TEXT NOT NULL              -- what happened, or why it failed / was refused
);
CREATE INDEX IF NOT EXISTS answers_created ON answers(created_at);
CREATE INDEX IF NOT EXISTS answers_user ON answers(user_id);
CREATE INDEX IF NOT EXISTS feedback_created ON feedback(created_at);
CREATE INDEX IF NOT EXISTS audit_at ON audit(at);
"""
TABLES = ("answers", "feedback", "audit")


@dataclass
class StoredAnswer:
    id: int
    chat_id: int
    user_id: int
    question: str
    answer: str
    abstained: bool
    citations: list[Citation]


@dataclass
class AuditEntry:
    at: str
    user_id: int
    user_name: str
    action: str
    target: str
    result: str


class Journal:
    def __init__(self, path: Path, keep_text: bool = False) -> None:
        self.path = path
        self.keep_text = keep_text
        self._lock = threading.Lock()
        self.db = private.connect(path)
        self.db.execute("PRAGMA secure_delete=ON")  # deleted text is zeroed, not left in pages
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        if not keep_text:
            self._drop_text()

    def _drop_text(self) -> None:
        """A journal written with the text kept (or by an older version, which always kept
        it) loses that text at the first open with NEWSDESK_JOURNAL_TEXT off."""
        with self._lock, self.db:
            dropped = self.db.execute(
                "UPDATE answers SET question='', answer='' WHERE question!='' OR answer!=''"
            ).rowcount
        if dropped:
            self._scrub()
            log.warning(
                "journal: deleted the stored question and answer text of %d answers "
                "(NEWSDESK_JOURNAL_TEXT is off); votes, sources and times are kept",
                dropped,
            )

    def _scrub(self) -> None:
        """After a deletion: copy the zeroed pages into the file and empty the WAL."""
        with self._lock:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def save_answer(self, chat_id: int, user_id: int, answer: Answer) -> int:
        citations = json.dumps([citation_dict(c) for c in answer.citations], ensure_ascii=False)
        question, text = (answer.question, answer.text) if self.keep_text else ("", "")
        with self._lock, self.db:
            cursor = self.db.execute(
                "INSERT INTO answers (chat_id, user_id, question, answer, abstained, citations,"
                " created_at) VALUES (?,?,?,?,?,?,?)",
                (chat_id, user_id, question, text, answer.abstained, citations, _now()),
            )
        return int(cursor.lastrowid or 0)

    def answer(self, answer_id: int) -> StoredAnswer | None:
        with self._lock:
            row = self.db.execute(
                "SELECT id, chat_id, user_id, question, answer, abstained, citations FROM answers"
                " WHERE id=?",
                (answer_id,),
            ).fetchone()
        if row is None:
            return None
        citations = [
            Citation(
                n=c["n"],
                article_id=c["article_id"],
                title=c["title"],
                source=c["source"],
                published=parse_date(c["published"]),
                url=c["url"],
                quote=c["quote"],
                start=c["start"],
                end=c["end"],
            )
            for c in json.loads(row[6])
        ]
        return StoredAnswer(row[0], row[1], row[2], row[3], row[4], bool(row[5]), citations)

    def vote(self, answer_id: int, user_id: int, vote: int) -> None:
        with self._lock, self.db:
            self.db.execute(
                "INSERT INTO feedback (answer_id, user_id, vote, created_at) VALUES (?,?,?,?)"
                " ON CONFLICT(answer_id, user_id) DO UPDATE SET vote=excluded.vote,"
                " created_at=excluded.created_at",
                (answer_id, user_id, vote, _now()),
            )

    def votes(self) -> list[tuple[int, int, int, str, str]]:
        """(answer id, user id, vote, question, answer) for every vote, oldest first; the
        texts are '' unless the journal keeps them."""
        with self._lock:
            return self.db.execute(
                "SELECT f.answer_id, f.user_id, f.vote, a.question, a.answer FROM feedback f"
                " JOIN answers a ON a.id = f.answer_id ORDER BY f.created_at"
            ).fetchall()

    def audit(self, user_id: int, user_name: str, action: str, target: str, result: str) -> None:
        with self._lock, self.db:
            self.db.execute(
                "INSERT INTO audit (at, user_id, user_name, action, target, result)"
                " VALUES (?,?,?,?,?,?)",
                (_now(), user_id, user_name, action, target[:500], result[:1000]),
            )

    def audit_log(self, limit: int = 15) -> list[AuditEntry]:
        """The latest entries, newest first."""
        with self._lock:
            rows = self.db.execute(
                "SELECT at, user_id, user_name, action, target, result FROM audit"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [AuditEntry(*row) for row in rows]

    # -- retention and deletion ----------------------------------------------------------------

    def expire(self, journal_days: int, audit_days: int) -> dict[str, int]:
        """Delete answers and votes older than `journal_days`, audit rows older than
        `audit_days`. Rows deleted, per table."""
        return self.purge(older_than_days=journal_days, audit_days=audit_days)

    def purge(
        self,
        user_id: int | None = None,
        older_than_days: float | None = None,
        audit_days: float | None = None,
        keep_audit: bool = True,
    ) -> dict[str, int]:
        """Delete a user's rows, rows older than a number of days, or both (both given: the
        user's old rows). Audit rows go by `audit_days` and, unless `keep_audit`, by user."""
        where: list[str] = []
        args: list[object] = []
        if user_id is not None:
            where.append("user_id = ?")
            args.append(user_id)
        if older_than_days is not None:
            where.append("created_at < ?")
            args.append(_ago(older_than_days))
        gone = dict.fromkeys(TABLES, 0)
        with self._lock, self.db:
            if where:
                cond = " AND ".join(where)
                gone["feedback"] = self.db.execute(
                    f"DELETE FROM feedback WHERE ({cond}) OR answer_id IN"
                    f" (SELECT id FROM answers WHERE {cond})",
                    [*args, *args],
                ).rowcount
                gone["answers"] = self.db.execute(
                    f"DELETE FROM answers WHERE {cond}",
                    args,
                ).rowcount
            audit_where: list[str] = []
            audit_args: list[object] = []
            if user_id is not None and not keep_audit:
                audit_where.append("user_id = ?")
                audit_args.append(user_id)
            if audit_days is not None:
                audit_where.append("at < ?")
                audit_args.append(_ago(audit_days))
            if audit_where:
                gone["audit"] = self.db.execute(
                    "DELETE FROM audit WHERE " + " AND ".join(audit_where), audit_args
                ).rowcount
        if any(gone.values()):
            self._scrub()
        return gone

    def forget(self, user_id: int, keep_audit: bool) -> int:
        """/forget: every row about this user (their audit rows too unless `keep_audit`, the
        admins' accountability record). How many rows went."""
        return sum(self.purge(user_id=user_id, keep_audit=keep_audit).values())

    # -- what is stored ------------------------------------------------------------------------

    def held_about(self, user_id: int) -> dict[str, int]:
        """Rows per table that name this user (for /privacy)."""
        with self._lock:
            return {
                "answers": self._count("SELECT COUNT(*) FROM answers WHERE user_id=?", user_id),
                "feedback": self._count("SELECT COUNT(*) FROM feedback WHERE user_id=?", user_id),
                "audit": self._count("SELECT COUNT(*) FROM audit WHERE user_id=?", user_id),
            }

    def _count(self, sql: str, *args: object) -> int:
        return int(self.db.execute(sql, args).fetchone()[0])

    def stats(self) -> dict[str, Any]:
        """Rows per table, bytes on disk (WAL included) and the oldest row's time."""
        with self._lock:
            rows = {t: self._count(f"SELECT COUNT(*) FROM {t}") for t in TABLES}
            oldest = self.db.execute(
                "SELECT MIN(t) FROM (SELECT MIN(created_at) t FROM answers"
                " UNION ALL SELECT MIN(created_at) FROM feedback UNION ALL SELECT MIN(at)"
                " FROM audit)"
            ).fetchone()[0]
        files = [self.path, self.path.with_name(self.path.name + "-wal")]
        size = sum(f.stat().st_size for f in files if f.exists())
        return {"journal_rows": rows, "journal_bytes": size, "journal_oldest": oldest}

    def export(self, since: dt.date | None = None) -> Iterator[dict[str, Any]]:
        """Every answer (with its votes) and audit row, oldest first, as JSON-ready dicts."""
        start = since.isoformat() if since else ""
        with self._lock:
            answers = self.db.execute(
                "SELECT id, chat_id, user_id, question, answer, abstained, citations, created_at"
                " FROM answers WHERE created_at >= ? ORDER BY id",
                (start,),
            ).fetchall()
            votes = self.db.execute(
                "SELECT answer_id, user_id, vote, created_at FROM feedback WHERE created_at >= ?",
                (start,),
            ).fetchall()
            audit = self.db.execute(
                "SELECT at, user_id, user_name, action, target, result FROM audit"
                " WHERE at >= ? ORDER BY id",
                (start,),
            ).fetchall()
        by_answer: dict[int, list[dict[str, Any]]] = {}
        for answer_id, uid, vote, at in votes:
            by_answer.setdefault(answer_id, []).append({"user_id": uid, "vote": vote, "at": at})
        for aid, chat, uid, question, text, abstained, citations, at in answers:
            cited = json.loads(citations)
            yield {
                "kind": "answer",
                "id": aid,
                "at": at,
                "chat_id": chat,
                "user_id": uid,
                "question": question or None,
                "answer": text or None,
                "abstained": bool(abstained),
                "article_ids": list(dict.fromkeys(c["article_id"] for c in cited)),
                "votes": by_answer.get(aid, []),
            }
        for entry in audit:
            yield {"kind": "audit", **AuditEntry(*entry).__dict__}

    def close(self) -> None:
        with self._lock:
            self.db.close()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _ago(days: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).isoformat(timespec="seconds")
