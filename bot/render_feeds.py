"""Telegram HTML and keyboards for feeds, watches, timelines and digests (render.py's rules:
every dynamic string escaped, every message packed within Telegram's limits)."""

from __future__ import annotations

from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot import callbacks
from bot.feeds import Feed, PollResult, when
from bot.i18n import N_, _, ngettext, said
from bot.render import META_CHARS, esc, link, meta_html, short, short_quote
from bot.split import pack
from bot.timeline import Entry
from bot.watches import Match, Watch

TIMELINE_PAGE = 5
FEEDS_USAGE = N_(
    "<code>/feeds</code> lists the feeds; <code>/feeds add URL [outlet]</code> adds one (RSS, "
    "Atom or a news sitemap); <code>/feeds remove ID</code> removes one."
)
FEEDS_PRIVATE = N_(
    "Feeds are managed in a private chat with me: their addresses and errors are not for a group."
)
WATCH_USAGE = N_(
    "Say what to watch, with filters if you like: <code>/watch wind farm Kestrel Bay "
    "source:Reuters</code>. New matching articles are sent to you here."
)
TIMELINE_USAGE = N_(
    "Say which story: <code>/timeline harbour bridge repairs since:2024-01-01</code>"
)
DIGEST_USAGE = N_(
    "<code>/digest 07:30</code> sends you, once a day, what matched your watches since the last "
    "digest; <code>/digest off</code> stops it."
)


def feeds_html(feeds: Sequence[Feed]) -> tuple[list[str], InlineKeyboardMarkup | None]:
    if not feeds:
        return pack([_("No feeds yet.") + " " + _(FEEDS_USAGE)]), None
    blocks = ["<b>{}</b>".format(_("Feeds"))]
    for feed in feeds:
        error = f"\n<i>{esc(short(feed.last_error, 300))}</i>" if feed.last_error else ""
        blocks.append(
            f"<b>{feed.id}</b> {link(feed.outlet or feed.url, feed.url)} — {esc(feed.state)}\n"
            + _("last poll {poll}, last new item {new}").format(
                poll=esc(when(feed.last_poll)), new=esc(when(feed.last_new))
            )
            + error
        )
    buttons = [
        [
            InlineKeyboardButton(
                _("Remove {id}").format(id=f.id), callback_data=callbacks.feed_remove(f.id)
            )
        ]
        for f in feeds[:50]
    ]
    return pack(blocks), InlineKeyboardMarkup(buttons)


def feed_added(feed: Feed, minutes: float) -> str:
    return _("Added feed <b>{id}</b>: {url}. It is polled every {minutes} minutes.").format(
        id=feed.id, url=esc(short(feed.url, 300)), minutes=f"{minutes:g}"
    )


def feed_removed(feed: Feed) -> str:
    return _("Removed feed <b>{id}</b>: {url}. Its articles stay in the archive.").format(
        id=feed.id, url=esc(short(feed.url, 300))
    )


def feed_alert(result: PollResult) -> str:
    return _(
        "⚠️ Feed <b>{id}</b> ({url}) has failed for a day: <i>{error}</i>. It is still retried; "
        "/feeds to remove it."
    ).format(
        id=result.feed.id,
        url=esc(short(result.feed.url, 300)),
        error=esc(short(said(result.error), 500)),
    )


def push_html(match: Match) -> list[str]:
    """A new article for a watch: title, outlet, date, link and its best sentence."""
    query = esc(short(match.watch.text, 100))
    held = (
        "\n<i>{}</i>".format(
            ngettext(
                "{n} more match waited for your digest (at most a few alerts an hour per watch).",
                "{n} more matches waited for your digest (at most a few alerts an hour per watch).",
                match.held,
            ).format(n=match.held)
        )
        if match.held
        else ""
    )
    return pack(
        [
            _("🔔 New for your watch <b>{id}</b> <i>{query}</i>").format(
                id=match.watch.id, query=query
            )
            + f"\n{link(match.title, match.url)}{meta_html(match.source, match.published)}\n"
            f"<blockquote>{esc(short_quote(match.quote))}</blockquote>{held}"
        ]
    )


def watches_html(watches: Sequence[Watch]) -> list[str]:
    if not watches:
        return pack([_("You watch nothing yet.") + " " + _(WATCH_USAGE)])
    lines = [f"<b>{w.id}</b> {esc(short(w.text, 200))}" for w in watches]
    head = _("<b>Your watches</b> (/unwatch ID removes one)")
    return pack([head + "\n" + "\n".join(lines)])


def watching(watch: Watch) -> str:
    return _(
        "Watching <i>{query}</i> (watch <b>{id}</b>). New matching articles will be sent here; "
        "/unwatch {id} stops it."
    ).format(query=esc(short(watch.text, 200)), id=watch.id)


def unwatched(watch: Watch) -> str:
    return _("Stopped watch <b>{id}</b> <i>{query}</i>.").format(
        id=watch.id, query=esc(short(watch.text, 200))
    )


def timeline_html(
    timeline_id: int, query: str, entries: Sequence[Entry], page: int
) -> tuple[list[str], InlineKeyboardMarkup | None]:
    shown = esc(short(query, 200))
    if not entries:
        none = _("No articles in the archive tell the story of <i>{query}</i>.")
        return pack([none.format(query=shown)]), None
    pages = -(-len(entries) // TIMELINE_PAGE)
    page = min(max(page, 0), pages - 1)
    blocks = [
        _("<b>Timeline</b> <i>{query}</i> — page {page}/{pages}").format(
            query=shown, page=page + 1, pages=pages
        )
    ]
    for e in entries[page * TIMELINE_PAGE : (page + 1) * TIMELINE_PAGE]:
        day = e.published.isoformat() if e.published else _("undated")
        outlet = esc(short(e.source, META_CHARS)) or "—"
        blocks.append(
            f"<b>{esc(day)}</b> · {outlet}\n{link(e.title, e.url)}\n"
            f"<blockquote>[{e.n}] {esc(short_quote(e.quote))}</blockquote>"
        )
    row = []
    if page > 0:
        row.append(
            InlineKeyboardButton(
                _("◀ Earlier"), callback_data=callbacks.timeline(timeline_id, page - 1)
            )
        )
    if page < pages - 1:
        row.append(
            InlineKeyboardButton(
                _("Later ▶"), callback_data=callbacks.timeline(timeline_id, page + 1)
            )
        )
    return pack(blocks), InlineKeyboardMarkup([row]) if row else None


def digest_html(matches: Sequence[Match]) -> list[str]:
    blocks = ["<b>{}</b>".format(_("Your daily digest"))]
    current = None
    for m in matches:
        if m.watch.id != current:
            current = m.watch.id
            blocks.append(
                _("<b>Watch {id}</b> <i>{query}</i>").format(
                    id=m.watch.id, query=esc(short(m.watch.text, 100))
                )
            )
        blocks.append(
            f"• {link(m.title, m.url)}{meta_html(m.source, m.published)}\n"
            f"<blockquote>{esc(short_quote(m.quote))}</blockquote>"
        )
    return pack(blocks)


def digest_set(hhmm: str, zone: str) -> str:
    return _("Your digest comes daily at <b>{time}</b> ({zone}), when a watch matched.").format(
        time=esc(hhmm), zone=esc(zone)
    )


DIGEST_OFF = N_("Your daily digest is off.")
