"""A question as the index's queries: the FTS5 keyword query and the date and outlet filters
translated for SQLite and for Chroma. Pure functions, shared by the store and the composers."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from bot.models import Filters

STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers him his how i if in into is it its
    itself just me more most my no nor not now of off on once only or other our out over own
    same she should so some such than that the their them then there these they this those
    through to too under until up very was we were what when where which while who whom why
    will with would you your said says say week news year new one two also
    """.split()  # noqa: SIM905
)


def date_key(day: dt.date | None) -> int:
    """Dates as sortable integers for Chroma's numeric filters; 0 = undated."""
    return day.year * 10000 + day.month * 100 + day.day if day else 0


def keyword_query(text: str) -> str:
    """An FTS5 OR-query of the question's content words, each quoted (no FTS syntax leaks)."""
    words = re.findall(r"\w+", text.lower())
    terms = dict.fromkeys(w for w in words if w not in STOPWORDS and (len(w) > 1 or w.isdigit()))
    return " OR ".join(f'"{t}"' for t in terms)


def chroma_where(filters: Filters) -> dict[str, Any] | None:
    """Chroma `where` clauses; dates are compared as `date_key` integers."""
    clauses: list[dict[str, Any]] = []
    if filters.since:
        clauses.append({"published": {"$gte": date_key(filters.since)}})
    if filters.until:
        clauses.append({"published": {"$lte": date_key(filters.until)}})
    if filters.until and not filters.since:
        clauses.append({"published": {"$gt": 0}})  # undated articles match no date range
    if filters.source:
        clauses.append({"source": filters.source.lower()})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def sql_filters(filters: Filters) -> tuple[str, list[Any]]:
    """SQL `AND …` conditions on the articles table `a`, with their arguments."""
    sql, args = "", []
    if filters.since:
        sql += " AND a.published >= ?"
        args.append(filters.since.isoformat())
    if filters.until:
        sql += " AND a.published <= ?"
        args.append(filters.until.isoformat())
    if filters.source:
        sql += " AND lower(a.source) = ?"
        args.append(filters.source.lower())
    return sql, args
