"""The question commands' output (`ask`, `search`, `timeline`), for the command line, or made by
the running bot for a command line that handed its question over.

The embedded Chroma store is opened by one process at a time. A second process reading beside
a bot that is writing sees half an ingest: "the vector store holds 31 of the 32 vectors",
"Error finding id". So while the bot holds index/, a question from a shell goes to the bot, as
a write does (bot/handoff.py), and comes back as the text the command prints.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import time
from typing import Any

from bot import i18n
from bot.desk import Desk
from bot.errors import IndexUnavailable
from bot.manifest import vector_gap
from bot.models import Filters
from bot.output import answer_dict, answer_text, passage_dict, source_line

COMMANDS = frozenset({"ask", "search", "timeline"})


def require_index(desk: Desk) -> None:
    """Say how to fix an empty index rather than abstaining on every question."""
    if desk.store.count_chunks() == 0:
        n = sum(1 for _ in desk.corpus.paths())
        if n:
            raise IndexUnavailable(
                f"the index in {desk.settings.index_dir} is empty but {desk.corpus.root} holds "
                f"{n} articles: run `newsdesk reindex`"
            )
    if gap := vector_gap(desk.store):
        raise IndexUnavailable(gap)


def ask_output(desk: Desk, question: str, filters: Filters, as_json: bool) -> str:
    started = time.perf_counter()
    answer = desk.ask(question, filters)
    latency = (time.perf_counter() - started) * 1000
    if as_json:
        pages = {}
        if desk.settings.public_url:  # article pages: a view_url per citation
            from bot.viewer import build_viewer

            pages = build_viewer(desk.settings, desk).links(answer.citations)
        return json.dumps(answer_dict(answer, latency, pages), indent=2, ensure_ascii=False)
    from bot.language import reader_language

    ids = [c.article_id for c in answer.citations] + [p.article_id for p in answer.passages]
    written = desk.store.languages(ids)
    reader = reader_language(question, written.values(), i18n.language())
    return answer_text(answer, written, reader)


def search_output(desk: Desk, query: str, filters: Filters, k: int, as_json: bool) -> str:
    passages = desk.search(query, filters, k)
    if as_json:
        return json.dumps([passage_dict(p) for p in passages], indent=2, ensure_ascii=False)
    lines = []
    for i, p in enumerate(passages, 1):
        lines.append(f"{i}. score {p.score:.4f}  cosine {p.dense:.3f}  keyword {p.keyword:.2f}")
        lines.append(f"   {source_line(p.title, p.source, p.published)}  [{p.article_id}]")
        lines.append("   " + " ".join(p.chunk.text.split())[:300])
    return "\n".join(lines)


def timeline_output(desk: Desk, query: str, filters: Filters, as_json: bool) -> str:
    from bot.timeline import timeline as story

    entries = story(desk, query, filters)
    if as_json:
        return json.dumps([e.as_dict() for e in entries], indent=2, ensure_ascii=False)
    if not entries:
        return f"no articles in the archive tell the story of {query!r}"
    lines = []
    for e in entries:
        day = e.published.isoformat() if e.published else "undated   "
        lines.append(f"{day}  {e.source[:20]}  {e.title[:70]}  {e.url}".rstrip())
        lines.append(f"   [{e.n}] {' '.join(e.quote.split())[:300]}")
    return "\n".join(lines)


# -- the hand-off: what the command line sends, and the bot's side ----------------------------


def note(command: str, filters: Filters, lang: str | None, **args: Any) -> dict[str, Any]:
    """A question for the bot, as JSON: the command's arguments and its filters."""
    days = {k: getattr(filters, k) for k in ("since", "until", "as_of")}
    return {
        "command": command,
        "filters": {
            "source": filters.source,
            **{k: v.isoformat() if v else None for k, v in days.items()},
        },
        "lang": lang,
        **args,
    }


def run(desk: Desk, data: dict[str, Any]) -> str:
    """The bot's side: the text the command line prints, in the language it asked for.

    In a context of its own, so that the language chosen never leaks into the bot's thread."""
    return contextvars.copy_context().run(_run, desk, data)


def _run(desk: Desk, data: dict[str, Any]) -> str:
    i18n.use(data.get("lang") or desk.settings.language)
    raw = data.get("filters") or {}

    def day(key: str) -> dt.date | None:
        return dt.date.fromisoformat(raw[key]) if raw.get(key) else None

    filters = Filters(day("since"), day("until"), str(raw.get("source") or ""), day("as_of"))
    command, as_json = data["command"], bool(data.get("json"))
    if command == "ask":
        return ask_output(desk, str(data["question"]), filters, as_json)
    if command == "search":
        return search_output(desk, str(data["query"]), filters, int(data["k"]), as_json)
    return timeline_output(desk, str(data["query"]), filters, as_json)
