"""Journalists' questions are confidential: what the bot keeps, for how long, and /forget.

Through the real bot against the fake Bot API, on an index of its own, so that every
database under index/ can be searched for what one user left behind.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import sqlite3
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from botkit import JOURNALISTS, buttons, reply_to, running_bot, services_of, settled
from conftest import CORPUS, run_cli, settings_for
from fake_telegram import FakeTelegram

from bot import privacy, private, render, render_privacy
from bot.desk import Desk
from bot.embed import Embedder
from bot.journal import Journal

ASYNC = pytest.mark.asyncio(loop_scope="session")
UID = 731_904_577  # a user id found nowhere else in the index
OTHER = JOURNALISTS[7]
GROUP = -100_731_904
ADMIN = 731_000_001
STRANGER = 731_000_002
# A question with a word no article contains, so its bytes can only come from the question.
QUESTION = "Why would the EU buy Russian S-400 systems from Turkey, says Vrellingham?"
SECRET = "Vrellingham"


@pytest.fixture(scope="module")
def own_desk(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Desk:
    """A small index of its own (three articles), so its databases hold only this module's
    users."""
    root = tmp_path_factory.mktemp("privacy")
    names = ["eu-considers-buying-russian-s-400", "australian-children", "greek-court"]
    (root / "corpus").mkdir()
    for path in CORPUS.rglob("*.md"):
        if any(path.name.startswith(n) for n in names):
            shutil.copy(path, root / "corpus" / path.name)
    desk = Desk(settings_for(root), embedder=embedder)
    assert len(desk.ingestor.ingest([desk.corpus.root]).added) == 3
    return desk


@pytest_asyncio.fixture(loop_scope="session")
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


def sqlite_files(index: Path) -> list[Path]:
    return [
        p for p in index.rglob("*") if p.is_file() and p.read_bytes()[:16] == b"SQLite format 3\0"
    ]


def rows_naming(index: Path, user_id: int | None, text: str) -> Iterator[tuple[str, str, Any]]:
    """(file, table, value) for every cell of every table of every database under index/
    that holds this user id (as a number or inside text) or this text."""
    for path in sqlite_files(index):
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                for row in db.execute(f'SELECT * FROM "{table}"'):
                    for value in row:
                        named = user_id is not None and (
                            value == user_id or (isinstance(value, str) and str(user_id) in value)
                        )
                        if named or (isinstance(value, str) and text in value):
                            yield path.name, table, value
        finally:
            db.close()


def files_containing(index: Path, text: str) -> list[str]:
    """Every file under index/ (databases, WAL and shm, Chroma's segments) holding `text`."""
    needle = text.encode()
    return [str(p) for p in index.rglob("*") if p.is_file() and needle in p.read_bytes()]


@ASYNC
async def test_privacy_then_forget_leaves_nothing_about_the_user(
    tg: FakeTelegram, own_desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    index = own_desk.settings.index_dir
    users = [*JOURNALISTS, UID]
    async with running_bot(
        tg, own_desk, allowed_users=users, allowed_chats=[GROUP], admins=[ADMIN]
    ) as app:
        journal = services_of(app).journal
        # A question in private and one in the group (follow-up memory in two chats), a vote.
        asked = tg.send_text(UID, QUESTION)
        answer = await tg.wait_for(reply_to(asked))
        pressed = tg.press_button(UID, answer["message_id"], buttons(answer)["👍"])
        assert (await tg.wait_answered(pressed))["text"] == render.THANKS
        in_group = tg.send_text(UID, f"/ask {QUESTION}", chat_id=GROUP, chat_type="supergroup")
        await tg.wait_for(reply_to(in_group))
        # A refused admin command names them in the audit log; a stranger's question never
        # reaches it.
        refused = tg.send_text(UID, f"/docs {SECRET}")
        await tg.wait_for(reply_to(refused))
        stranger = tg.send_text(STRANGER, f"/ask {QUESTION}")
        await tg.wait_for(reply_to(stranger))
        assert all(SECRET not in e.target for e in journal.audit_log(50))
        assert sum(UID in memory._by_user for memory in app.chat_data.values()) == 2

        # With the defaults, the question text never reached the disk (WAL included).
        assert files_containing(index, SECRET) == []
        kept = list(rows_naming(index, UID, SECRET))
        assert kept and all(SECRET not in str(value) for *_, value in kept)

        # /privacy says what is kept about them, and for how long.
        asked = tg.send_text(UID, "/privacy")
        said = (await tg.wait_for(reply_to(asked)))["text"]
        assert "questions and the answers' text are not stored" in said
        assert "You have 2." in said and "You have 1." in said  # 2 answers, 1 vote
        assert "after 30 days" in said and "for 365 days" in said
        assert "named in 1 entries" in said

        # /forget in the group: another member's press is refused, and answered.
        asked = tg.send_text(UID, "/forget", chat_id=GROUP, chat_type="supergroup")
        prompt = await tg.wait_for(reply_to(asked))
        delete = buttons(prompt)["Delete"]
        pressed = tg.press_button(OTHER, prompt["message_id"], delete, GROUP)
        assert (await tg.wait_answered(pressed))["text"] == render_privacy.NOTICE_NOT_YOURS
        forged = tg.press_button(OTHER, prompt["message_id"], "forget:x", GROUP, forged=True)
        assert (await tg.wait_answered(forged))["text"] == render.NOTICE_INVALID
        await settled(tg, app, tg.last_update_id)
        assert journal.held_about(UID) == {"answers": 2, "feedback": 1, "audit": 1}
        assert tg.messages(GROUP)[-1]["text"] == prompt["text"]  # not edited

        pressed = tg.press_button(UID, prompt["message_id"], delete, GROUP)
        await tg.wait_answered(pressed)
        done = await tg.wait_for(
            lambda e: e["method"] == "editMessageText" and e["message_id"] == prompt["message_id"]
        )
        assert done["text"] == render_privacy.forgotten(4, 2)
        assert all(UID not in memory._by_user for memory in app.chat_data.values())
    assert list(rows_naming(index, UID, SECRET)) == []
    assert files_containing(index, SECRET) == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@ASYNC
async def test_forget_cancel_keeps_everything(tg: FakeTelegram, own_desk: Desk) -> None:
    user = JOURNALISTS[8]
    async with running_bot(tg, own_desk) as app:
        journal = services_of(app).journal
        answer = await tg.wait_for(reply_to(tg.send_text(user, QUESTION)))
        assert answer
        prompt = await tg.wait_for(reply_to(tg.send_text(user, "/forget")))
        pressed = tg.press_button(user, prompt["message_id"], buttons(prompt)["Cancel"])
        await tg.wait_answered(pressed)
        await tg.wait_for(lambda e: e["text"] == render_privacy.FORGET_CANCELLED)
        assert journal.held_about(user)["answers"] == 1


@ASYNC
async def test_forget_keeps_an_admins_audit_rows(tg: FakeTelegram, own_desk: Desk) -> None:
    async with running_bot(tg, own_desk, admins=[ADMIN]) as app:
        journal = services_of(app).journal
        await tg.wait_for(reply_to(tg.send_text(ADMIN, QUESTION)))
        journal.audit(ADMIN, "boss", "remove", "0123456789abcdef", "removed")
        prompt = await tg.wait_for(reply_to(tg.send_text(ADMIN, "/forget")))
        assert "your admin actions stay in the audit log" in prompt["text"]
        pressed = tg.press_button(ADMIN, prompt["message_id"], buttons(prompt)["Delete"])
        await tg.wait_answered(pressed)
        await tg.wait_for(lambda e: e["text"].startswith("Done: deleted 1 stored row about you."))
        assert journal.held_about(ADMIN) == {"answers": 0, "feedback": 0, "audit": 1}


@ASYNC
async def test_question_text_is_kept_only_when_the_operator_asks(
    tg: FakeTelegram, own_desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    """The check above can see text: with NEWSDESK_JOURNAL_TEXT=true it is on disk, and a
    restart without it deletes it from the rows and from the file's bytes."""
    user = JOURNALISTS[9]
    index = own_desk.settings.index_dir
    async with running_bot(tg, own_desk, journal_text=True) as app:
        asked = tg.send_text(user, f"{QUESTION} (kept)")
        await tg.wait_for(reply_to(asked))
        said = (await tg.wait_for(reply_to(tg.send_text(user, "/privacy"))))["text"]
        assert "answers' text are stored" in said
        services_of(app).journal.close()
    assert files_containing(index, SECRET) != []
    caplog.set_level(logging.INFO)
    Journal(index / "feedback.db").close()
    assert "deleted the stored question and answer text of 1 answers" in caplog.text
    assert files_containing(index, SECRET) == []
    assert list(rows_naming(index, None, SECRET)) == []


def old_rows(journal: Journal, days: float, user_id: int) -> None:
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).isoformat(timespec="seconds")
    with journal.db:
        cursor = journal.db.execute(
            "INSERT INTO answers (chat_id, user_id, question, answer, abstained, citations,"
            " created_at) VALUES (?,?,'','',0,'[]',?)",
            (user_id, user_id, at),
        )
        journal.db.execute("INSERT INTO feedback VALUES (?,?,1,?)", (cursor.lastrowid, user_id, at))
        journal.db.execute(
            "INSERT INTO audit (at, user_id, user_name, action, target, result)"
            " VALUES (?,?,'x','remove','','ok')",
            (at, user_id),
        )


@ASYNC
async def test_retention_deletes_old_rows_at_start_and_in_the_job(
    tg: FakeTelegram, make_desk: Any
) -> None:
    desk = make_desk()
    journal = Journal(desk.settings.index_dir / "feedback.db")
    old_rows(journal, 31, 1)  # journal rows expire (30 days), the audit row stays
    old_rows(journal, 29, 2)  # everything stays
    old_rows(journal, 366, 3)  # everything goes
    journal.close()
    async with running_bot(tg, desk) as app:
        journal = services_of(app).journal
        assert [journal.held_about(u) for u in (1, 2, 3)] == [
            {"answers": 0, "feedback": 0, "audit": 1},
            {"answers": 1, "feedback": 1, "audit": 1},
            {"answers": 0, "feedback": 0, "audit": 0},
        ]
        old_rows(journal, 40, 4)
        assert app.job_queue is not None
        (daily,) = app.job_queue.get_jobs_by_name("retention")  # PTB's JobQueue, every day
        assert daily.trigger.interval == privacy.DAILY
        await daily.run(app)
        assert journal.held_about(4) == {"answers": 0, "feedback": 0, "audit": 1}
        forty_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
        assert journal.stats()["journal_oldest"][:10] == forty_days_ago.date().isoformat()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_index_files_are_owner_only(make_desk: Any, tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the usual default: files 0644, folders 0755
    try:
        (tmp_path / "index").mkdir(mode=0o755)  # an existing, world-readable index/
        desk = make_desk()
        journal = Journal(desk.settings.index_dir / "feedback.db")
        journal.vote(1, 1, 1)
        assert desk.store.count_chunks() == 0  # opens the store (and Chroma)
    finally:
        os.umask(previous)
    index = desk.settings.index_dir
    assert mode(index) == 0o700
    assert mode(index / "chroma") == 0o700
    databases = sqlite_files(index)
    assert {p.name for p in databases} >= {"feedback.db", "newsdesk.db", "chroma.sqlite3"}
    for path in [*databases, *index.glob("*.db-*")]:
        assert mode(path) == 0o600, path
    private.write_text(index / "writer.json", "{}")  # for the lock and hand-off files
    assert mode(index / "writer.json") == 0o600 and (index / "writer.json").read_text() == "{}"
    journal.close()


def test_journal_export_purge_and_stats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEWSDESK_CORPUS_DIR", str(tmp_path / "corpus"))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(tmp_path / "index"))
    journal = Journal(tmp_path / "index" / "feedback.db")
    old_rows(journal, 10, 1)
    old_rows(journal, 3, 2)
    journal.close()

    out = tmp_path / "review.jsonl"
    assert run_cli(["journal", "export", "--out", str(out)], capsys)[0] == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["kind"], r["user_id"]) for r in rows] == [
        ("answer", 1),
        ("answer", 2),
        ("audit", 1),
        ("audit", 2),
    ]
    assert rows[0]["question"] is None and rows[0]["votes"][0]["vote"] == 1
    assert mode(out) == 0o600
    since = (dt.date.today() - dt.timedelta(days=5)).isoformat()
    assert run_cli(["journal", "export", "--since", since, "--out", str(out)], capsys)[0] == 0
    assert {json.loads(line)["user_id"] for line in out.read_text().splitlines()} == {2}
    code, _, err = run_cli(["journal", "export", "--since", "soon", "--out", str(out)], capsys)
    assert code == 1 and err.strip() == "error: --since 'soon' is not a date: use YYYY-MM-DD"

    code, _, err = run_cli(["journal", "purge"], capsys)
    assert code == 1 and "--user ID, --older-than DAYS" in err
    code, said, _ = run_cli(["journal", "purge", "--older-than", "7"], capsys)
    assert code == 0 and said.strip() == "deleted 1 answers, 1 feedback, 1 audit (audited)"
    code, said, _ = run_cli(["journal", "purge", "--user", "2"], capsys)
    assert code == 0 and said.strip() == "deleted 1 answers, 1 feedback, 1 audit (audited)"
    journal = Journal(tmp_path / "index" / "feedback.db")
    purges = journal.audit_log()
    journal.close()
    assert [(e.action, e.target) for e in purges] == [
        ("journal-purge", "user=2"),
        ("journal-purge", "older-than=7.0"),
    ]
    assert all(e.user_name.startswith("cli:") for e in purges)

    code, said, _ = run_cli(["stats", "--json"], capsys)
    data = json.loads(said)
    assert code == 0 and data["journal_rows"] == {"answers": 0, "feedback": 0, "audit": 2}
    assert data["journal_bytes"] > 0 and data["journal_oldest"][:10] == dt.date.today().isoformat()
