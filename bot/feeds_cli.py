"""`newsdesk feeds …`: add, list, remove and poll the feeds (index/feeds.db). Every change is
written to the audit log, with who ran it."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from bot.config import Settings
from bot.journal import Journal
from bot.models import Article, IngestReport

if TYPE_CHECKING:  # imported where used: `newsdesk ask` never loads the feed machinery
    from bot.desk import Desk
    from bot.feeds import Feed, FeedStore, Poller, PollResult

app = typer.Typer(
    help="Feeds (RSS, Atom, news sitemaps) polled into the archive.", no_args_is_help=True
)


@contextmanager
def open_feeds(settings: Settings) -> Iterator[FeedStore]:
    from bot.feeds import FeedStore

    feeds = FeedStore(settings.index_dir)
    try:
        yield feeds
    finally:
        feeds.close()


def audit(settings: Settings, action: str, target: str, result: str) -> None:
    journal = Journal(settings.index_dir / "feedback.db", keep_text=settings.journal_text)
    try:
        journal.audit(0, f"cli:{getpass.getuser()}", action, target, result)
    finally:
        journal.close()


def make_poller(desk: Desk, feeds: FeedStore) -> Poller:
    from bot.feeds import Poller
    from bot.fetch import Fetcher

    s = desk.settings
    fetcher = Fetcher(s.fetch_allowed_networks, s.fetch_timeout, s.max_file_bytes)
    interval = s.feed_poll_minutes * 60
    return Poller(feeds, fetcher, desk.store, desk.corpus, s.feed_max_items, interval)


def poll_now(desk: Desk, feed_id: int | None) -> list[PollResult]:
    """Poll one feed or all of them now (backoff ignored), by the caller holding the writer."""
    from bot.feeds import poll_feeds

    def write(article: Article) -> IngestReport:
        return desk.ingestor.ingest_articles([article])

    with open_feeds(desk.settings) as feeds:
        chosen = [feeds.get(feed_id)] if feed_id is not None else feeds.all()
        results = poll_feeds(make_poller(desk, feeds), chosen, write)
    for result in results:
        if result.added or result.updated or result.error:
            audit(desk.settings, "feeds-poll", result.feed.url, result.line)
    return results


def result_lines(results: list[PollResult]) -> list[tuple[str, bool]]:
    """(line, to stderr) per feed and per failed item; an empty list says so."""
    if not results:
        return [("no feeds: add one with `newsdesk feeds add URL`", False)]
    lines: list[tuple[str, bool]] = []
    for result in results:
        lines.append((f"{result.line}  {result.feed.url}", bool(result.error)))
        lines += [(f"  failed {link}: {reason}", True) for link, reason in result.failed]
    return lines


def feed_line(feed: Feed) -> str:
    from bot.feeds import when

    error = f"\n    last error: {feed.last_error}" if feed.last_error else ""
    return (
        f"{feed.id:3}  {feed.state:12}  last poll {when(feed.last_poll)}, last new item "
        f"{when(feed.last_new)}  {feed.outlet or '-'}\n     {feed.url}{error}"
    )


@app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="The feed's http(s) URL (RSS, Atom or sitemap).")],
    source: Annotated[
        str, typer.Option("--source", help="The outlet of its articles (default: feed title).")
    ] = "",
) -> None:
    """Add a feed; its items are fetched at the next poll."""
    settings = Settings()
    with open_feeds(settings) as feeds:
        feed = feeds.add(url, source)
    audit(settings, "feeds-add", feed.url, f"added feed {feed.id}")
    typer.echo(f"added feed {feed.id}  {feed.url}")


@app.command("list")
def list_feeds() -> None:
    """The feeds with their state, last poll, last new item and last error."""
    with open_feeds(Settings()) as feeds:
        rows = feeds.all()
    for feed in rows:
        typer.echo(feed_line(feed))
    typer.echo(f"{len(rows)} feeds")


@app.command("remove")
def remove(
    feed_id: Annotated[int, typer.Argument(help="The feed's id (see `feeds list`).")],
) -> None:
    """Stop polling a feed (its articles stay in the archive)."""
    settings = Settings()
    with open_feeds(settings) as feeds:
        feed = feeds.remove(feed_id)
    audit(settings, "feeds-remove", feed.url, f"removed feed {feed.id}")
    typer.echo(f"removed feed {feed.id}  {feed.url}")


@app.command("poll")
def poll(
    feed_id: Annotated[int | None, typer.Argument(help="Only this feed (default: all).")] = None,
) -> None:
    """Poll now: prints added / unchanged / failed per feed; exit 1 if a feed failed."""
    from bot.cli import _desk, _finish, _say, _writer
    from bot.handoff import Outcome, hand_off

    desk = _desk()
    with _writer(desk, "feeds poll") as bot:
        if bot:
            note = {"command": "feeds-poll", "id": feed_id}
            return _finish(hand_off(desk, bot, note, _say))
        desk.ingestor.repair()  # finish an interrupted ingest first, as `ingest` does
        results = poll_now(desk, feed_id)
    _finish(Outcome(result_lines(results), int(any(r.error for r in results))))
