"""Questions as journalists type them: inline filters and follow-ups made standalone.

No language model: a follow-up ("and what did Ankara say?") borrows the content words of the
chat's previous question, which is what keeps retrieval on the same story.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import deque
from dataclasses import dataclass, field

from bot.errors import InputError
from bot.fts import fold
from bot.metadata import parse_date
from bot.models import Filters
from bot.query import question_stopwords

FILTER = re.compile(r'\b(since|until|source):(?:"([^"]+)"|(\S+))', re.IGNORECASE)
# How a follow-up starts, in en, de, ru, uk and tr (the lists of all languages apply to every
# question: they share no word that would mislead another).
FOLLOW_UP_START = re.compile(
    r"^(and|but|also|so|then|what about|how about|what else"
    r"|und|aber|auch|was ist mit|wie steht es mit|und was|sonst noch"
    r"|а|и|но|ещё|еще|а что|что ещё|что еще|как насчёт|как насчет"
    r"|і|й|та|але|ще|а що|як щодо|що ще"
    r"|peki|ya|ayrıca|bir de|başka|ve|ama)\b",
    re.IGNORECASE,
)
PRONOUNS = frozenset(
    """
    he she they it its his her their them this that these those there him latter former
    er sie es ihn ihm ihre sein seine seiner dies diese dieser dieses dort damit davon
    он она оно они его её ее их им ним ней нему нее это этот эта эти там этом
    він вона воно вони його її їх їм ним нею ньому це цей ця ці там цьому
    o onlar onu onun ona ondan bunu bunun buna bu şu orada oraya
    """.split()  # noqa: SIM905
)
# Words that point at the noun after them ("this budget"), not at the previous question.
DETERMINERS = frozenset(
    """
    this that these those its his her their dieser diese dieses seine ihre этот эта эти
    цей ця ці bu şu
    """.split()  # noqa: SIM905
)
# Words after which "that"/"this" stands alone ("that is", "this was"), not before a noun.
FUNCTION_WORDS = frozenset(
    """
    is was are were be been did does do has had have mean means meant say said about for in
    on to of and or but so then with at by from happen happened true right matter
    ist war sind bedeutet heißt ne
    """.split()  # noqa: SIM905
)
TURNS_KEPT = 3


class FilterError(InputError):
    """An inline filter the user typed is malformed."""


def split_filters(text: str, as_of: dt.date | None = None) -> tuple[str, Filters]:
    """`Who won? since:2025-01-01 source:"AP"` -> ("Who won?", Filters(...))."""
    filters = Filters(as_of=as_of)
    for match in FILTER.finditer(text):
        key, value = match.group(1).lower(), match.group(2) or match.group(3)
        if key == "source":
            filters.source = value
            continue
        day = parse_date(value)
        if day is None:
            raise FilterError(f"{key}:{value} is not a date: use {key}:YYYY-MM-DD")
        setattr(filters, key, day)
    if filters.since and filters.until and filters.since > filters.until:
        raise FilterError("since: is after until:, so no article can match")
    question = " ".join(FILTER.sub(" ", text).split())
    return question, filters


def content_words(text: str) -> list[str]:
    """The words that carry the topic, in the question's own language (as written)."""
    words = re.findall(r"[\w-]+", text)
    folded = [fold(w).lower() for w in words]
    stop = question_stopwords(folded, text)
    return [w for w, f in zip(words, folded, strict=True) if f not in stop and len(w) > 1]


def is_follow_up(question: str) -> bool:
    """Short questions that lean on the previous one: "and Ankara?", "why did they do it?",
    "а что сказал Кремль?", "peki Ankara?"."""
    words = re.findall(r"[\w-]+", fold(question).lower())
    if not words:
        return False
    names = [w for w in re.findall(r"[\w-]+", question)[1:] if w[:1].isupper()]
    if len(words) > 10 or len(names) > 1:
        return False
    if FOLLOW_UP_START.match(question.strip()):
        return True
    # A pronoun with little else: "why did they do it?", not "Is this year's budget late?"
    # ("this" before a noun points at that noun, not at the previous question).
    leaning = [
        w
        for w, following in zip(words, [*words[1:], ""], strict=True)
        if w in PRONOUNS
        and not (
            w in DETERMINERS
            and following.isalpha()
            and following not in PRONOUNS
            and following not in FUNCTION_WORDS
        )
    ]
    return bool(leaning) and len(content_words(question)) <= 2


@dataclass
class Conversation:
    """The last few standalone queries of one chat."""

    queries: deque[str] = field(default_factory=lambda: deque(maxlen=TURNS_KEPT))

    def standalone(self, question: str) -> str:
        """The retrieval query for this question, given what was asked before."""
        if not self.queries or not is_follow_up(question):
            return question
        own = {w.lower() for w in content_words(question)}
        borrowed = [w for w in content_words(self.queries[-1]) if w.lower() not in own]
        return f"{question} {' '.join(dict.fromkeys(borrowed))}".strip()

    def remember(self, query: str) -> None:
        self.queries.append(query)
