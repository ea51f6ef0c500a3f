"""Feeds, watches, timelines and digests through the real bot and the fake Telegram server."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from botkit import JOURNALISTS, buttons, reply_to, running_bot, services_of
from conftest import MakeDesk, run_cli
from fake_telegram import FakeTelegram
from feedkit import Site, page, rss, serve

from bot.models import Article
from bot.watches import Match, Watch, WatchMatcher, WatchStore, check_new

on_loop = pytest.mark.asyncio(loop_scope="session")
ADMIN, READER, OTHER = 7, JOURNALISTS[0], JOURNALISTS[1]
LOCAL = ["127.0.0.0/8"]
FERRY = (
    "Ferry fares cut for island commuters",
    [
        "The Port Elmsley ferry company cut fares for island commuters by a third on Monday, "
        "after a year of protests over the cost of the crossing.",
        "A monthly pass now costs 40 dollars instead of 60, the company's director Maren "
        "Solberg said, and children under twelve travel free from April.",
    ],
)
ZOO = (
    "Zoo welcomes red panda twins",
    [
        "Two red panda cubs named Miso and Tofu were born at Elmsley Zoo in May, the zoo's "
        "keepers said on Tuesday, the first such births in the region.",
        "The cubs will stay with their mother behind the scenes until the autumn, when "
        "visitors can see them in the new forest enclosure.",
    ],
)


@pytest_asyncio.fixture(loop_scope="session")
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
def site() -> Iterator[Site]:
    with serve() as running:
        yield running


def pushes(tg: FakeTelegram, chat: int, words: str = "New for your watch") -> list[dict[str, Any]]:
    return [e for e in tg.sent if e["chat_id"] == chat and words in e["text"]]


async def until(condition: Any, timeout: float = 60) -> None:
    """Wait for an explicit condition (a poll counted by the web server, a row in a store)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def article(title: str, paragraphs: list[str], day: str, url: str = "") -> Article:
    return Article(
        title=title,
        text="\n\n".join(paragraphs),
        source="Elmsley Post",
        published=dt.date.fromisoformat(day),
        url=url,
    )


STEPS = [
    ("2024-01-10", "Harbour bridge cracks found", "Inspectors found cracks in the Harbour"),
    ("2024-03-02", "Harbour bridge closed", "The city closed the Harbour"),
    ("2024-05-20", "Harbour bridge repair contract", "A repair contract for the Harbour"),
    (
        "2024-08-14",
        "Harbour bridge cables replaced",
        "Engineers replaced cables on the Harbour",
    ),
    (
        "2024-11-01",
        "Harbour bridge deck resurfaced",
        "Crews resurfaced the deck of the Harbour",
    ),
    ("2025-02-03", "Harbour bridge load tests", "Load tests were run on the Harbour"),
    ("2025-03-14", "Harbour bridge reopens", "Traffic returned to the Harbour"),
]


def bridge_story() -> list[Article]:
    return [
        article(
            title,
            [
                f"{lead} Bridge in Port Elmsley, the city's transport department said on the "
                "day, in the latest step of the long repair of the harbour bridge.",
                "The Harbour Bridge carries forty thousand vehicles a day between the two "
                "halves of the city and had been closed to traffic for safety reasons.",
            ],
            day,
        )
        for day, title, lead in reversed(STEPS)  # indexed newest first: order is not luck
    ]


