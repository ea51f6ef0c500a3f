"""Admins grow and curate the corpus from Telegram; journalists' answers follow at once."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from botkit import JOURNALISTS, buttons, reply_to, running_bot, services_of
from conftest import MakeDesk
from documents import ARTICLE_HTML, docx_bytes, pdf_bytes
from fake_telegram import FakeTelegram

from bot.ingest import Ingestor

pytestmark = pytest.mark.asyncio(loop_scope="session")
ADMIN, READER = 7, JOURNALISTS[0]

UPLOADS = {
    "library.txt": (
        b"Library opens on Quay Street\nThe new city library on Quay Street opens on Sunday "
        b"with 120,000 books, the librarian Ona Virtanen said.",
        "Who is the librarian of the new library on Quay Street?",
        "Ona Virtanen",
    ),
    "ferry.md": (
        b"---\ntitle: Ferry strike ends\nsource: Port Herald\npublished: 2025-02-01\n---\n\n"
        b"Ferry workers in Port Elmsley ended a nine-day strike after a 6 percent pay deal.",
        "How long did the ferry strike in Port Elmsley last?",
        "nine-day",
    ),
    "bridge.html": (
        ARTICLE_HTML.encode(),
        "How many steel cables were replaced on the Harbour Bridge?",
        "312",
    ),
    "budget.pdf": (
        pdf_bytes(
            [
                "Council approves harbour budget",
                "The Port Elmsley council approved a budget of",
                "17 million dollars for harbour dredging on Tuesday.",
            ],
            "Council approves harbour budget",
        ),
        "How much is the harbour dredging budget approved by the council?",
        "17 million",
    ),
    "zoo.docx": (
        docx_bytes(
            "Zoo welcomes red panda twins",
            ["Two red panda cubs named Miso and Tofu were born at Elmsley Zoo in May."],
        ),
        "What are the names of the red panda cubs born at Elmsley Zoo?",
        "Miso",
    ),
    "wire.jsonl": (
        json.dumps(
            {
                "title": "Rail line electrified",
                "source": "Wire",
                "published": "2024-05-06",
                "text": "The northern rail line to Kestrel Bay now runs on electric trains "
                "after a 240 million euro upgrade.",
            }
        ).encode(),
        "How much did the Kestrel Bay rail upgrade cost?",
        "240 million",
    ),
}


@pytest_asyncio.fixture(loop_scope="session")
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


def to(chat: int, msg: dict, words: str):  # type: ignore[no-untyped-def]
    """Matches the bot's reply to `msg` (or a later edit of that reply) containing `words`."""
    return lambda e: (
        e["chat_id"] == chat
        and words in e["text"]
        and e["reply_to_message_id"] == msg["message_id"]
    )


async def test_admin_uploads_every_format_and_journalists_get_answers(
    tg: FakeTelegram, make_desk: MakeDesk
) -> None:
    desk = make_desk()
    async with running_bot(tg, desk, admins=[ADMIN]) as app:
        for name, (data, question, expected) in UPLOADS.items():
            start = len(tg.sent)
            up = tg.send_document(ADMIN, name, data)
            done = await tg.wait_for(to(ADMIN, up, "1 added"), start=start)
            assert " chunk, id " in done["text"] or " chunks, id " in done["text"], done["text"]
            q = tg.send_text(READER, question)
            reply = await tg.wait_for(reply_to(q))
            assert expected in reply["text"] and "Sources" in reply["text"], (name, reply["text"])
        # The same upload again changes nothing.
        start = len(tg.sent)
        again = tg.send_document(ADMIN, "library.txt", UPLOADS["library.txt"][0])
        await tg.wait_for(to(ADMIN, again, "0 added, 1 unchanged"), start=start)
        assert len(list(desk.corpus.paths())) == len(UPLOADS)
        log = services_of(app).journal.audit_log(20)
        assert [e.action for e in log].count("upload") == len(UPLOADS) + 1
        assert all(e.user_id == ADMIN for e in log)


async def test_caption_sets_metadata_and_bad_files_get_clear_replies(
    tg: FakeTelegram, make_desk: MakeDesk
) -> None:
    desk = make_desk()
    async with running_bot(tg, desk, admins=[ADMIN]):
        up = tg.send_document(
            ADMIN,
            "note.txt",
            b"Mayor resigns\nThe mayor of Elmsley resigned.",
            caption="source: Reuters\ndate: 2025-11-20\nurl: https://e.x/m",
        )
        await tg.wait_for(to(ADMIN, up, "1 added"))
        row = desk.store.articles()[0]
        assert (row.source, str(row.published), row.url) == (
            "Reuters",
            "2025-11-20",
            "https://e.x/m",
        )
        cases = {
            "broken.pdf": (b"%PDF-1.4 garbage", "failed: broken.pdf: "),
            "empty.txt": (b"   ", "Not done: empty.txt: file is empty"),
            "latin.txt": ("Caf\xe9".encode("latin-1"), "UTF-8"),
            "sheet.xlsx": (b"PK\x03\x04", "Not done: sheet.xlsx: unsupported"),
            "big.txt": (b"x" * (21 * 1024 * 1024), "Not done: big.txt: 22 MB"),
        }
        for name, (data, reason) in cases.items():
            msg = tg.send_document(ADMIN, name, data)
            reply = await tg.wait_for(lambda e, m=msg: reply_to(m)(e) and "…" not in e["text"])
            assert reason in reply["text"], (name, reply["text"])  # the reason, not an apology
            assert "Sorry" not in reply["text"] and "Traceback" not in reply["text"]
        bad_date = tg.send_document(ADMIN, "d.txt", b"T\nBody text.", caption="date: soon")
        await tg.wait_for(to(ADMIN, bad_date, "unreadable date"))
        assert len(desk.store.articles()) == 1 and len(list(desk.corpus.paths())) == 1
        q = tg.send_text(READER, "Who resigned in Elmsley?")
        assert "mayor" in (await tg.wait_for(reply_to(q)))["text"]


