"""The keyword index's two FTS5 tables, the text folding both share, and their in-place upgrade.

English articles (and those of unknown language, as before) go to `chunks_fts`, whose tokenizer
runs the English Porter stemmer; every other language goes to `chunks_fts_intl`, the same
tokenizer without the stemmer (the English stemmer would clip German, Turkish and Ukrainian
words by English rules). Both index folded text, and questions are folded the same way, so that
Turkish İ ı I i, "Straße"/"Strasse", Cyrillic ё/е and the Ukrainian apostrophes (ʼ ’ ') match;
unicode61 itself folds case (Latin, Cyrillic, Greek) and removes Latin diacritics.
Only the index holds folded text: quotes are taken from `chunks`, which stays verbatim.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import unicodedata

log = logging.getLogger(__name__)
ENGLISH = "chunks_fts"
OTHER = "chunks_fts_intl"
TABLES = (ENGLISH, OTHER)
# Written to meta once the tables hold folded text split by language.
VERSION_KEY = "fts_version"
VERSION = "2"
_TOKENIZERS = {
    ENGLISH: "porter unicode61 remove_diacritics 2",
    OTHER: "unicode61 remove_diacritics 2",
}
SCHEMA = "".join(
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5("
    f"chunk_id UNINDEXED, title, text, tokenize = '{tokenizer}');\n"
    for table, tokenizer in _TOKENIZERS.items()
)
_FOLD = str.maketrans(
    {"İ": "i", "ı": "i", "ё": "е", "Ё": "Е", "ß": "ss", "ẞ": "SS", "ʼ": "'", "’": "'"}
)
# An apostrophe inside a Cyrillic word is part of it (Ukrainian "пʼять"): dropped, not a break.
_CYRILLIC_APOSTROPHE = re.compile(r"(?<=[\u0400-\u04ff])'(?=[\u0400-\u04ff])")
# How long the upgrade may wait for another process that is upgrading the same index.
UPGRADE_WAIT_MS = 600_000


def fold(text: str) -> str:
    """Text as both tables index it and as questions are matched against them."""
    folded = unicodedata.normalize("NFKC", text).translate(_FOLD)
    return _CYRILLIC_APOSTROPHE.sub("", folded)


def table_for(language: str) -> str:
    return ENGLISH if language in ("", "en") else OTHER


def rows_for(language: str, rows: list[tuple[str, str, str]]) -> tuple[str, list[tuple[str, ...]]]:
    """The INSERT for one article's (chunk_id, title, text) rows, with the text folded."""
    table = table_for(language)
    sql = f"INSERT INTO {table} (chunk_id, title, text) VALUES (?,?,?)"
    return sql, [(chunk_id, fold(title), fold(text)) for chunk_id, title, text in rows]


def segments(db: sqlite3.Connection, table: str) -> int:
    """How many b-tree segments the table's index is made of (its structure record: a 4-byte
    cookie, then varints for the number of levels and of segments)."""
    row = db.execute(f"SELECT block FROM {table}_data WHERE id = 10").fetchone()
    if row is None:
        return 0
    data = bytes(row[0])
    _, at = _varint(data, 4)  # levels
    return _varint(data, at)[0]


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """An SQLite varint (big-endian, 7 bits a byte, high bit: more follows) at `at`."""
    value = 0
    for i in range(9):
        byte = data[at + i]
        if i == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, at + i + 1
    return value, at + 9


def optimize(db: sqlite3.Connection) -> None:
    """Merge each table's index into one segment. FTS5 adds a segment per transaction and only
    merges some of them on the way, so after a bulk load a query walks many segments; merging
    rewrites the whole index (seconds at 100,000 chunks), so it is done after bulk loads."""
    for table in TABLES:
        db.execute(f"INSERT INTO {table}({table}) VALUES('optimize')")


def upgrade(db: sqlite3.Connection) -> None:
    """Bring an index built before the language split up to date, in one transaction.

    Every chunk is indexed again (folded, in its language's table). A crash leaves the old
    index as it was and the next open starts again; a second process opening the index at the
    same time waits for the first one, then finds nothing to do.
    """
    if _version(db) == VERSION:
        return
    languages = _detect_missing(db)  # before the write lock: it may take a while
    db.create_function("newsdesk_fold", 1, fold, deterministic=True)
    (timeout,) = db.execute("PRAGMA busy_timeout").fetchone()
    db.execute(f"PRAGMA busy_timeout = {UPGRADE_WAIT_MS}")
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            if _version(db) != VERSION:
                db.executemany(
                    "UPDATE articles SET language=? WHERE id=? AND language=''", languages
                )
                _reindex(db)
            db.commit()
        except BaseException:
            db.rollback()
            raise
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(timeout)}")


def _detect_missing(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """(language, id) for the articles indexed without a language, detected on their text."""
    from bot.language import DETECT_CHARS, article_language

    rows = db.execute(
        "SELECT a.id, a.title, (SELECT group_concat(text, ' ') FROM (SELECT text FROM chunks "
        "WHERE article_id = a.id ORDER BY ordinal LIMIT 3)) FROM articles a "
        "WHERE a.language = ''"
    ).fetchall()
    found = [
        (article_language("", title, (text or "")[:DETECT_CHARS]), id_) for id_, title, text in rows
    ]
    return [(language, id_) for language, id_ in found if language]


def _reindex(db: sqlite3.Connection) -> None:
    (chunks,) = db.execute("SELECT count(*) FROM chunks").fetchone()
    log.info("upgrading the keyword index (%d chunks): one table per kind of language", chunks)
    for table in TABLES:
        db.execute(f"DELETE FROM {table}")
        english = "IN" if table == ENGLISH else "NOT IN"
        db.execute(
            f"INSERT INTO {table} (chunk_id, title, text) "
            "SELECT c.id, newsdesk_fold(a.title), newsdesk_fold(c.text) "
            "FROM chunks c JOIN articles a ON a.id = c.article_id "
            f"WHERE a.language {english} ('', 'en')"
        )
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        (VERSION_KEY, VERSION),
    )


def _version(db: sqlite3.Connection) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key=?", (VERSION_KEY,)).fetchone()
    return str(row[0]) if row else None