@on_loop
async def test_admin_adds_a_feed_the_jobqueue_polls_and_a_watch_gets_exactly_one_push(
    tg: FakeTelegram, make_desk: MakeDesk, site: Site
) -> None:
    minutes = 0.02  # the JobQueue polls every 1.2 s
    desk = make_desk(fetch_allowed_networks=LOCAL, feed_poll_minutes=minutes)
    ferry_url = site.put("/news/ferry.html", page(FERRY[0], FERRY[1], "Page Outlet"))
    site.put("/news/zoo.html", page(ZOO[0], ZOO[1], "Page Outlet"))
    items = [
        {"guid": f"urn:{k}", "link": site.url(f"/news/{k}.html"), "title": t}
        for k, t in (("ferry", FERRY[0]), ("zoo", ZOO[0]))
    ]
    feed_url = site.put("/rss.xml", rss("Harbour Herald", items))
    overrides = {"admins": [ADMIN], "feed_poll_minutes": minutes, "inbox_interval": 0.5}
    async with running_bot(tg, desk, **overrides) as app:
        w = tg.send_text(READER, "/watch ferry fares for island commuters")
        assert "Watching" in (await tg.wait_for(reply_to(w)))["text"]
        kept = (await tg.wait_for(reply_to(tg.send_text(READER, "/privacy"))))["text"]
        assert "You have 1 watches" in kept  # what a reporter follows is held about them
        refused = tg.send_text(READER, f"/feeds add {feed_url}")
        assert "Only admins" in (await tg.wait_for(reply_to(refused)))["text"]
        added = tg.send_text(ADMIN, f"/feeds add {feed_url} Elmsley Post")
        assert "Added feed 1" in (await tg.wait_for(reply_to(added)))["text"]

        push = await tg.wait_for(lambda e: e["chat_id"] == READER and "New for" in e["text"])
        await until(lambda: site.hits["/rss.xml"] >= 3)  # two more polls after the first
        await until(lambda: len(tg.sent) and not app.update_queue.qsize())

        assert len(pushes(tg, READER)) == 1  # the ferry story, not the zoo
        assert FERRY[0] in push["text"] and "Elmsley Post" in push["text"]
        assert f'href="{ferry_url}"' in push["html"] and "<blockquote>" in push["html"]
        assert any(s in push["text"] for s in FERRY[1][0].split(". "))  # a verbatim sentence
        assert sorted(r.title for r in desk.store.articles()) == sorted([FERRY[0], ZOO[0]])
        assert site.hits["/news/ferry.html"] == 1  # repeated polls fetch and add nothing again

        in_group = tg.send_text(ADMIN, "/feeds", chat_id=-500, chat_type="supergroup")
        said = (await tg.wait_for(reply_to(in_group)))["text"]
        assert "private chat" in said and feed_url not in said and "Elmsley" not in said
        listing = tg.send_text(ADMIN, "/feeds")
        shown = await tg.wait_for(reply_to(listing))
        assert "Elmsley Post" in shown["text"] and "ok" in shown["text"]
        remove = buttons(shown)["Remove 1"]
        forged = tg.press_button(READER, shown["message_id"], remove, chat_id=ADMIN, forged=True)
        assert "Only admins" in (await tg.wait_answered(forged)).get("text", "")
        tg.press_button(ADMIN, shown["message_id"], remove)
        await tg.wait_for(lambda e: e["chat_id"] == ADMIN and "Removed feed 1" in e["text"])
        actions = [e.action for e in services_of(app).journal.audit_log(50)]
        assert {"feeds-add", "feeds-poll", "feeds-remove"} <= set(actions)


@on_loop
async def test_timeline_in_time_order_pages_with_buttons(
    tg: FakeTelegram, make_desk: MakeDesk
) -> None:
    desk = make_desk()
    arts = bridge_story()
    desk.ingestor.ingest_articles(arts)
    async with running_bot(tg, desk):
        msg = tg.send_text(READER, "/timeline harbour bridge repairs")
        first = await tg.wait_for(reply_to(msg))
        assert "page 1/2" in first["text"]
        days = [d for d, _, _ in STEPS]
        shown = [d for d in days if d in first["text"]]
        assert shown == days[:5]  # oldest first, five a page
        assert "[1]" in first["text"] and "<blockquote>" in first["html"]
        later = buttons(first)["Later ▶"]
        forged = tg.press_button(READER, first["message_id"], "timeline:99999:1", forged=True)
        assert "no longer available" in (await tg.wait_answered(forged)).get("text", "")
        tg.press_button(READER, first["message_id"], later)
        second = await tg.wait_for(
            lambda e: e["message_id"] == first["message_id"] and "page 2/2" in e["text"]
        )
        assert [d for d in days if d in second["text"]] == days[5:]
        assert "[7]" in second["text"] and "◀ Earlier" in buttons(second)


