"""A question as the index's queries: the FTS5 keyword query and the date and outlet filters
translated for SQLite and for Chroma. Pure functions, shared by the store and the composers."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from bot.fts import fold
from bot.models import Filters
from bot.stopwords import STOPWORDS_BY_LANGUAGE

# English stopwords, for scoring English text (answer.py); questions use question_stopwords().
STOPWORDS = STOPWORDS_BY_LANGUAGE["en"]
_FOLDED = {
    code: frozenset(fold(w).lower() for w in words) for code, words in STOPWORDS_BY_LANGUAGE.items()
}
# Cyrillic words are never English ones: Russian and Ukrainian stopwords apply to any question.
_ALWAYS = _FOLDED["en"] | _FOLDED["ru"] | _FOLDED["uk"]
# Latin-script stopwords of German and Turkish that are English content words ("war", "die"):
# only these make the question's language worth detecting.
_AMBIGUOUS = (_FOLDED["de"] | _FOLDED["tr"]) - _FOLDED["en"]
# Non-English words longer than this are matched by prefix: a light stemmer for inflections.
PREFIX_FROM = 5


def date_key(day: dt.date | None) -> int:
    """Dates as sortable integers for Chroma's numeric filters; 0 = undated."""
    return day.year * 10000 + day.month * 100 + day.day if day else 0


def question_language(text: str) -> str:
    """The question's language among the supported ones; "en" when unsure."""
    from bot.language import SUPPORTED, language_of

    return language_of(text, among=SUPPORTED, default="en")


def question_stopwords(words: list[str], text: str) -> frozenset[str]:
    """Stopwords for a question's (folded, lowercase) words. The language detector (a second
    to load) runs only when a German or Turkish function word could be an English word."""
    if not _AMBIGUOUS.intersection(words):
        return _ALWAYS
    language = question_language(text)
    return _ALWAYS | _FOLDED[language] if language in ("de", "tr") else _ALWAYS


def keyword_terms(text: str) -> list[str]:
    """The question's content words, folded as the keyword index folds text, each once."""
    words = re.findall(r"\w+", fold(text).lower())
    stop = question_stopwords(words, text)
    return list(dict.fromkeys(w for w in words if w not in stop and (len(w) > 1 or w.isdigit())))


def keyword_query(text: str, prefixes: bool = False) -> str:
    """An FTS5 OR-query of the question's content words, each quoted (no FTS syntax leaks).

    `prefixes`: words of PREFIX_FROM letters or more match any word they begin, less their
    last two letters ("Турции" finds "Турция"): for the table without a stemmer.
    """
    terms = keyword_terms(text)
    if prefixes:
        return " OR ".join(
            f'"{t[: max(PREFIX_FROM - 1, len(t) - 2)]}"*'
            if t.isalpha() and len(t) >= PREFIX_FROM
            else f'"{t}"'
            for t in terms
        )
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
