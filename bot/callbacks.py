"""Inline-button payloads: made here, and parsed here, strictly.

A client can send any callback data with any button, so a payload is untrusted input: it is
parsed against the exact shapes the bot itself makes, and anything else is refused (`None`).
Whether the presser may use a well-formed payload (its chat, its asker) is decided by the
handler that owns it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_PAGE = 99_999
ARTICLE_ID = re.compile(r"[0-9a-f]{16}")
_SHAPES = {
    "quotes": re.compile(r"(?P<id>[1-9][0-9]{0,11})"),
    "vote": re.compile(r"(?P<id>[1-9][0-9]{0,11}):(?P<vote>1|-1)"),
    "sources": re.compile(r"(?P<page>0|[1-9][0-9]{0,4})"),
    "docs": re.compile(r"(?P<page>0|[1-9][0-9]{0,4})"),
    "remove": re.compile(r"(?P<article>[0-9a-f]{16})?"),
    "forget": re.compile(r"(?P<user>[1-9][0-9]{0,15})(?P<cancel>:no)?"),
    "feedrm": re.compile(r"(?P<feed>[1-9][0-9]{0,11})"),
    "timeline": re.compile(r"(?P<id>[1-9][0-9]{0,11}):(?P<page>0|[1-9][0-9]{0,4})"),
}


@dataclass(frozen=True)
class Quotes:
    answer_id: int


@dataclass(frozen=True)
class Vote:
    answer_id: int
    vote: int  # +1 or -1


@dataclass(frozen=True)
class Page:
    listing: str  # "sources" (everyone) or "docs" (admins, with ids)
    page: int  # 0-based


@dataclass(frozen=True)
class Remove:
    article_id: str  # empty: the admin cancelled


@dataclass(frozen=True)
class Forget:
    user_id: int  # the only user whose press counts
    confirmed: bool  # False: they cancelled


@dataclass(frozen=True)
class FeedRemove:
    feed_id: int


@dataclass(frozen=True)
class TimelinePage:
    timeline_id: int  # whose chat it belongs to is checked by its handler
    page: int


Payload = Quotes | Vote | Page | Remove | Forget | FeedRemove | TimelinePage


def parse(data: str | None) -> Payload | None:
    """The payload a button of ours carries; None for anything else."""
    if not data or len(data) > 64:
        return None
    kind, colon, rest = data.partition(":")
    shape = _SHAPES.get(kind) if colon else None  # every payload made here has its colon
    match = shape.fullmatch(rest) if shape else None
    if match is None:
        return None
    if kind == "quotes":
        return Quotes(int(match["id"]))
    if kind == "vote":
        return Vote(int(match["id"]), int(match["vote"]))
    if kind == "remove":
        return Remove(match["article"] or "")
    if kind == "forget":
        return Forget(int(match["user"]), not match["cancel"])
    if kind == "feedrm":
        return FeedRemove(int(match["feed"]))
    if kind == "timeline":
        return TimelinePage(int(match["id"]), int(match["page"]))
    return Page(kind, int(match["page"]))


def is_admin_payload(data: str | None) -> bool:
    """Buttons only admins may press (their refusal is audited)."""
    kind = (data or "").partition(":")[0]
    return kind in ("remove", "docs", "feedrm")


def quotes(answer_id: int) -> str:
    return f"quotes:{answer_id}"


def vote(answer_id: int, value: int) -> str:
    return f"vote:{answer_id}:{1 if value > 0 else -1}"


def page(listing: str, number: int) -> str:
    return f"{listing}:{max(0, min(number, MAX_PAGE))}"


def remove(article_id: str = "") -> str:
    return f"remove:{article_id}"


def forget(user_id: int, confirmed: bool) -> str:
    return f"forget:{user_id}" + ("" if confirmed else ":no")


def feed_remove(feed_id: int) -> str:
    return f"feedrm:{feed_id}"


def timeline(timeline_id: int, number: int) -> str:
    return f"timeline:{timeline_id}:{max(0, min(number, MAX_PAGE))}"


def page_number(arg: str) -> int | None:
    """A 1-based page number typed after /sources or /docs, as 0-based; None if not one."""
    if not re.fullmatch(r"[0-9]{1,5}", arg):
        return None
    return max(0, int(arg) - 1)