@on_loop
async def test_watch_pushes_for_any_source_and_the_digest_arrives_at_its_time(
    tg: FakeTelegram, make_desk: MakeDesk
) -> None:
    desk = make_desk()
    desk.ingestor.ingest_articles([article(*ZOO, "2025-05-01")])  # there before: never pushed
    async with running_bot(tg, desk, inbox_interval=0.3) as app:
        svc = services_of(app)
        w = tg.send_text(READER, "/watch ferry fares island commuters")
        await tg.wait_for(reply_to(w))
        slot = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        d = tg.send_text(READER, f"/digest {slot:%H:%M}")
        assert "daily at" in (await tg.wait_for(reply_to(d)))["text"]

        def upload() -> None:  # as an admin's upload does, on the writer
            with desk.write_lock:
                desk.ingestor.ingest_articles([article(*FERRY, "2025-06-02", "https://e.x/f")])

        await asyncio.get_running_loop().run_in_executor(svc.writer, upload)
        await tg.wait_for(lambda e: e["chat_id"] == READER and "New for" in e["text"])
        assert not pushes(tg, READER, "daily digest")
        assert svc.watches is not None
        real = svc.watches.clock
        svc.watches.clock = lambda: real() + 120  # the digest's minute has come

        digest = await tg.wait_for(lambda e: e["chat_id"] == READER and "daily digest" in e["text"])
        assert FERRY[0] in digest["text"] and ZOO[0] not in digest["text"]
        assert "Watch 1" in digest["text"]
        await until(lambda: svc.watches is not None and svc.watches.digests()[0][3] > real())
        assert len(pushes(tg, READER, "daily digest")) == 1  # once a day, not every check


def test_hourly_limit_holds_matches_for_the_digest_and_the_next_push_counts_them(
    tmp_path: Any,
) -> None:
    now = [1_000_000.0]
    store = WatchStore(tmp_path, clock=lambda: now[0])
    watch = store.add(READER, READER, "ferry fares")
    matches = [Match(watch, f"{i:016x}", f"t{i}", "s", None, "", "q") for i in range(5)]

    pushed = [store.record(m, limit=2) for m in matches[:4]]

    assert [p is not None for p in pushed] == [True, True, False, False]
    assert store.record(matches[0], limit=2) is None  # one push per match, ever
    now[0] += 3601
    fifth = store.record(matches[4], limit=2)
    assert fifth is not None and fifth.held == 2  # "2 more matches waited for your digest"
    assert len(store.digest_matches(READER, 0)) == 5


def test_a_user_no_longer_allowed_gets_nothing_and_the_watch_is_dropped(
    make_desk: MakeDesk,
) -> None:
    desk = make_desk()
    store = WatchStore(desk.settings.index_dir)
    store.begin(desk.store)
    store.add(READER, READER, "ferry fares island commuters")
    kept = store.add(OTHER, OTHER, "ferry fares island commuters")
    desk.ingestor.ingest_articles([article(*FERRY, "2025-06-02")])
    matcher = WatchMatcher(desk.store, desk.embedder, desk.settings.min_relevance)

    found, dropped = check_new(store, matcher, desk.store, lambda w: w.user_id == OTHER, limit=5)

    assert [m.watch.user_id for m in found] == [OTHER]
    assert [w.user_id for w in dropped] == [READER]
    assert store.all() == [kept]


def test_watch_commands_refuse_bad_input(tmp_path: Any) -> None:
    from bot.errors import InputError, NotFound

    store = WatchStore(tmp_path)
    with pytest.raises(InputError, match="since:"):
        store.add(READER, READER, "ferry since:yesterday")
    with pytest.raises(InputError, match="say what to watch"):
        store.add(READER, READER, "source:Reuters")
    mine = store.add(READER, READER, "ferry")
    with pytest.raises(NotFound):
        store.remove(OTHER, mine.id)  # another user's watch is not theirs to remove
    assert store.all() == [Watch(mine.id, READER, READER, "ferry")]


