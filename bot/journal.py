"""The journal: answers given in Telegram (so buttons can find them again), 👍/👎 votes, and
the audit log of admin actions.

A separate SQLite file: `reindex` rebuilds the index but never touches what people did.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from bot.models import Answer, Citation
from bot.output import citation_dict
from bot.parse import parse_date

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
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
    target TEXT NOT NULL,             -- file name, URL, article id
    result TEXT NOT NULL              -- what happened, or why it failed / was refused
);
"""


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
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def save_answer(self, chat_id: int, user_id: int, answer: Answer) -> int:
        citations = json.dumps([citation_dict(c) for c in answer.citations], ensure_ascii=False)
        with self._lock, self.db:
            cursor = self.db.execute(
                "INSERT INTO answers (chat_id, user_id, question, answer, abstained, citations,"
                " created_at) VALUES (?,?,?,?,?,?,?)",
                (
                    chat_id,
                    user_id,
                    answer.question,
                    answer.text,
                    answer.abstained,
                    citations,
                    _now(),
                ),
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
        """(answer id, user id, vote, question, answer) for every vote, oldest first."""
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

    def close(self) -> None:
        with self._lock:
            self.db.close()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
