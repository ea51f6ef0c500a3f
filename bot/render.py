"""Every piece of Telegram HTML the bot sends, and every keyboard. Nothing else.

Every dynamic string goes through esc(); metadata shown in lists is shortened; messages come
out of split.pack(), which keeps each one within Telegram's limits.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, WebAppInfo

from bot import callbacks
from bot.i18n import N_, _, ngettext, said
from bot.models import Answer, Citation, IngestReport, Passage
from bot.output import by_article, nearest_sources
from bot.split import pack, plain_text

QUOTE_CHARS = 1200  # a longer quote is shown as its verbatim beginning + "…"
TITLE_CHARS = 200  # titles in lists, sources and summaries
META_CHARS = 80  # an outlet, a user name, an audit target
URL_CHARS = 2048  # longer links are shown as plain titles
STREAM_CHARS = 3500  # a streamed preview shows at most this much
PAGE_SIZE = 10
LISTED = 15  # articles named in an ingest summary; the rest are counted

START = N_(
    "<b>Newsdesk</b> answers questions from this newsroom's own articles. Every statement "
    "carries a number [n] that points to a verbatim quote, with the article's title, outlet, "
    "date and link. When the articles do not answer, it says so instead of guessing.\n\n"
    "Just type a question, for example:\n<i>Why would the EU buy S-400 systems from Turkey?</i>"
    "\n\n/help lists the commands and filters."
)
HELP = N_(
    "<b>Asking</b>\n"
    "Type a question in this chat, or use /ask QUESTION (in groups: /ask, mention me, or reply "
    "to one of my messages). Follow-ups such as <i>and what did Ankara say?</i> continue your "
    "previous question.\n\n"
    "<b>Filters</b> (anywhere in the question)\n"
    "<code>since:2025-01-01</code> only articles published on or after that day\n"
    "<code>until:2025-12-31</code> only articles published on or before that day\n"
    '<code>source:Reuters</code> only that outlet (quotes for spaces: <code>source:"AP News"'
    "</code>)\nRecent coverage is preferred: the date of your message counts as “now”.\n\n"
    "<b>Commands</b>\n"
    "/ask QUESTION — a cited answer\n"
    "/search QUERY — the best-matching passages with their scores\n"
    "/sources — the articles in the corpus, newest first\n"
    "/watch QUERY — be told about new articles on a topic; /watches, /unwatch ID\n"
    "/timeline QUERY — a story in time order; /digest HH:MM or off — a daily digest\n"
    "/privacy — what is stored about you; /forget — delete it\n"
    "/help — this message\n\n"
    "<b>Admins</b>\n"
    "Send a file (txt, md, html, pdf, docx, jsonl; caption lines such as "
    "<code>source: Reuters</code>, <code>date: 2025-11-20</code>, <code>url: …</code> set its "
    "metadata), a link, or forward a message to add it. /add URL or /add TEXT, /docs, /doc ID, "
    "/remove ID, /stats, /audit, /feeds.\n\n"
    "Under each answer: <b>Quotes</b> shows the quoted passages; 👍/👎 tell us how it went."
)
ADD_USAGE = N_(
    "Send <code>/add https://…</code> for a web page, or <code>/add</code> followed by the "
    "article text (first line = title; optional lines <code>source: …</code>, "
    "<code>date: YYYY-MM-DD</code>, <code>url: …</code> at the end)."
)
NOT_ADMIN = N_("Only admins can change the corpus.")
# Short notices shown on a pressed button (answerCallbackQuery: plain text, <= 200 chars).
NOTICE_INVALID = N_("This button is not valid.")
NOTICE_OTHER_CHAT = N_("This button belongs to an answer in another chat.")
NOTICE_NOT_ASKER = N_("Only the person who asked can rate this answer.")
NOTICE_GONE = N_("That answer is no longer available.")
NOTICE_NOT_ADMIN = N_("Only admins can do that.")
NOTICE_PRIVATE = N_("Sorry, this bot is private to the newsroom.")
THANKS = N_("Thanks, noted.")
SORRY = N_("Thanks, we will look into it.")


def esc(text: str) -> str:
    return html.escape(text, quote=False)


def short(text: str, limit: int) -> str:
    """At most `limit` characters on one line, cut at a word with "…"."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut[limit // 2 :] else cut) + "…"


def link(title: str, url: str) -> str:
    """A shortened title, linked to its article when the URL is a sensible web link."""
    title = esc(short(title, TITLE_CHARS)) or _("(untitled)")
    if url.startswith(("http://", "https://")) and len(url) <= URL_CHARS and " " not in url:
        return f'<a href="{html.escape(url, quote=True)}">{title}</a>'
    return title