def test_cli_timeline(
    make_desk: MakeDesk, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    desk = make_desk()
    desk.ingestor.ingest_articles(bridge_story())
    monkeypatch.setenv("NEWSDESK_CORPUS_DIR", str(desk.settings.corpus_dir))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(desk.settings.index_dir))

    code, out, _ = run_cli(["timeline", "harbour bridge repairs", "--since", "2024-05-01"], capsys)

    assert code == 0
    days = [d for d, _, _ in STEPS if d >= "2024-05-01"]
    assert [line[:10] for line in out.splitlines() if not line.startswith(" ")] == days
    assert "   [1] " in out
    code, out, _ = run_cli(["timeline", "harbour bridge", "--json"], capsys)
    assert [e["n"] for e in json.loads(out)] == list(range(1, 8))


def test_forget_deletes_a_users_watches_matches_and_digest(tmp_path: Any) -> None:
    store = WatchStore(tmp_path)
    mine = store.add(READER, READER, "ferry fares")
    store.add(OTHER, OTHER, "zoo")
    store.record(Match(mine, "0" * 16, "t", "s", None, "", "q"), limit=5)
    store.set_digest(READER, READER, "07:30")

    assert store.forget(READER) == 3

    assert [w.user_id for w in store.all()] == [OTHER]
    assert store.digests() == [] and store.digest_matches(READER, 0) == []


def test_an_article_a_long_batch_finishes_after_a_check_is_still_news(
    make_desk: MakeDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Watches read only articles past the last check's horizon. An article that began indexing
    # early in a long batch, and became ready after a check that saw a later article, must not
    # fall behind that horizon; an unchanged article indexed again is not news.
    desk = make_desk()
    store = WatchStore(desk.settings.index_dir)
    clock = iter(["2026-01-01T09:00:00+00:00", "2026-01-01T09:10:00+00:00"])
    monkeypatch.setattr("bot.store._now", lambda: next(clock))
    store.begin(desk.store)
    slow = article(*ZOO, "2025-06-01")
    desk.store.begin_article(slow, "hash-of-zoo")  # 09:00, still 'indexing'
    desk.ingestor.ingest_articles([article(*FERRY, "2025-06-02")])  # 09:10, ready

    assert [r.title for r in store.new_articles(desk.store)] == [FERRY[0]]
    desk.store.mark([slow.id], "ready")
    assert [r.title for r in store.new_articles(desk.store)] == [ZOO[0]]
    assert store.new_articles(desk.store) == []

    monkeypatch.setattr("bot.store._now", lambda: "2026-01-01T09:20:00+00:00")
    desk.store.begin_article(slow, "hash-of-zoo")  # a reindex: same text, new stamp
    desk.store.mark([slow.id], "ready")
    assert store.new_articles(desk.store) == []


@on_loop
async def test_a_watch_job_that_keeps_failing_logs_its_traceback_once(
    tg: FakeTelegram,
    make_desk: MakeDesk,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The watch job runs every NEWSDESK_INBOX_INTERVAL: on a full disk it fails each time,
    and a traceback each time would fill the log (and the disk) faster. The bot answers on."""
    from bot import watch_bot

    runs = 0
    failed_often = asyncio.Event()

    async def full_disk(app: Any) -> int:
        nonlocal runs
        runs += 1
        if runs >= 10:
            failed_often.set()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(watch_bot, "check_watches", full_disk)
    with caplog.at_level(logging.DEBUG, logger="bot.app"):
        async with running_bot(tg, make_desk(), inbox_interval=0.02):
            await asyncio.wait_for(failed_often.wait(), 60)
            answer = await tg.wait_for(reply_to(tg.send_text(READER, "/help")))
            assert "/watch" in answer["text"]
    logged = [r for r in caplog.records if r.name == "bot.app" and r.levelno >= logging.ERROR]
    assert len(logged) == 1 and "No space left" in str(logged[0].exc_info[1])  # type: ignore[index]
    again = [r for r in caplog.records if r.name == "bot.app" and "again" in r.getMessage()]
    assert len(again) >= 8
