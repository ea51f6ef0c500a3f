"""Answer -> what people and programs read: terminal text and JSON."""

from __future__ import annotations

import datetime as dt
import html
import re
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
    if answer.note:
        lines[1:1] = ["", f"_{answer.note}_"]
    if answer.abstained:
        near = nearest_sources(answer.passages)
        if near:
            lines.append("Nearest sources:")
            lines += [
                f"  - {source_line(p.title, p.source, p.published)}  {p.url}".rstrip() for p in near
            ]
        return "\n".join(lines).rstrip() + "\n"
    lines.append("Sources:")
    for cites in by_article(answer.citations):
        first = cites[0]
        numbers = ", ".join(str(c.n) for c in cites)
        lines.append(f"[{numbers}] {source_line(first.title, first.source, first.published)}")
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
    if answer.note:
        data["note"] = answer.note
    if latency_ms is not None:
        data["latency_ms"] = round(latency_ms, 1)
    return data


# -- Telegram HTML ---------------------------------------------------------------------------
# Every dynamic string goes through esc(); messages are built from whole blocks so that a
# split never cuts a tag, and each message's text after entity parsing stays <= 4096.

TELEGRAM_LIMIT = 4096
QUOTE_CHARS = 1200  # a longer quote is shown as its verbatim beginning + "…"


def esc(text: str) -> str:
    return html.escape(text, quote=False)


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def plain_len(html_text: str) -> int:
    """Length after entity parsing: tags removed, entities decoded."""
    return utf16_len(html.unescape(re.sub(r"<[^>]+>", "", html_text)))


def link(title: str, url: str) -> str:
    if url.startswith(("http://", "https://")):
        return f'<a href="{html.escape(url, quote=True)}">{esc(title)}</a>'
    return esc(title)


def meta_html(source: str, published: dt.date | None) -> str:
    meta = ", ".join(x for x in (source, published.isoformat() if published else "") if x)
    return f" — {esc(meta)}" if meta else ""


def pack(blocks: list[str], limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Join blocks with blank lines into as few messages as fit the limit."""
    messages: list[str] = []
    current = ""
    for block in blocks:
        block = fit_block(block, limit)
        candidate = f"{current}\n\n{block}" if current else block
        if current and plain_len(candidate) > limit:
            messages.append(current)
            candidate = block
        current = candidate
    if current:
        messages.append(current)
    return messages


def fit_block(block: str, limit: int) -> str:
    """A single block over the limit (only plain paragraphs can be) is cut at a word."""
    if plain_len(block) <= limit or "<" in block:
        return block
    text = html.unescape(block)
    while utf16_len(text) > limit - 1:
        text = text[: int(len(text) * 0.9)].rsplit(" ", 1)[0]
    return esc(text) + "…"


def short_quote(quote: str) -> str:
    return quote if len(quote) <= QUOTE_CHARS else quote[:QUOTE_CHARS].rsplit(" ", 1)[0] + " …"


def answer_html(answer: Answer) -> list[str]:
    """The answer, then its sources: `[n] Title — Outlet, date` linked to the article."""
    blocks = [esc(p) for p in answer.text.split("\n\n") if p.strip()]
    if answer.note:
        blocks.append(f"<i>{esc(answer.note)}</i>")
    if answer.abstained:
        near = nearest_sources(answer.passages)
        if near:
            lines = [f"• {link(p.title, p.url)}{meta_html(p.source, p.published)}" for p in near]
            blocks.append("<b>Nearest sources</b>\n" + "\n".join(lines))
        return pack(blocks)
    lines = []
    for cites in by_article(answer.citations):
        first = cites[0]
        numbers = ", ".join(str(c.n) for c in cites)
        lines.append(
            f"[{numbers}] {link(first.title, first.url)}{meta_html(first.source, first.published)}"
        )
    blocks.append("<b>Sources</b>\n" + "\n".join(lines))
    return pack(blocks)


def quotes_html(answer_citations: list[Citation]) -> list[str]:
    """Each quote as a blockquote with its [n] and where it comes from."""
    blocks = ["<b>Quotes</b>"]
    for c in answer_citations:
        blocks.append(
            f"<blockquote>[{c.n}] {esc(short_quote(c.quote))}</blockquote>\n"
            f"<i>{esc(c.title)}{meta_html(c.source, c.published)}</i>"
        )
    return pack(blocks)


def passages_html(query: str, passages: list[Passage]) -> list[str]:
    """`/search`: top passages with their scores, no composed answer."""
    if not passages:
        return [f"No passages match <i>{esc(query)}</i>."]
    blocks = [f"<b>Top passages for</b> <i>{esc(query)}</i>"]
    for i, p in enumerate(passages, 1):
        text = short_quote(" ".join(p.chunk.text.split()))
        blocks.append(
            f"{i}. {link(p.title, p.url)}{meta_html(p.source, p.published)}\n"
            f"<i>score {p.score:.4f} · cosine {p.dense:.2f} · keyword {p.keyword:.1f}</i>\n"
            f"<blockquote>{esc(text)}</blockquote>"
        )
    return pack(blocks)


def plain_fallback(html_text: str) -> str:
    """The same message without markup, for when Telegram refuses the HTML."""
    return html.unescape(re.sub(r"<[^>]+>", "", html_text))
