"""Answer -> what the command line prints: terminal text and the `--json` schema."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from bot.i18n import _
from bot.models import Answer, Citation, Passage


def source_line(title: str, source: str, published: dt.date | None) -> str:
    """`Title — Outlet, 2025-11-20`, leaving out what is unknown."""
    meta = ", ".join(x for x in (source, published.isoformat() if published else "") if x)
    return f"{title} — {meta}" if meta else title


def nearest_sources(passages: list[Passage], limit: int = 3) -> list[Passage]:
    """One passage per article, best first."""
    seen: dict[str, Passage] = {}
    for passage in passages:
        seen.setdefault(passage.article_id, passage)
    return list(seen.values())[:limit]


def language_mark(language: str, reader: str) -> str:
    """`  (EN)` after a source in another language than the question's."""
    language = language.strip().lower()[:8]
    return f" ({language.upper()})" if language and reader and language != reader else ""


def answer_text(
    answer: Answer, languages: Mapping[str, str] | None = None, reader: str = ""
) -> str:
    languages = languages or {}
    lines = [_(answer.text) if answer.abstained else answer.text, ""]
    if answer.note:
        lines[1:1] = ["", f"_{answer.note}_"]
    if answer.abstained:
        near = nearest_sources(answer.passages)
        if near:
            lines.append(_("Nearest sources") + ":")
            lines += [
                f"  - {source_line(p.title, p.source, p.published)}"
                f"{language_mark(languages.get(p.article_id, ''), reader)}  {p.url}".rstrip()
                for p in near
            ]
        return "\n".join(lines).rstrip() + "\n"
    lines.append(_("Sources") + ":")
    for cites in by_article(answer.citations):
        first = cites[0]
        numbers = ", ".join(str(c.n) for c in cites)
        mark = language_mark(languages.get(first.article_id, ""), reader)
        lines.append(f"[{numbers}] {source_line(first.title, first.source, first.published)}{mark}")
        if first.url:
            lines.append(f"    {first.url}")
        lines += [f"    [{c.n}] “{c.quote}”" for c in cites]
    return "\n".join(lines) + "\n"


def by_article(citations: list[Citation]) -> list[list[Citation]]:
    """Citations grouped by article, in order of first citation."""
    grouped: dict[str, list[Citation]] = {}
    for c in citations:
        grouped.setdefault(c.article_id, []).append(c)
    return list(grouped.values())


def citation_dict(c: Citation) -> dict[str, Any]:
    return {
        "n": c.n,
        "article_id": c.article_id,
        "title": c.title,
        "source": c.source,
        "published": c.published.isoformat() if c.published else None,
        "url": c.url,
        "quote": c.quote,
        "start": c.start,
        "end": c.end,
    }


def passage_dict(p: Passage) -> dict[str, Any]:
    return {
        "article_id": p.article_id,
        "chunk_id": p.chunk.id,
        "title": p.title,
        "source": p.source,
        "published": p.published.isoformat() if p.published else None,
        "url": p.url,
        "start": p.chunk.start,
        "end": p.chunk.end,
        "text": p.chunk.text,
        "score": round(p.score, 6),
        "dense": round(p.dense, 4),
        "keyword": round(p.keyword, 4),
    }


def answer_dict(
    answer: Answer, latency_ms: float | None = None, pages: Mapping[int, str] | None = None
) -> dict[str, Any]:
    """The `newsdesk ask --json` schema (documented in README.md); with `pages` (citation n ->
    article page, when NEWSDESK_PUBLIC_URL is set) each citation has a `view_url`."""
    citations = [citation_dict(c) for c in answer.citations]
    if pages:
        for c in citations:
            c["view_url"] = pages.get(c["n"])
    data: dict[str, Any] = {
        "question": answer.question,
        "abstained": answer.abstained,
        "answer": _(answer.text) if answer.abstained else answer.text,
        "citations": citations,
        "sources": [
            {k: v for k, v in passage_dict(p).items() if k not in ("text", "chunk_id")}
            for p in nearest_sources(answer.passages, limit=10)
        ],
    }
    if answer.note:
        data["note"] = answer.note
    if latency_ms is not None:
        data["latency_ms"] = round(latency_ms, 1)
    return data
