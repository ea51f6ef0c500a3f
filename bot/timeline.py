"""A story in time order: one entry per relevant article (date, outlet, its best sentence as a
quote), at most 15, for `/timeline` and `newsdesk timeline`.

Candidates come from the answers' retrieval (dense + keyword, the same filters); each article
is kept only when the answers' relevance rule holds for its own passages, so a timeline never
lists an article an answer would not cite.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from bot.answer import ExtractiveComposer
from bot.desk import Desk
from bot.models import Filters, Passage

MAX_ENTRIES = 15
CANDIDATES = 60  # passages retrieved to find the articles of a story


@dataclass(frozen=True)
class Entry:
    n: int
    article_id: str
    title: str
    source: str
    published: dt.date | None
    url: str
    quote: str

    def as_dict(self) -> dict[str, object]:
        day = self.published.isoformat() if self.published else None
        return {**dataclasses.asdict(self), "published": day}


def entry_of(data: dict[str, object]) -> Entry:
    """An entry as `as_dict` stored it."""
    day = data.get("published")
    return Entry(
        n=int(str(data["n"])),
        article_id=str(data["article_id"]),
        title=str(data["title"]),
        source=str(data["source"]),
        published=dt.date.fromisoformat(day) if isinstance(day, str) else None,
        url=str(data["url"]),
        quote=str(data["quote"]),
    )


def timeline(desk: Desk, query: str, filters: Filters | None = None) -> list[Entry]:
    """The story's articles, oldest first (undated last), numbered [1]…[n] in that order."""
    filters = filters or Filters()
    filters = Filters(filters.since, filters.until, filters.source)  # no recency preference
    vector, passages = desk.retriever.retrieve(query, filters, CANDIDATES)
    by_article: dict[str, list[Passage]] = {}
    for passage in passages:
        by_article.setdefault(passage.article_id, []).append(passage)
    s = desk.settings
    composer = ExtractiveComposer(desk.embedder, 1, s.min_relevance)
    found = []
    for group in list(by_article.values())[: MAX_ENTRIES * 2]:
        answer = composer.compose(query, vector, group)
        if not answer.abstained and answer.citations:
            found.append((group[0], answer.citations[0].quote))
        if len(found) == MAX_ENTRIES:
            break
    found.sort(key=lambda pair: (pair[0].published is None, pair[0].published or dt.date.min))
    return [
        Entry(n, p.article_id, p.title, p.source, p.published, p.url, quote)
        for n, (p, quote) in enumerate(found, start=1)
    ]
