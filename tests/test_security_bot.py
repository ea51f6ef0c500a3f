"""Attacks on the bot through Telegram, replayed against the real bot and the fake server.

Forged buttons, strangers' uploads, other chats' answers, junk payloads and filters: each is
refused with a short notice, audited where it is an admin action, stores nothing and logs no
traceback. Crashed admin actions say so where the admin is looking and are audited.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from botkit import JOURNALISTS, buttons, reply_to, running_bot, services_of, settled
from conftest import MakeDesk
from fake_telegram import FakeTelegram
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot import callbacks, render
from bot.conversation import FilterError, split_filters
from bot.desk import Desk
from bot.errors import InputError
from bot.models import Article

ASYNC = pytest.mark.asyncio(loop_scope="session")
ADMIN, ASKER, OTHER, STRANGER = 7, JOURNALISTS[20], JOURNALISTS[21], 999
GROUP = -2001
S400 = "Why would the EU buy Russian S-400 systems from Turkey?"


@pytest_asyncio.fixture(loop_scope="session")
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@ASYNC
async def test_forged_and_foreign_buttons_are_refused_and_store_nothing(
    tg: FakeTelegram, seeded: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_bot(tg, seeded, admins=[ADMIN], allowed_chats=[GROUP]) as app:
        journal = services_of(app).journal
        question = tg.send_text(ASKER, S400)
        answer = await tg.wait_for(reply_to(question))
        answer_id = int(buttons(answer)["Quotes"].split(":")[1])
        votes_before = journal.votes()
        caplog.clear()
        forged = {
            "vote:1:1000000": render.NOTICE_INVALID,
            "vote:999999:-77": render.NOTICE_INVALID,
            "vote:999999:1": render.NOTICE_GONE,
            "vote:abc:1": render.NOTICE_INVALID,
            f"vote:{answer_id}:2": render.NOTICE_INVALID,
            "quotes:-1": render.NOTICE_INVALID,
            "quotes:" + "9" * 40: render.NOTICE_INVALID,
            "sources:-3": render.NOTICE_INVALID,
            "sources:" + "9" * 30: render.NOTICE_INVALID,
            "sources:²": render.NOTICE_INVALID,
            "admin:1": render.NOTICE_INVALID,
            "x" * 64: render.NOTICE_INVALID,
            "docs:0": render.NOTICE_NOT_ADMIN,
            "remove:" + "0" * 16: render.NOTICE_NOT_ADMIN,
        }
        for data, notice in forged.items():
            pressed = tg.press_button(ASKER, answer["message_id"], data, forged=True)
            assert (await tg.wait_answered(pressed)).get("text") == notice, data
        # Another journalist forges the Quotes button of ASKER's answer in their own chat.
        help_ = tg.send_text(OTHER, "/help")
        anchor = await tg.wait_for(reply_to(help_))
        for data in (f"quotes:{answer_id}", f"vote:{answer_id}:-1"):
            pressed = tg.press_button(OTHER, anchor["message_id"], data, forged=True)
            assert (await tg.wait_answered(pressed))["text"] == render.NOTICE_OTHER_CHAT
        await settled(tg, app, tg.last_update_id)
        assert not [e for e in tg.sent if e["chat_id"] == OTHER and e["text"].startswith("Quotes")]
        assert journal.votes() == votes_before
        refused = [e for e in journal.audit_log(5) if e.user_id == ASKER]
        assert {e.target for e in refused} == {"docs:0", "remove:" + "0" * 16}
        assert all(e.result == "refused: not an admin" for e in refused)
        assert errors_logged(caplog) == []


@ASYNC
async def test_in_a_group_only_the_asker_rates_an_answer(tg: FakeTelegram, seeded: Desk) -> None:
    async with running_bot(tg, seeded, allowed_chats=[GROUP]) as app:
        journal = services_of(app).journal
        question = tg.send_text(ASKER, f"/ask {S400}", chat_id=GROUP, chat_type="supergroup")
        answer = await tg.wait_for(reply_to(question))
        before = journal.votes()
        pressed = tg.press_button(OTHER, answer["message_id"], buttons(answer)["👍"], GROUP)
        assert (await tg.wait_answered(pressed))["text"] == render.NOTICE_NOT_ASKER
        assert journal.votes() == before
        # Anyone in the group may read the quotes; the asker may vote.
        pressed = tg.press_button(OTHER, answer["message_id"], buttons(answer)["Quotes"], GROUP)
        await tg.wait_answered(pressed)
        await tg.wait_for(lambda e: e["chat_id"] == GROUP and e["text"].startswith("Quotes"))
        pressed = tg.press_button(ASKER, answer["message_id"], buttons(answer)["👍"], GROUP)
        assert (await tg.wait_answered(pressed))["text"] == render.THANKS
        assert journal.votes()[-1][1:3] == (ASKER, 1)


@ASYNC
async def test_bad_page_numbers_get_a_reply(tg: FakeTelegram, seeded: Desk) -> None:
    async with running_bot(tg, seeded):
        for arg in ("²", "-3", "9" * 30, "abc"):
            msg = tg.send_text(ASKER, f"/sources {arg}")
            reply = await tg.wait_for(reply_to(msg))
            assert "is not a page number" in reply["text"], reply["text"]


@ASYNC
async def test_strangers_are_refused_audited_and_nothing_is_stored(
    tg: FakeTelegram, make_desk: MakeDesk
) -> None:
    desk = make_desk()
    async with running_bot(tg, desk, admins=[ADMIN], allowed_chats=[GROUP]) as app:
        origin = {"type": "hidden_user", "sender_user_name": "X", "date": int(time.time())}
        attempts = [
            tg.send_document(STRANGER, "leak.txt", b"Secret memo\nThe board will resign."),
            tg.send_text(STRANGER, "Secret memo\nThe board will resign.", forward_origin=origin),
            tg.send_text(STRANGER, "/add Secret memo\nThe board will resign."),
            tg.send_text(STRANGER, "/stats"),
        ]
        for attempt in attempts:
            reply = await tg.wait_for(reply_to(attempt))
            assert f"<code>{STRANGER}</code>" in reply["html"] and "admin" in reply["text"]
        # A stranger's chatter in a group the bot is in is ignored, not answered.
        chatter = tg.send_text(STRANGER, "lunch?", chat_id=-3001, chat_type="group")
        await settled(tg, app, tg.last_update_id)
        assert not any(e["chat_id"] == -3001 for e in tg.sent), chatter
        refused = services_of(app).journal.audit_log(10)
        # Updates are handled concurrently, so the rows may be in any order.
        assert sorted((e.user_id, e.action, e.result) for e in refused) == [
            (STRANGER, "add", "refused: not allowed"),
            (STRANGER, "forward", "refused: not allowed"),
            (STRANGER, "stats", "refused: not allowed"),
            (STRANGER, "upload", "refused: not allowed"),
        ]
        assert [e.target for e in refused if e.action == "upload"] == ["leak.txt"]
        assert desk.store.articles() == [] and list(desk.corpus.paths()) == []


@ASYNC
async def test_a_crashed_upload_says_so_in_its_status_and_is_audited(
    tg: FakeTelegram, make_desk: MakeDesk, caplog: pytest.LogCaptureFixture
) -> None:
    desk = make_desk()
    async with running_bot(tg, desk, admins=[ADMIN]) as app:
        # A real failure inside indexing: the index database is gone. Closed through the store,
        # under its lock: the bot's start-up repair may be mid-query on the writer thread, and
        # closing a connection under a running statement crashes the process (seen in CI).
        desk.store.close()
        upload = tg.send_document(ADMIN, "memo.txt", b"Memo\nThe board met on Monday.")
        reading = await tg.wait_for(lambda e: reply_to(upload)(e) and "Reading" in e["text"])
        await tg.wait_for(
            lambda e: e["message_id"] == reading["message_id"] and "Sorry" in e["text"]
        )
        await settled(tg, app, tg.last_update_id)
        status = next(m for m in tg.messages(ADMIN) if m["message_id"] == reading["message_id"])
        error_id = re.search(r"error ([0-9a-f]{8})", status["text"])
        assert error_id and "adding memo.txt" in status["text"]
        assert "Reading" not in status["text"] and "Indexing" not in status["text"]
        entry = services_of(app).journal.audit_log(1)[0]
        assert (entry.user_id, entry.action, entry.target) == (ADMIN, "upload", "memo.txt")
        assert entry.result == f"failed: error {error_id.group(1)}"
        assert any(error_id.group(1) in m for m in errors_logged(caplog))  # with its traceback


@ASYNC
async def test_a_failed_remove_is_said_and_audited(tg: FakeTelegram, make_desk: MakeDesk) -> None:
    desk = make_desk()
    report = desk.ingestor.ingest_articles(
        [Article(title="Pier closes", text="The pier closed for repairs on Monday.")]
    )
    article_id = report.added[0].id
    async with running_bot(tg, desk, admins=[ADMIN]) as app:
        ask = tg.send_text(ADMIN, f"/remove {article_id}")
        prompt = await tg.wait_for(reply_to(ask))
        desk.store.close()  # the index cannot be written any more
        tg.press_button(ADMIN, prompt["message_id"], buttons(prompt)["Remove"])
        edited = await tg.wait_for(
            lambda e: e["message_id"] == prompt["message_id"] and "Sorry" in e["text"]
        )
        assert "error" in edited["text"] and not buttons(edited)
        await settled(tg, app, tg.last_update_id)
        entry = services_of(app).journal.audit_log(1)[0]
        assert (entry.action, entry.target) == ("remove", article_id)
        assert entry.result.startswith("failed: error ")


# -- fuzzing the parsers of what users type and press -----------------------------------------

JUNK = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda kind, rest: f"{kind}:{rest}",
        st.sampled_from(["vote", "quotes", "sources", "docs", "remove", "forget", "x", ""]),
        st.text(alphabet="0123456789-:abcdefno²٣ \x00", max_size=70),
    ),
)


@settings(max_examples=500, deadline=None)
@given(JUNK)
@example("remove")  # found by a CI run: the cancel button's payload without its colon
def test_callback_parser_accepts_only_what_the_bot_makes(data: str) -> None:
    payload = callbacks.parse(data)
    if payload is None:
        return
    if isinstance(payload, callbacks.Vote):
        assert payload.vote in (1, -1) and 0 < payload.answer_id < 10**12
        assert callbacks.vote(payload.answer_id, payload.vote) == data
    elif isinstance(payload, callbacks.Quotes):
        assert callbacks.quotes(payload.answer_id) == data
    elif isinstance(payload, callbacks.Page):
        assert 0 <= payload.page <= callbacks.MAX_PAGE
        assert callbacks.page(payload.listing, payload.page) == data
    elif isinstance(payload, callbacks.Forget):
        assert 0 < payload.user_id < 10**16
        assert callbacks.forget(payload.user_id, payload.confirmed) == data
    else:
        assert callbacks.remove(payload.article_id) == data


FILTER_JUNK = st.lists(
    st.one_of(
        st.text(max_size=15),
        st.builds(
            lambda key, value: f"{key}:{value}",
            st.sampled_from(["since", "until", "source", "SINCE", "Until"]),
            st.one_of(
                st.text(max_size=15),
                st.dates().map(dt.date.isoformat),
                st.text(max_size=12).map(lambda t: f'"{t}"'),
            ),
        ),
    ),
    max_size=6,
).map(" ".join)


@settings(max_examples=500, deadline=None)
@given(FILTER_JUNK)
def test_filter_syntax_gives_a_clear_error_or_valid_filters(text: str) -> None:
    try:
        question, filters = split_filters(text, as_of=dt.date(2025, 1, 1))
    except FilterError as exc:
        assert isinstance(exc, InputError) and str(exc)
        return
    assert not re.search(r"\b(since|until|source):\S", question, re.IGNORECASE)
    assert not (filters.since and filters.until) or filters.since <= filters.until
    assert filters.as_of == dt.date(2025, 1, 1)
