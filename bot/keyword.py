"""Running a keyword query on the FTS5 index fast at a million chunks (used by bot/store.py).

Two things made it slow: joining every matching row to chunks and articles before ranking, and
OR-ing in words so common (say "us", "show") that tens of thousands of rows had to be scored
for them while their BM25 weight is near zero. So the query is bounded: the question's terms
are kept rarest first while their postings (rows matching them) fit in a budget, and only the
FTS table itself is ranked; the few best rows are joined afterwards.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections import OrderedDict

# Rows matching the kept terms (sum of their document frequencies). Scoring costs a few
# microseconds per row on the 2-core machine, so this caps the keyword side at tens of ms.
POSTINGS_BUDGET = 20_000
BM25_WEIGHTS = "0.0, 2.0, 1.0"  # chunk_id (unindexed), title (twice a body word), text
_TERM = re.compile(r'^"[^"]*"\*?$')  # a quoted word, or a quoted prefix "abc"*


def split_terms(query: str) -> list[str] | None:
    """The quoted terms of an OR-query `"a" OR "b"`, or None for any other FTS query."""
    terms = query.split(" OR ")
    return terms if all(_TERM.match(t) for t in terms) else None


class TermCounts:
    """Document frequencies of query terms, capped (counting stops past the budget) and
    remembered for a while: they only choose which terms to keep, so a slightly stale count
    costs nothing but a little speed."""

    def __init__(self, size: int = 50_000, ttl: float = 600.0) -> None:
        self._counts: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size
        self.ttl = ttl

    def count(self, db: sqlite3.Connection, table: str, term: str, cap: int) -> int:
        now = time.monotonic()
        key = f"{table}:{term}"
        with self._lock:
            hit = self._counts.get(key)
            if hit and now - hit[0] < self.ttl:
                self._counts.move_to_end(key)
                return hit[1]
        (found,) = db.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {table} MATCH ? LIMIT ?)",
            (term, cap + 1),
        ).fetchone()
        with self._lock:
            self._counts[key] = (now, int(found))
            self._counts.move_to_end(key)
            while len(self._counts) > self.size:
                self._counts.popitem(last=False)
        return int(found)


def bounded(db: sqlite3.Connection, table: str, query: str, budget: int, counts: TermCounts) -> str:
    """The query with its commonest terms dropped once their postings exceed the budget.

    Terms found nowhere are dropped; the rarest found term is always kept. "" when no term
    matches anything. Queries that are not a plain OR of quoted terms pass unchanged.
    """
    terms = split_terms(query)
    if terms is None or budget <= 0:
        return query
    frequency = {t: counts.count(db, table, t, budget) for t in terms}
    kept: list[str] = []
    total = 0
    for term in sorted((t for t in terms if frequency[t]), key=lambda t: frequency[t]):
        if kept and total + frequency[term] > budget:
            break
        kept.append(term)
        total += frequency[term]
    return " OR ".join(kept)


def top_chunks(
    db: sqlite3.Connection, table: str, query: str, limit: int
) -> list[tuple[str, float]]:
    """(chunk id, BM25 score) of the best `limit` rows, best first: ranked on the FTS table
    alone (rowids), and only those rows' chunk ids read back."""
    rows = db.execute(
        f"SELECT rowid, -bm25({table}, {BM25_WEIGHTS}) AS score FROM {table} "
        f"WHERE {table} MATCH ? ORDER BY score DESC LIMIT ?",
        (query, limit),
    ).fetchall()
    if not rows:
        return []
    marks = ",".join("?" * len(rows))
    ids = dict(
        db.execute(
            f"SELECT rowid, chunk_id FROM {table} WHERE rowid IN ({marks})",
            [r[0] for r in rows],
        ).fetchall()
    )
    return [(ids[rowid], float(score)) for rowid, score in rows if rowid in ids]
