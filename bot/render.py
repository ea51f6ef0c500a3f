"""Answer -> what people and programs read: terminal text and JSON."""

from __future__ import annotations

import datetime as dt
from typing import Any

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


def answer_text(answer: Answer) -> str:
    lines = [answer.text, ""]
    if answer.abstained:
        near = nearest_sources(answer.passages)
        if near:
            lines.append("Nearest sources:")
            lines += [
                f"  - {source_line(p.title, p.source, p.published)}  {p.url}".rstrip() for p in near
            ]
        return "\n".join(lines).rstrip() + "\n"
    lines.append("Sources:")
    for c in answer.citations:
        lines.append(f"[{c.n}] {source_line(c.title, c.source, c.published)}")
        if c.url:
            lines.append(f"    {c.url}")
        lines.append(f"    “{c.quote}”")
    return "\n".join(lines) + "\n"


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


def answer_dict(answer: Answer, latency_ms: float | None = None) -> dict[str, Any]:
    """The `newsdesk ask --json` schema (documented in README.md)."""
    data: dict[str, Any] = {
        "question": answer.question,
        "abstained": answer.abstained,
        "answer": answer.text,
        "citations": [citation_dict(c) for c in answer.citations],
        "sources": [
            {k: v for k, v in passage_dict(p).items() if k not in ("text", "chunk_id")}
            for p in nearest_sources(answer.passages, limit=10)
        ],
    }
    if latency_ms is not None:
        data["latency_ms"] = round(latency_ms, 1)
    return data