async def test_non_admins_are_refused_and_nothing_changes(
    tg: FakeTelegram, make_desk: MakeDesk
) -> None:
    desk = make_desk()
    async with running_bot(tg, desk, admins=[ADMIN]) as app:
        for msg in (
            tg.send_document(READER, "a.txt", b"Title\nSome body text here."),
            tg.send_text(READER, "/add Title\nSome pasted body."),
            tg.send_text(READER, "/remove abc"),
            tg.send_text(READER, "/stats"),
            tg.send_text(
                READER,
                "fwd text",
                forward_origin={
                    "type": "hidden_user",
                    "sender_user_name": "X",
                    "date": int(time.time()),
                },
            ),
        ):
            await tg.wait_for(to(READER, msg, "Only admins"))
        stranger = tg.send_document(999, "a.txt", b"Title\nBody.")
        await tg.wait_for(to(999, stranger, "999"))
        assert desk.store.articles() == [] and list(desk.corpus.paths()) == []
        refused = [
            e for e in services_of(app).journal.audit_log(20) if e.result.startswith("refused")
        ]
        assert len(refused) == 6  # five of the journalist's, and the stranger's upload
        assert (refused[0].user_id, refused[0].action, refused[0].target) == (
            999,
            "upload",
            "a.txt",
        )
        assert refused[0].result == "refused: not allowed"


async def test_add_text_forward_remove_and_listings(tg: FakeTelegram, make_desk: MakeDesk) -> None:
    desk = make_desk()
    async with running_bot(tg, desk, admins=[ADMIN]):
        add = tg.send_text(
            ADMIN,
            "/add Tunnel opens\nThe Kestrel tunnel opened to cyclists on "
            "Monday after a 3 year build.\nsource: City Desk\ndate: 2025-06-02",
        )
        await tg.wait_for(to(ADMIN, add, "1 added"))
        origin = {
            "type": "channel",
            "date": 1748000000,
            "message_id": 55,
            "chat": {
                "id": -100777,
                "type": "channel",
                "title": "Harbour Wire",
                "username": "harbourwire",
            },
        }
        fwd = tg.send_text(
            ADMIN,
            "Storm closes port\nA storm closed the port of Elmsley for two "
            "days, the harbour master said.",
            forward_origin=origin,
        )
        await tg.wait_for(to(ADMIN, fwd, "1 added"))
        rows = {r.title: r for r in desk.store.articles()}
        storm = rows["Storm closes port"]
        assert storm.source == "Harbour Wire" and storm.url == "https://t.me/harbourwire/55"
        assert str(storm.published) == "2025-05-23"
        assert rows["Tunnel opens"].source == "City Desk"
        docs = tg.send_text(ADMIN, "/docs")
        listing = await tg.wait_for(to(ADMIN, docs, "2 articles"))
        assert storm.id in listing["text"] and " chunk" in listing["text"]
        one = tg.send_text(ADMIN, f"/doc {storm.id[:8]}")
        assert "Harbour Wire" in (await tg.wait_for(to(ADMIN, one, "outlet")))["text"]
        stats = tg.send_text(ADMIN, "/stats")
        assert "articles: 2" in (await tg.wait_for(to(ADMIN, stats, "articles")))["text"]
        # Remove with confirmation; the same question then abstains.
        q = tg.send_text(READER, "How long was the port of Elmsley closed by the storm?")
        assert "two" in (await tg.wait_for(reply_to(q)))["text"]
        rm = tg.send_text(ADMIN, f"/remove {storm.id}")
        confirm = await tg.wait_for(to(ADMIN, rm, "Remove"))
        start = len(tg.sent)
        tg.press_button(ADMIN, confirm["message_id"], buttons(confirm)["Remove"])
        await tg.wait_for(lambda e: "Removed" in e["text"], start=start)
        assert [r.title for r in desk.store.articles()] == ["Tunnel opens"]
        assert len(list(desk.corpus.paths())) == 1
        q = tg.send_text(READER, "How long was the port of Elmsley closed by the storm?")
        after = await tg.wait_for(reply_to(q))
        assert "does not answer" in after["text"]
        audit = tg.send_text(ADMIN, "/audit")
        log = await tg.wait_for(to(ADMIN, audit, "Latest admin actions"))
        assert "remove" in log["text"] and "forward" in log["text"] and "add-text" in log["text"]


