"""Owner-only files at rest: index/ is 0700 and every SQLite file in it 0600.

What journalists asked (the journal) and the index sit on a volume that other local users
or containers may see; the one helper here is what every module that creates a file under
index/ calls. SQLite gives a database's -wal and -shm files the database file's own mode.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) and make it owner-only."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _chmod(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty if absent (never readable by others, not even for an instant) and
    make it, and any SQLite -wal/-shm beside it, owner-only."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE))
    for companion in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if companion.exists():
            _chmod(companion, FILE_MODE)
    return path


def write_text(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, owner-only from the first byte (a temporary file
    beside it, then os.replace)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def connect(path: Path) -> sqlite3.Connection:
    """A SQLite connection to an owner-only file in an owner-only folder (usable from worker
    threads)."""
    private_dir(path.parent)
    return sqlite3.connect(private_file(path), check_same_thread=False)


def open_db(path: Path, schema: str) -> sqlite3.Connection:
    """`connect`, in WAL mode (readers never wait for the writer), with `schema` applied."""
    db = connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(schema)
    return db


def content_hashes(db: sqlite3.Connection, table: str, article_ids: list[str]) -> dict[str, str]:
    """article_id -> content_hash of the rows of `table` (a catch-up table of articles already
    seen) for these ids; the caller holds its lock."""
    known: dict[str, str] = {}
    for at in range(0, len(article_ids), 500):  # SQLite's bound-variable limit
        part = article_ids[at : at + 500]
        marks = ",".join("?" * len(part))
        sql = f"SELECT article_id, content_hash FROM {table} WHERE article_id IN ({marks})"
        known.update(db.execute(sql, part).fetchall())
    return known


def _chmod(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
    except OSError as exc:  # a volume owned by someone else: work, but say so
        log.warning("could not make %s owner-only (%s)", path, exc)
