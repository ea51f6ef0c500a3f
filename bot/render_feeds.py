"""Telegram HTML and keyboards for feeds, watches, timelines and digests (render.py's rules:
every dynamic string escaped, every message packed within Telegram's limits)."""

from __future__ import annotations

from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot import callbacks
from bot.feeds import Feed, PollResult, when
from bot.render import META_CHARS, esc, link, meta_html, short, short_quote
from bot.split import pack
from bot.timeline import Entry
from bot.watches import Match, Watch

TIMELINE_PAGE = 5
FEEDS_USAGE = (
    "<code>/feeds</code> lists the feeds; <code>/feeds add URL [outlet]</code> adds one (RSS, "
    "Atom or a news sitemap); <code>/feeds remove ID</code> removes one."
)
FEEDS_PRIVATE = (
    "Feeds are managed in a private chat with me: their addresses and errors are not for a group."
)
WATCH_USAGE = (
    "Say what to watch, with filters if you like: <code>/watch wind farm Kestrel Bay "
    "source:Reuters</code>. New matching articles are sent to you here."
)
TIMELINE_USAGE = "Say which story: <code>/timeline harbour bridge repairs since:2024-01-01</code>"
DIGEST_USAGE = (
    "<code>/digest 07:30</code> sends you, once a day, what matched your watches since the last "
    "digest; <code>/digest off</code> stops it."
)


def feeds_html(feeds: Sequence[Feed]) -> tuple[list[str], InlineKeyboardMarkup | None]:
    if not feeds:
        return pack(["No feeds yet. " + FEEDS_USAGE]), None
    blocks = ["<b>Feeds</b>"]
    for feed in feeds:
        error = f"\n<i>{esc(short(feed.last_error, 300))}</i>" if feed.last_error else ""
        blocks.append(
            f"<b>{feed.id}</b> {link(feed.outlet or feed.url, feed.url)} — {esc(feed.state)}\n"
            f"last poll {esc(when(feed.last_poll))}, last new item {esc(when(feed.last_new))}"
            + error
        )
    buttons = [
        [InlineKeyboardButton(f"Remove {f.id}", callback_data=callbacks.feed_remove(f.id))]
        for f in feeds[:50]
    ]
    return pack(blocks), InlineKeyboardMarkup(buttons)


def feed_added(feed: Feed, minutes: float) -> str:
    return (
        f"Added feed <b>{feed.id}</b>: {esc(short(feed.url, 300))}. It is polled every "
        f"{minutes:g} minutes."
    )


def feed_removed(feed: Feed) -> str:
    return (
        f"Removed feed <b>{feed.id}</b>: {esc(short(feed.url, 300))}. "
        "Its articles stay in the archive."
    )


def feed_alert(result: PollResult) -> str:
    return (
        f"⚠️ Feed <b>{result.feed.id}</b> ({esc(short(result.feed.url, 300))}) has failed for a "
        f"day: <i>{esc(short(result.error, 500))}</i>. It is still retried; /feeds to remove it."
    )


def push_html(match: Match) -> list[str]:
    """A new article for a watch: title, outlet, date, link and its best sentence."""
    query = esc(short(match.watch.text, 100))
    held = (
        f"\n<i>{match.held} more matches waited for your digest (at most "
        "a few alerts an hour per watch).</i>"
        if match.held
        else ""
    )
    return pack(
        [
            f"🔔 New for your watch <b>{match.watch.id}</b> <i>{query}</i>\n"
            f"{link(match.title, match.url)}{meta_html(match.source, match.published)}\n"
            f"<blockquote>{esc(short_quote(match.quote))}</blockquote>{held}"
        ]
    )


def watches_html(watches: Sequence[Watch]) -> list[str]:
    if not watches:
        return pack(["You watch nothing yet. " + WATCH_USAGE])
    lines = [f"<b>{w.id}</b> {esc(short(w.text, 200))}" for w in watches]
    return pack(["<b>Your watches</b> (/unwatch ID removes one)\n" + "\n".join(lines)])


def watching(watch: Watch) -> str:
    return (
        f"Watching <i>{esc(short(watch.text, 200))}</i> (watch <b>{watch.id}</b>). "
        "New matching articles will be sent here; /unwatch "
        f"{watch.id} stops it."
    )


def unwatched(watch: Watch) -> str:
    return f"Stopped watch <b>{watch.id}</b> <i>{esc(short(watch.text, 200))}</i>."


def timeline_html(
    timeline_id: int, query: str, entries: Sequence[Entry], page: int
) -> tuple[list[str], InlineKeyboardMarkup | None]:
    shown = esc(short(query, 200))
    if not entries:
        return pack([f"No articles in the archive tell the story of <i>{shown}</i>."]), None
    pages = -(-len(entries) // TIMELINE_PAGE)
    page = min(max(page, 0), pages - 1)
    blocks = [f"<b>Timeline</b> <i>{shown}</i> — page {page + 1}/{pages}"]
    for e in entries[page * TIMELINE_PAGE : (page + 1) * TIMELINE_PAGE]:
        day = e.published.isoformat() if e.published else "undated"
        outlet = esc(short(e.source, META_CHARS)) or "—"
        blocks.append(
            f"<b>{esc(day)}</b> · {outlet}\n{link(e.title, e.url)}\n"
            f"<blockquote>[{e.n}] {esc(short_quote(e.quote))}</blockquote>"
        )
    row = []
    if page > 0:
        row.append(
            InlineKeyboardButton(
                "◀ Earlier", callback_data=callbacks.timeline(timeline_id, page - 1)
            )
        )
    if page < pages - 1:
        row.append(
            InlineKeyboardButton("Later ▶", callback_data=callbacks.timeline(timeline_id, page + 1))
        )
    return pack(blocks), InlineKeyboardMarkup([row]) if row else None


def digest_html(matches: Sequence[Match]) -> list[str]:
    blocks = ["<b>Your daily digest</b>"]
    current = None
    for m in matches:
        if m.watch.id != current:
            current = m.watch.id
            blocks.append(f"<b>Watch {m.watch.id}</b> <i>{esc(short(m.watch.text, 100))}</i>")
        blocks.append(
            f"• {link(m.title, m.url)}{meta_html(m.source, m.published)}\n"
            f"<blockquote>{esc(short_quote(m.quote))}</blockquote>"
        )
    return pack(blocks)


def digest_set(hhmm: str, zone: str) -> str:
    return f"Your digest comes daily at <b>{esc(hhmm)}</b> ({esc(zone)}), when a watch matched."


DIGEST_OFF = "Your daily digest is off."