async def test_links_are_fetched_and_extracted(tg: FakeTelegram, make_desk: MakeDesk) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=ARTICLE_HTML, content_type="text/html")

    async def empty(request: web.Request) -> web.Response:
        return web.Response(text="", content_type="text/html")

    site = web.Application()
    site.router.add_get("/news/bridge", page)
    site.router.add_get("/empty", empty)
    runner = web.AppRunner(site)
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)
    await server.start()
    port = runner.addresses[0][1]
    desk = make_desk(fetch_allowed_networks=["127.0.0.1/32"])
    try:
        async with running_bot(tg, desk, admins=[ADMIN]):
            url = f"http://127.0.0.1:{port}/news/bridge"
            add = tg.send_text(ADMIN, f"/add {url}")
            await tg.wait_for(to(ADMIN, add, "1 added"))
            row = desk.store.articles()[0]
            assert (row.title, row.source, row.url) == (
                "Harbour bridge reopens after repairs",
                "The Coastal Gazette",
                url,
            )
            bare = tg.send_text(ADMIN, url)  # a message that is only a link
            await tg.wait_for(to(ADMIN, bare, "1 unchanged"))
            bad = tg.send_text(ADMIN, f"http://127.0.0.1:{port}/empty")
            await tg.wait_for(to(ADMIN, bad, "empty"))
            missing = tg.send_text(ADMIN, f"/add http://127.0.0.1:{port}/nothing-here")
            await tg.wait_for(to(ADMIN, missing, "404"))
            assert len(desk.store.articles()) == 1
    finally:
        await runner.cleanup()


async def test_big_upload_shows_progress_and_questions_still_get_answered(
    tg: FakeTelegram, make_desk: MakeDesk, seeded: object, tmp_path: Path
) -> None:
    desk = make_desk()
    lines = [
        json.dumps(
            {
                "title": f"Council meeting {i}",
                "published": "2024-01-01",
                "text": f"At meeting {i} the council discussed item {i} of the harbour plan, "
                f"including dredging, lighting and the ferry pier number {i}.",
            }
        )
        for i in range(1500)
    ]
    async with running_bot(tg, desk, admins=[ADMIN]):
        start = len(tg.sent)
        up = tg.send_document(ADMIN, "archive.jsonl", "\n".join(lines).encode())
        await tg.wait_for(lambda e: e["text"].startswith("Indexing…"), start=start, timeout=300)
        q = tg.send_text(READER, "What did the council discuss at meeting 3?")
        answer = await tg.wait_for(reply_to(q), timeout=300)
        # A guard, not a measurement: ~60 s quiet, several minutes on a loaded 2-core machine.
        final = await tg.wait_for(to(ADMIN, up, "1500 added"), start=start, timeout=1200)
        # The journalist was answered while the upload was still being indexed.
        assert tg.sent.index(answer) < tg.sent.index(final)
        progress = [e["text"] for e in tg.sent[start:] if e["text"].startswith("Indexing…")]
        assert progress and all("/1500" in p for p in progress)


class HeldIngestor:
    """The desk's real ingestor, whose article writes wait until the test releases them."""

    def __init__(self, inner: Ingestor) -> None:
        self.inner, self.release, self.started = inner, threading.Event(), threading.Event()

    def ingest_articles(self, *args: Any, **kwargs: Any) -> Any:
        self.started.set()
        assert self.release.wait(120), "the test never released the write"
        return self.inner.ingest_articles(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_slow_writes_never_starve_questions(tg: FakeTelegram, make_desk: MakeDesk) -> None:
    desk = make_desk()
    held = HeldIngestor(desk.ingestor)
    desk.__dict__["ingestor"] = held
    # More writes than the default executor has threads (min(32, cpus + 4)).
    writes = (os.cpu_count() or 1) + 6
    async with running_bot(tg, desk, admins=[ADMIN]):
        adds = [
            tg.send_text(ADMIN, f"/add Pier note {i}\nThe pier was painted blue, note {i}.")
            for i in range(writes)
        ]
        try:
            for add in adds:
                await tg.wait_for(to(ADMIN, add, "Adding"))
            for _ in range(3000):  # a write has started, and is held
                if held.started.is_set():
                    break
                await asyncio.sleep(0.01)
            assert held.started.is_set()
            q = tg.send_text(READER, "What colour was the pier painted?")
            reply = await tg.wait_for(reply_to(q), timeout=30)
            assert "Sources" in reply["text"] or "does not answer" in reply["text"]
            assert desk.store.articles() == []  # every write is still waiting
        finally:
            held.release.set()
        for add in adds:
            await tg.wait_for(to(ADMIN, add, "1 added"), timeout=120)
        assert len(desk.store.articles()) == writes
