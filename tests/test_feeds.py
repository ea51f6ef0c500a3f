"""Feeds: RSS, Atom and news sitemaps polled from a local web site into the archive."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MakeDesk, run_cli
from feedkit import Site, atom, news_sitemap, page, rss, serve, sitemap_index
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.desk import Desk
from bot.errors import InputError
from bot.feed_parse import FeedError, parse_feed
from bot.feeds import DAY, FeedStore, Poller
from bot.feeds_cli import make_poller, poll_now
from bot.fetch import Fetcher
from bot.journal import Journal
from bot.models import Article, IngestReport

LOCAL = ["127.0.0.0/8"]
STORIES = {
    "ferry": (
        "Ferry fares cut for island commuters",
        [
            "The Port Elmsley ferry company cut fares for island commuters by a third on "
            "Monday, after a year of protests over the cost of the crossing.",
            "A monthly pass now costs 40 dollars instead of 60, the company's director Maren "
            "Solberg said, and children under twelve travel free from April.",
        ],
    ),
    "library": (
        "Library opens on Quay Street",
        [
            "The new city library on Quay Street opened on Sunday with 120,000 books and a "
            "rooftop reading room, the chief librarian Ona Virtanen said.",
            "More than four thousand visitors came on the first day, and the library plans "
            "evening opening hours for students during the exam season.",
        ],
    ),
    "wind": (
        "Wind farm approved off Kestrel Bay",
        [
            "Regulators approved a wind farm of 48 turbines off Kestrel Bay on Thursday, "
            "ending a planning dispute that lasted six years.",
            "The operator expects the turbines to power 210,000 homes from 2029, and fishing "
            "groups won a fund of nine million euros for lost grounds.",
        ],
    ),
}


def put_story(site: Site, key: str, canonical: str = "", outlet: str = "Page Outlet") -> str:
    title, paragraphs = STORIES[key]
    return site.put(f"/news/{key}.html", page(title, paragraphs, outlet, canonical=canonical))


def item(site: Site, key: str, date: str = "Fri, 14 Mar 2025 08:00:00 GMT") -> dict[str, str]:
    return {
        "guid": f"urn:{key}",
        "link": site.url(f"/news/{key}.html"),
        "title": STORIES[key][0],
        "date": date,
        "description": STORIES[key][1][0][:60],
    }


@pytest.fixture
def site() -> Iterator[Site]:
    with serve() as running:
        yield running


@pytest.fixture
def desk(make_desk: MakeDesk) -> Desk:
    return make_desk(fetch_allowed_networks=LOCAL, fetch_timeout=30.0)


def feed_with(desk: Desk, url: str, source: str = "") -> int:
    feeds = FeedStore(desk.settings.index_dir)
    try:
        return feeds.add(url, source).id
    finally:
        feeds.close()


def test_rss_items_become_answerable_articles_with_feed_metadata(desk: Desk, site: Site) -> None:
    for key in ("ferry", "library"):
        put_story(site, key)
    feed_url = site.put(
        "/rss.xml", rss("Harbour Herald", [item(site, "ferry"), item(site, "library")])
    )
    feed_with(desk, feed_url, source="Elmsley Post")

    (result,) = poll_now(desk, None)

    assert (len(result.added), result.unchanged, result.failed, result.error) == (2, 0, [], "")
    rows = {r.title: r for r in desk.store.articles()}
    ferry = rows["Ferry fares cut for island commuters"]
    assert ferry.source == "Elmsley Post"  # --source wins over the page's own site name
    assert ferry.published is not None and ferry.published.isoformat() == "2025-03-14"
    assert ferry.url == site.url("/news/ferry.html")
    answer = desk.ask("How much does a monthly ferry pass cost now?")
    assert not answer.abstained
    assert any("40 dollars" in c.quote and c.source == "Elmsley Post" for c in answer.citations)


def test_repeated_polls_add_nothing_twice_and_an_unchanged_feed_costs_one_304(
    desk: Desk, site: Site
) -> None:
    put_story(site, "ferry")
    feed_url = site.put("/rss.xml", rss("Harbour Herald", [item(site, "ferry")]), etag='"v1"')
    feed_with(desk, feed_url)
    first = poll_now(desk, None)[0]
    assert len(first.added) == 1 and first.feed.outlet == ""
    assert desk.store.articles()[0].source == "Harbour Herald"  # no --source: the feed title

    second = poll_now(desk, None)[0]

    assert second.not_modified and not second.added
    assert site.not_modified["/rss.xml"] == 1
    assert site.hits["/news/ferry.html"] == 1  # the page was not fetched again
    # A feed whose server ignores ETags is read again, and its known items add nothing.
    site.pages["/rss.xml"].etag = ""
    third = poll_now(desk, None)[0]
    assert (len(third.added), third.unchanged) == (0, 1)
    assert len(desk.store.articles()) == 1


def test_an_item_published_between_polls_is_added_at_the_next(desk: Desk, site: Site) -> None:
    put_story(site, "ferry")
    site.put("/rss.xml", rss("Herald", [item(site, "ferry")]), etag='"1"')
    feed_with(desk, site.url("/rss.xml"))
    poll_now(desk, None)
    put_story(site, "wind")
    site.put("/rss.xml", rss("Herald", [item(site, "wind"), item(site, "ferry")]), etag='"2"')

    result = poll_now(desk, None)[0]

    assert [a.title for a in result.added] == ["Wind farm approved off Kestrel Bay"]
    assert result.unchanged == 1


def test_atom_feed_and_news_sitemap_index(desk: Desk, site: Site) -> None:
    for key in STORIES:
        put_story(site, key)
    entries = [
        {
            "id": "tag:x,2025:ferry",
            "title": STORIES["ferry"][0],
            "link": site.url("/news/ferry.html"),
            "updated": "2025-02-01T10:00:00Z",
        }
    ]
    feed_with(desk, site.put("/atom.xml", atom("Atom Times", entries), "application/atom+xml"))
    child = site.put(
        "/news-sitemap.xml",
        news_sitemap(
            "Sitemap Daily",
            [
                (site.url("/news/library.html"), STORIES["library"][0], "2025-04-02T09:00:00Z"),
                (site.url("/news/wind.html"), STORIES["wind"][0], "2025-04-03"),
            ],
        ),
        "application/xml",
    )
    feed_with(desk, site.put("/sitemap.xml", sitemap_index([child]), "application/xml"))

    results = poll_now(desk, None)

    assert [len(r.added) for r in results] == [1, 2]
    rows = {r.title: r for r in desk.store.articles()}
    assert rows[STORIES["ferry"][0]].source == "Atom Times"
    assert str(rows[STORIES["ferry"][0]].published) == "2025-02-01"
    assert rows[STORIES["library"][0]].source == "Sitemap Daily"
    assert str(rows[STORIES["library"][0]].published) == "2025-04-02"


def test_unfetchable_page_falls_back_to_full_content_else_fails_and_is_retried(
    desk: Desk, site: Site
) -> None:
    full = "".join(f"<p>{p}</p>" for p in STORIES["wind"][1])
    wind = item(site, "wind") | {"content": full}  # page missing, full text in the feed
    ferry = item(site, "ferry")  # page missing, only a summary in the feed
    site.put("/rss.xml", rss("Herald", [wind, ferry]))
    feed_with(desk, site.url("/rss.xml"))

    result = poll_now(desk, None)[0]

    assert [a.title for a in result.added] == [STORIES["wind"][0]]
    ((link, reason),) = result.failed
    assert link.endswith("/news/ferry.html") and "404" in reason and "no full text" in reason
    assert "210,000 homes" in desk.store.articles()[0].title + str(
        desk.corpus.read(Path(desk.store.articles()[0].path)).text
    )
    put_story(site, "ferry")  # the page is back: the failed item is retried and added

    retry = poll_now(desk, None)[0]

    assert [a.title for a in retry.added] == [STORIES["ferry"][0]] and not retry.failed


def test_dedupe_by_guid_url_and_text_across_feeds_and_uploads(desk: Desk, site: Site) -> None:
    for key in STORIES:
        put_story(site, key)
    # An admin added the library page by hand earlier.
    assert len(desk.ingestor.ingest([site.url("/news/library.html")]).added) == 1
    # The wind story again at another address (a mirror): same text, other URL.
    title, paragraphs = STORIES["wind"]
    site.put("/mirror/wind.html", page(title, paragraphs, "Mirror"))
    mirror = item(site, "wind") | {"guid": "urn:mirror", "link": site.url("/mirror/wind.html")}
    site.put("/a.xml", rss("A", [item(site, "ferry"), item(site, "wind")]))
    site.put("/b.xml", rss("B", [item(site, "ferry"), item(site, "library"), mirror]))
    feed_with(desk, site.url("/a.xml"))
    feed_with(desk, site.url("/b.xml"))

    first, second = poll_now(desk, None)

    assert len(first.added) == 2
    assert (len(second.added), second.unchanged, second.failed) == (0, 3, [])
    assert sorted(r.title for r in desk.store.articles()) == sorted(t for t, _ in STORIES.values())


def test_a_removed_article_is_no_duplicate_and_comes_back_from_its_feed(
    desk: Desk, site: Site
) -> None:
    put_story(site, "library")
    (added,) = desk.ingestor.ingest([site.url("/news/library.html")]).added
    site.put("/rss.xml", rss("Herald", [item(site, "library")]))
    feed_with(desk, site.url("/rss.xml"))
    assert poll_now(desk, None)[0].unchanged == 1  # the feed's item is that upload
    desk.ingestor.remove(added.id)
    site.put("/b.xml", rss("B", [item(site, "library") | {"guid": "urn:again"}]))
    feed_with(desk, site.url("/b.xml"))

    results = poll_now(desk, None)

    assert [a.title for r in results for a in r.added] == [STORIES["library"][0]]


def test_corrected_article_updates_the_old_one(desk: Desk, site: Site) -> None:
    put_story(site, "ferry")
    site.put("/rss.xml", rss("Herald", [item(site, "ferry")]))
    feed_with(desk, site.url("/rss.xml"))
    poll_now(desk, None)
    title, paragraphs = STORIES["ferry"]
    fixed = [paragraphs[0], paragraphs[1].replace("40 dollars", "45 dollars")]
    site.put("/news/ferry.html", page(title, fixed, "Page Outlet"))
    later = item(site, "ferry", date="Sat, 15 Mar 2025 09:00:00 GMT")
    site.put("/rss.xml", rss("Herald", [later]))

    result = poll_now(desk, None)[0]

    assert len(result.updated) == 1 and not result.added
    (row,) = desk.store.articles()
    assert "45 dollars" in desk.corpus.read(Path(row.path)).text
    assert str(row.published) == "2025-03-15"


def test_a_poll_takes_at_most_feed_max_items_and_the_rest_follow(
    make_desk: MakeDesk, site: Site
) -> None:
    desk = make_desk(fetch_allowed_networks=LOCAL, feed_max_items=2)
    for key in STORIES:
        put_story(site, key)
    site.put("/rss.xml", rss("Herald", [item(site, k) for k in STORIES]))
    feed_with(desk, site.url("/rss.xml"))

    first = poll_now(desk, None)[0]
    second = poll_now(desk, None)[0]

    assert (len(first.added), first.waiting) == (2, 1)
    assert (len(second.added), second.unchanged, second.waiting) == (1, 2, 0)


def test_failing_feed_backs_off_and_admins_are_told_once_after_a_day(
    desk: Desk, site: Site
) -> None:
    now = [1_000_000.0]
    feeds = FeedStore(desk.settings.index_dir, clock=lambda: now[0])
    feed = feeds.add(site.put("/rss.xml", "oops", status=500))
    fetcher = Fetcher(LOCAL, timeout=30)
    poller = Poller(feeds, fetcher, desk.store, desk.corpus, max_items=50, interval=60)

    def write(article: Article) -> IngestReport:
        raise AssertionError("nothing to write")

    alerts = []
    for _ in range(30):
        due = feeds.due()
        if due:
            result = poller.poll(due[0], write)
            assert "HTTP 500" in result.error
            alerts.append(result.alert)
        now[0] += 3600
    # Backed off: 60 s, 120 s, … up to a day between tries, not one try per hour.
    assert 4 <= len(alerts) <= 14
    assert alerts.count(True) == 1
    (row,) = feeds.all()
    assert row.failures == len(alerts) and row.last_error.startswith(site.url("/rss.xml"))
    site.put("/rss.xml", rss("Herald", []))
    now[0] += DAY
    assert not poller.poll(feeds.due()[0], write).error
    assert feeds.get(feed.id).failures == 0 and feeds.due()


def test_feed_on_a_disallowed_address_is_refused(make_desk: MakeDesk, site: Site) -> None:
    desk = make_desk()  # loopback not allowed: the SSRF rules of /add apply
    put_story(site, "ferry")
    site.put("/rss.xml", rss("Herald", [item(site, "ferry")]))
    feed_with(desk, site.url("/rss.xml"))

    (result,) = poll_now(desk, None)

    assert "loopback" in result.error and not desk.store.articles()
    assert site.hits["/rss.xml"] == 0


def test_item_link_to_a_disallowed_address_fails_that_item(desk: Desk, site: Site) -> None:
    put_story(site, "ferry")
    meta = item(site, "wind") | {"link": "http://169.254.169.254/latest/meta-data/"}
    site.put("/rss.xml", rss("Herald", [item(site, "ferry"), meta]))
    feed_with(desk, site.url("/rss.xml"))

    (result,) = poll_now(desk, None)

    assert len(result.added) == 1
    ((link, reason),) = result.failed
    assert "169.254.169.254" in link and "metadata" in reason


def test_slow_feed_times_out_without_holding_up_the_others(make_desk: MakeDesk, site: Site) -> None:
    # The timeout leaves a loaded machine room for the fast feed; the slow one needs far more.
    desk = make_desk(fetch_allowed_networks=LOCAL, fetch_timeout=10.0)
    put_story(site, "ferry")
    site.put("/slow.xml", rss("Slow", []), delay=120)
    site.put("/rss.xml", rss("Herald", [item(site, "ferry")]))
    feed_with(desk, site.url("/slow.xml"))
    feed_with(desk, site.url("/rss.xml"))

    slow, fast = poll_now(desk, None)

    assert "timed out" in slow.error and len(fast.added) == 1


def test_feeds_survive_reindex(desk: Desk, site: Site) -> None:
    put_story(site, "ferry")
    site.put("/rss.xml", rss("Herald", [item(site, "ferry")]))
    feed_with(desk, site.url("/rss.xml"))
    poll_now(desk, None)

    desk.ingestor.reindex()

    assert poll_now(desk, None)[0].unchanged == 1
    assert len(desk.store.articles()) == 1


def test_bad_feed_urls_are_refused(desk: Desk) -> None:
    feeds = FeedStore(desk.settings.index_dir)
    for bad in ("ftp://x/feed", "javascript:alert(1)", "feed", "http://", "http://a b/"):
        with pytest.raises(InputError, match="not an http"):
            feeds.add(bad)
    feeds.add("https://example.org/rss")
    with pytest.raises(InputError, match="already feed 1"):
        feeds.add("https://example.org/rss")
    assert len(feeds.all()) == 1


def test_cli_add_list_poll_remove_audited(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    site: Site,
) -> None:
    monkeypatch.setenv("NEWSDESK_CORPUS_DIR", str(tmp_path / "corpus"))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("NEWSDESK_FETCH_ALLOWED_NETWORKS", "127.0.0.0/8")
    put_story(site, "ferry")
    good = site.put("/rss.xml", rss("Herald", [item(site, "ferry")]))
    bad = site.put("/gone.xml", "gone", status=410)

    assert run_cli(["feeds", "add", good, "--source", "Elmsley Post"], capsys)[:2] == (
        0,
        f"added feed 1  {good}\n",
    )
    assert run_cli(["feeds", "add", bad], capsys)[0] == 0
    code, out, err = run_cli(["feeds", "poll"], capsys)
    assert code == 1  # one feed failed
    assert "feed 1: 1 added, 0 unchanged, 0 failed" in out
    assert "feed 2: failed" in err and "410" in err
    assert run_cli(["feeds", "poll", "1"], capsys)[0] == 0
    code, out, _ = run_cli(["feeds", "list"], capsys)
    assert "Elmsley Post" in out and "failing (1x)" in out and "2 feeds" in out
    assert run_cli(["feeds", "remove", "2"], capsys)[0] == 0
    code, _, err = run_cli(["feeds", "remove", "2"], capsys)
    assert code == 1 and "no feed 2" in err and "Traceback" not in err
    code, _, err = run_cli(["feeds", "add", "file:///etc/passwd"], capsys)
    assert code == 1 and "not an http" in err
    journal = Journal(tmp_path / "index" / "feedback.db")
    actions = [(e.action, e.target) for e in journal.audit_log(20)]
    assert ("feeds-add", good) in actions and ("feeds-remove", bad) in actions
    assert ("feeds-poll", good) in actions


def test_make_poller_uses_the_settings(desk: Desk) -> None:
    feeds = FeedStore(desk.settings.index_dir)
    poller = make_poller(desk, feeds)
    assert poller.max_items == desk.settings.feed_max_items
    assert poller.interval == desk.settings.feed_poll_minutes * 60


XMLISH = st.sampled_from(
    [
        b"<rss version='2.0'><channel><item><link>http://a/b</link></item></channel></rss>",
        b"<urlset><url><loc>http://a/b</loc></url></urlset>",
        b"<sitemapindex><sitemap><loc>http://a/s.xml</loc></sitemap></sitemapindex>",
        b"<feed xmlns='http://www.w3.org/2005/Atom'><entry><link href='/x'/></entry></feed>",
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><urlset><url><loc>&e;</loc>',
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.binary(max_size=40),
    doc=XMLISH,
    cut=st.integers(0, 200),
    noise=st.binary(max_size=40),
)
def test_fuzzed_feeds_parse_or_fail_cleanly(
    prefix: bytes, doc: bytes, cut: int, noise: bytes
) -> None:
    for data in (prefix + doc, doc[:cut] + noise, noise, doc.replace(b"http://a", noise)):
        try:
            parsed = parse_feed(data, "http://example.org/feed")
        except FeedError:
            continue
        for entry in parsed.items:
            assert entry.link.startswith(("http://", "https://"))
            assert "/etc/passwd" not in entry.link
        assert all(s.startswith(("http://", "https://")) for s in parsed.sitemaps)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_fuzzed_text_as_feed_parses_or_fails_cleanly(text: str) -> None:
    for wrapped in (text, f"<rss version='2.0'><channel><title>{text}</title>", f"<urlset>{text}"):
        with contextlib.suppress(FeedError):
            parse_feed(wrapped.encode("utf-8", "surrogatepass"), "http://example.org/")


def test_a_poll_handed_to_the_running_bot_reports_like_the_cli(desk: Desk, site: Site) -> None:
    from bot.handoff import run_note

    put_story(site, "ferry")
    site.put("/rss.xml", rss("Herald", [item(site, "ferry")]))
    feed_with(desk, site.url("/rss.xml"))

    with desk.write_lock:  # as the bot's inbox runs it
        outcome = run_note(desk, {"command": "feeds-poll", "id": 1})

    assert outcome.code == 0
    assert outcome.lines[0][0].startswith("feed 1: 1 added, 0 unchanged, 0 failed")
    assert run_note(desk, {"command": "feeds-poll", "id": 9}).code == 1  # no feed 9