def meta_html(source: str, published: dt.date | None) -> str:
    meta = ", ".join(
        x for x in (short(source, META_CHARS), published.isoformat() if published else "") if x
    )
    return f" — {esc(meta)}" if meta else ""


def language_tag(language: str, reader: str) -> str:
    """` (EN)` after a source written in another language than the reader's question."""
    language = language.strip().lower()[:8]
    if not language or not reader or language == reader:
        return ""
    return f" ({esc(language.upper())})"


def short_quote(quote: str) -> str:
    return quote if len(quote) <= QUOTE_CHARS else quote[:QUOTE_CHARS].rsplit(" ", 1)[0] + " …"


# -- journalists ------------------------------------------------------------------------------


def answer_html(
    answer: Answer,
    pages: Mapping[int, str] | None = None,
    languages: Mapping[str, str] | None = None,
    reader: str = "",
) -> list[str]:
    """The answer, then its sources: `[n] Title — Outlet, date` linked to the article, or with
    `pages` (citation n -> its article page) to the page, each [n] to its quote there. With
    `languages` (article id -> its language), a source in another language than `reader`'s
    says which: `— Reuters, 2025-11-20 (EN)`."""
    languages = languages or {}
    text = _(answer.text) if answer.abstained else answer.text  # quotes stay verbatim
    blocks = [esc(p) for p in text.split("\n\n") if p.strip()]
    if answer.note:
        blocks.append(f"<i>{esc(answer.note)}</i>")
    if answer.abstained:
        near = nearest_sources(answer.passages)
        if near:
            lines = [
                f"• {link(p.title, p.url)}{meta_html(p.source, p.published)}"
                + language_tag(languages.get(p.article_id, ""), reader)
                for p in near
            ]
            blocks.append("<b>{}</b>\n".format(_("Nearest sources")) + "\n".join(lines))
        return pack(blocks)
    lines = []
    for cites in by_article(answer.citations):
        first = cites[0]
        tag = language_tag(languages.get(first.article_id, ""), reader)
        if pages and all(c.n in pages for c in cites):
            lines.append(page_source_line(cites, pages) + tag)
            continue
        numbers = ", ".join(str(c.n) for c in cites)
        lines.append(
            f"[{numbers}] {link(first.title, first.url)}"
            f"{meta_html(first.source, first.published)}{tag}"
        )
    blocks.append("<b>{}</b>\n".format(_("Sources")) + "\n".join(lines))
    return pack(blocks)


def page_source_line(cites: list[Citation], pages: Mapping[int, str]) -> str:
    """`[1, 2] Title — Outlet, date · original`: numbers and title open the article page."""
    first = cites[0]
    numbers = ", ".join(f'<a href="{html.escape(pages[c.n])}">{c.n}</a>' for c in cites)
    title = esc(short(first.title, TITLE_CHARS)) or _("(untitled)")
    word = esc(_("original"))
    original = link(word, first.url)
    original = f" · {original}" if original != word else ""
    return (
        f'[{numbers}] <a href="{html.escape(pages[first.n])}">{title}</a>'
        f"{meta_html(first.source, first.published)}{original}"
    )


def answer_keyboard(answer_id: int, has_quotes: bool) -> InlineKeyboardMarkup:
    row = [
        InlineKeyboardButton("👍", callback_data=callbacks.vote(answer_id, 1)),
        InlineKeyboardButton("👎", callback_data=callbacks.vote(answer_id, -1)),
    ]
    if has_quotes:
        quotes = InlineKeyboardButton(_("Quotes"), callback_data=callbacks.quotes(answer_id))
        row.insert(0, quotes)
    return InlineKeyboardMarkup([row])


def quotes_html(citations: list[Citation], pages: Mapping[int, str] | None = None) -> list[str]:
    """Each quote as a blockquote with its [n] and where it comes from; with `pages`, the
    title links to the article page scrolled to that quote."""
    blocks = ["<b>{}</b>".format(_("Quotes"))]
    for c in citations:
        title = esc(short(c.title, TITLE_CHARS))
        if pages and c.n in pages:
            title = f'<a href="{html.escape(pages[c.n])}">{title or _("(untitled)")}</a>'
        blocks.append(
            f"<blockquote>[{c.n}] {esc(short_quote(c.quote))}</blockquote>\n"
            f"<i>{title}{meta_html(c.source, c.published)}</i>"
        )
    return pack(blocks)


def page_keyboard(url: str) -> InlineKeyboardMarkup:
    """Under Quotes in a private chat: the article page as a Mini App, inside Telegram."""
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(_("Read in Telegram"), web_app=WebAppInfo(url))]]
    )


