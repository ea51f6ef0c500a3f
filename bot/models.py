"""Plain dataclasses passed between the modules. No LangChain or Chroma types here."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Article:
    """One news article. `text` is the body that chunk and quote offsets point into."""

    title: str
    text: str
    source: str = ""  # the outlet
    published: dt.date | None = None
    url: str = ""
    language: str = ""
    authors: list[str] = field(default_factory=list)
    license: str = ""
    attribution: str = ""
    id: str = ""  # stable id; assigned by corpus.assign_id when empty
    path: Path | None = None  # its file in corpus/, once saved


@dataclass(frozen=True)
class Chunk:
    """A span of an article: `text == article.text[start:end]`."""

    id: str
    article_id: str
    ordinal: int
    start: int
    end: int
    text: str


@dataclass
class Passage:
    """A retrieved chunk with the metadata of its article and its scores."""

    chunk: Chunk
    title: str
    source: str
    published: dt.date | None
    url: str
    score: float = 0.0  # fused score, higher is better
    dense: float = 0.0  # cosine similarity to the question
    keyword: float = 0.0  # keyword (BM25) score, 0 when no keyword hit
    language: str = ""  # the article's language (ISO code), "" when unknown
    # False when the question is in another language than the passage (multilingual backend):
    # then the question's words cannot be looked for in it (bot/crosslingual.py).
    same_language: bool = True

    @property
    def article_id(self) -> str:
        return self.chunk.article_id


@dataclass
class Citation:
    """`[n]` in an answer: a verbatim quote of an article, with where it stands."""

    n: int
    article_id: str
    title: str
    source: str
    published: dt.date | None
    url: str
    quote: str
    start: int
    end: int


@dataclass
class Filters:
    """Retrieval filters; all optional."""

    since: dt.date | None = None
    until: dt.date | None = None
    source: str = ""
    as_of: dt.date | None = None


@dataclass
class Answer:
    question: str
    text: str
    citations: list[Citation]
    abstained: bool
    passages: list[Passage] = field(default_factory=list)  # what retrieval returned
    note: str = ""  # shown in italics, e.g. when the language model failed and this is extractive
    query: str = ""  # the standalone query it was retrieved for (a follow-up rewritten)


@dataclass
class IngestReport:
    """What one ingest run did, article by article."""

    added: list[Article] = field(default_factory=list)
    updated: list[Article] = field(default_factory=list)
    unchanged: list[Article] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    chunks: dict[str, int] = field(default_factory=dict)  # article id -> chunks stored
    notes: list[tuple[str, str]] = field(default_factory=list)  # (name, e.g. "title cut …")

    def merge(self, other: IngestReport) -> None:
        """Add a later part of the same run: what it found unchanged because this part had just
        added or updated it is not counted twice."""
        done = {a.id for a in self.added + self.updated}
        self.added += other.added
        self.updated += other.updated
        self.unchanged += [a for a in other.unchanged if a.id not in done]
        self.failed += other.failed
        self.chunks.update(other.chunks)
        self.notes += other.notes