def passages_html(query: str, passages: list[Passage]) -> list[str]:
    """`/search`: top passages with their scores, no composed answer."""
    shown = esc(short(query, TITLE_CHARS))
    if not passages:
        return pack([_("No passages match <i>{query}</i>.").format(query=shown)])
    blocks = [_("<b>Top passages for</b> <i>{query}</i>").format(query=shown)]
    for i, p in enumerate(passages, 1):
        text = short_quote(" ".join(p.chunk.text.split()))
        scores = _("score {score} · cosine {cosine} · keyword {keyword}").format(
            score=f"{p.score:.4f}", cosine=f"{p.dense:.2f}", keyword=f"{p.keyword:.1f}"
        )
        blocks.append(
            f"{i}. {link(p.title, p.url)}{meta_html(p.source, p.published)}\n"
            f"<i>{scores}</i>\n<blockquote>{esc(text)}</blockquote>"
        )
    return pack(blocks)


def listing_html(
    rows: Sequence[Any], total: int, page: int, admin: bool
) -> tuple[list[str], InlineKeyboardMarkup | None]:
    """Page `page` of the corpus: its `ArticleRow`s (Store.visible_page), of `total`, newest
    first; admins also see ids and chunks."""
    pages = max(1, -(-total // PAGE_SIZE))
    count = ngettext("{n} article", "{n} articles", total).format(n=total)
    lines = [
        _("<b>Sources</b> — {count}, page {page}/{pages}").format(
            count=count, page=page + 1, pages=pages
        )
    ]
    for i, row in enumerate(rows[:PAGE_SIZE], page * PAGE_SIZE + 1):
        meta = meta_html(row.source, row.published)
        chunks = ngettext("{n} chunk", "{n} chunks", row.n_chunks).format(n=row.n_chunks)
        extra = f"\n    <code>{esc(row.id)}</code> · {chunks}" if admin else ""
        lines.append(f"{i}. {link(row.title, row.url)}{meta}{extra}")
    if not rows:
        lines.append(_("The corpus is empty."))
    listing = "docs" if admin else "sources"
    buttons = []
    if page > 0:
        buttons.append(
            InlineKeyboardButton(_("◀ Newer"), callback_data=callbacks.page(listing, page - 1))
        )
    if page < pages - 1:
        buttons.append(
            InlineKeyboardButton(_("Older ▶"), callback_data=callbacks.page(listing, page + 1))
        )
    return pack(["\n".join(lines)]), InlineKeyboardMarkup([buttons]) if buttons else None


def preview_html(text: str) -> str:
    """A streamed answer while it is being written."""
    return pack([esc(text[:STREAM_CHARS]) + " …"])[0]


def ask_example(example: str) -> str:
    return _("What would you like to know? For example: <code>{example}</code>").format(
        example=esc(example)
    )


def slow_down(seconds: float) -> str:
    return _("Slow down: you can ask again in {seconds} s.").format(seconds=f"{seconds:.0f}")


def problem(text: str) -> str:
    """A user error, said as it is (its message is written to be shown)."""
    return esc(short(text, 1000)) or _("That did not work.")


def stranger(user_id: int, chat_id: int, private: bool) -> str:
    """Refusal for someone not on the allow-lists: their ids, so an admin can add them."""
    if private:
        return _(
            "Sorry, this bot is private to the newsroom. Your user id is <code>{user_id}</code>: "
            "send it to an admin to get access."
        ).format(user_id=user_id)
    return _(
        "Sorry, this bot is private to the newsroom. Your user id is <code>{user_id}</code> and "
        "this chat's id is <code>{chat_id}</code>: send them to an admin to get access."
    ).format(user_id=user_id, chat_id=chat_id)


def apology(doing: str, error_id: str) -> str:
    return _(
        "Sorry, something went wrong while {doing} (error {error_id}). Please try again; if it "
        "keeps happening, tell an admin the error id."
    ).format(doing=esc(short(doing, 300)), error_id=esc(short(error_id, 40)))


# -- admins ----------------------------------------------------------------------------------


def status(text: str) -> str:
    """A progress line ("Reading x…", "Indexing… 3/9") shown while an admin waits."""
    return esc(short(text, 300)) or _("Working…")


def summary_html(report: IngestReport) -> list[str]:
    """What happened, article by article: title, outlet, date, chunks and id."""
    lines = [
        "<b>{}</b>".format(
            _("{added} added, {unchanged} unchanged, {updated} updated, {failed} failed").format(
                added=len(report.added),
                unchanged=len(report.unchanged),
                updated=len(report.updated),
                failed=len(report.failed),
            )
        )
    ]
    changed = [(_("added"), a) for a in report.added] + [(_("updated"), a) for a in report.updated]
    for label, a in changed[:LISTED]:
        n = report.chunks.get(a.id, 0)
        lines.append(
            f"• {label}: {esc(short(a.title, TITLE_CHARS))}{meta_html(a.source, a.published)} — "
            + ngettext("{n} chunk", "{n} chunks", n).format(n=n)
            + f", id <code>{esc(a.id)}</code>"
        )
    for a in report.unchanged[: max(0, LISTED - len(changed))]:
        label = _("unchanged")
        lines.append(f"• {label}: {esc(short(a.title, TITLE_CHARS))} (<code>{esc(a.id)}</code>)")
    for name, reason in report.failed[:LISTED]:
        label = _("failed")
        reason = said(reason)  # a parser's reason, in the admin's language
        lines.append(f"• {label}: {esc(short(name, META_CHARS))}: {esc(short(reason, 500))}")
    for name, note in report.notes[:LISTED]:
        label = _("note")
        note = said(note)
        lines.append(f"• {label}: {esc(short(name, META_CHARS))}: {esc(short(note, 500))}")
    shown = len(changed) + len(report.unchanged) + len(report.failed) + len(report.notes)
    hidden = shown - (len(lines) - 1)
    if hidden > 0:
        lines.append(
            ngettext("… and {n} more (see /docs)", "… and {n} more (see /docs)", hidden).format(
                n=hidden
            )
        )
    return pack(["\n".join(lines)])


def failed_html(what: str, reason: str) -> str:
    """An admin action that did not happen, and why (nothing was stored)."""
    what, reason = esc(short(what, META_CHARS)), esc(short(reason, 1000)) or _("no reason given")
    head = "<b>{}</b>".format(_("Not done:"))
    return f"{head} {what}: {reason}" if what else f"{head} {reason}"


def doc_html(row: Any, article: Any) -> list[str]:
    """/doc: an `ArticleRow`'s metadata and the first lines of its `Article`."""
    head = article.text[:600].rsplit(" ", 1)[0] + ("…" if len(article.text) > 600 else "")
    chunks = ngettext("{n} chunk", "{n} chunks", row.n_chunks).format(n=row.n_chunks)
    published = article.published.isoformat() if article.published else "—"
    lines = [
        f"<b>{esc(short(article.title, TITLE_CHARS))}</b>",
        f"id <code>{esc(row.id)}</code> · {chunks} · {esc(row.state)}",
        _("outlet: {outlet}").format(outlet=esc(short(article.source, META_CHARS) or "—")),
        _("published: {date}").format(date=published),
        f"url: {esc(short(article.url, 300) or '—')}",
        _("authors: {authors}").format(authors=esc(short(", ".join(article.authors), 300) or "—")),
        _("file: {path}").format(path=f"<code>{esc(short(str(row.path), 300))}</code>"),
        f"<blockquote>{esc(head)}</blockquote>",
    ]
    return pack(["\n".join(lines)])


def remove_prompt(row: Any) -> tuple[str, InlineKeyboardMarkup]:
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(_("Remove"), callback_data=callbacks.remove(row.id)),
                InlineKeyboardButton(_("Cancel"), callback_data=callbacks.remove()),
            ]
        ]
    )
    text = _("Remove <b>{title}</b> (<code>{id}</code>) from the corpus and the index?").format(
        title=esc(short(row.title, TITLE_CHARS)), id=esc(row.id)
    )
    return text, keyboard


def removed(title: str, article_id: str) -> str:
    return _("Removed <b>{title}</b> (<code>{id}</code>).").format(
        title=esc(short(title, TITLE_CHARS)), id=esc(article_id)
    )


CANCELLED = N_("Cancelled: nothing was removed.")


def stats_html(data: dict[str, Any]) -> list[str]:
    return pack(
        [
            _(
                "<b>Corpus</b>\narticles: {articles}\nchunks: {chunks}\noutlets: {outlets}\n"
                "published: {first} … {last}\nindex size: {size} MB\nlast ingest: {ingest}"
            ).format(
                articles=data["articles"],
                chunks=data["chunks"],
                outlets=data["outlets"],
                first=esc(str(data["first_published"] or "—")),
                last=esc(str(data["last_published"] or "—")),
                size=f"{data['index_bytes'] / 1e6:.1f}",
                ingest=esc(str(data["last_ingest"] or "—")),
            )
        ]
    )


def audit_html(entries: Sequence[Any]) -> list[str]:
    """/audit: the latest `AuditEntry`s, one line each."""
    lines = ["<b>{}</b>".format(_("Latest admin actions"))] + [
        f"{esc(e.at[:16].replace('T', ' '))} {esc(short(e.user_name or str(e.user_id), 40))} "
        f"<b>{esc(short(e.action, 40))}</b> {esc(short(e.target, META_CHARS))} → "
        f"{esc(short(e.result, 160))}"
        for e in entries
    ]
    if not entries:
        lines.append(_("Nothing yet."))
    return pack(["\n".join(lines)])


def plain_fallback(html_text: str) -> str:
    """The same message without markup, for when Telegram refuses the HTML."""
    return plain_text(html_text)
