"""Issue 11 replayed as a user would: bad files, two writers, missing volumes, the bot and the
CLI at once, a changed model or vector store, a full disk, a read-only index, a bad token."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botkit import JOURNALISTS, reserved_port, running_bot
from conftest import MakeDesk, run_cli, settings_for
from fake_telegram import FakeTelegram
from test_chroma_server import ChromaProcess, chroma_executable

from bot.desk import Desk
from bot.embed import Embedder
from bot.errors import IndexUnavailable, NewsdeskError, NotFound, StorageError
from bot.lock import IndexLock, WriterBusy
from bot.manifest import vector_gap

SUBPROCESS_TIMEOUT = 180.0


def story(title: str, text: str, **meta: str) -> str:
    front = "".join(f"{k}: {v}\n" for k, v in {"title": json.dumps(title), **meta}.items())
    return f"---\n{front}---\n\n{text}\n"


def write_stories(folder: Path, n: int, prefix: str = "Story") -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    titles = []
    for i in range(n):
        title = f"{prefix} {i}: the harbour ferry {i * 13}"
        (folder / f"{prefix.lower()}-{i}.md").write_text(
            story(title, f"The harbour ferry number {i * 13} sailed at dawn with {i} cars."),
            encoding="utf-8",
        )
        titles.append(title)
    return titles


@pytest.fixture
def env_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI in this process reads its folders from the environment, as a user's shell."""
    monkeypatch.setenv("NEWSDESK_CORPUS_DIR", str(tmp_path / "corpus"))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(tmp_path / "index"))
    return tmp_path


def cli_env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")}
    env.update(
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        NEWSDESK_CORPUS_DIR=str(root / "corpus"),
        NEWSDESK_INDEX_DIR=str(root / "index"),
    )
    env.update(extra)
    return env


def newsdesk(root: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=root,
        env=cli_env(root, **extra),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )


async def newsdesk_async(root: Path, *args: str, **extra: str) -> tuple[int, str, str]:
    """A `newsdesk` run in a process of its own, awaited without blocking a running bot."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=root,
        env=cli_env(root, **{"NEWSDESK_LOCK_TIMEOUT": "120", **extra}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), SUBPROCESS_TIMEOUT)
    return int(proc.returncode or 0), out.decode(), err.decode()


def desk_of_three(make_desk: MakeDesk, root: Path, **settings: Any) -> Desk:
    """A desk with write_stories' three stories ingested from root/in."""
    desk = make_desk(**settings)
    write_stories(root / "in", 3)
    desk.ingestor.ingest([root / "in"])
    return desk


def write_lighthouse(folder: Path) -> Path:
    """A story that only the article added while the bot runs can answer."""
    new = folder / "lighthouse.md"
    new.write_text(
        story(
            "Lighthouse keeper retires after 40 years",
            "Marta Olsen, the keeper of the Skerry lighthouse, retired on Friday after forty "
            "years. The lighthouse will be automated next spring.",
        )
    )
    return new


def titles_of(desk: Desk) -> list[str]:
    return sorted(r.title for r in desk.store.articles())


def assert_whole(desk: Desk) -> None:
    """Every article ready, every chunk with its vector, nothing twice."""
    rows = desk.store.articles()
    assert [r.state for r in rows if r.state != "ready"] == []
    assert [t for t, n in Counter(r.title for r in rows).items() if n > 1] == []
    chunks = desk.store.all_chunk_ids()
    assert desk.store.vector_ids() == chunks and len(chunks) == sum(r.n_chunks for r in rows)


# -- 1. one bad document is one failure ------------------------------------------------------


def test_bad_documents_fail_alone_and_parser_bugs_are_logged(
    make_desk: MakeDesk,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    desk = make_desk()
    inbox = tmp_path / "inbox"
    titles = write_stories(inbox, 3)
    (inbox / "bad-date.md").write_text(story("Bad date", "Text.", published="2025-02-30"))
    (inbox / "bad-authors.md").write_text(story("Bad authors", "Text.", authors="5"))
    (inbox / "bug.md").write_text(story("Parser bug", "This one trips a bug."))
    import bot.ingest

    real_parse = bot.ingest.iter_parse

    def buggy(source):  # type: ignore[no-untyped-def]
        if source.name == "bug.md":
            raise RuntimeError("a parser bug")
        return real_parse(source)

    monkeypatch.setattr(bot.ingest, "iter_parse", buggy)
    with caplog.at_level(logging.ERROR, logger="bot.ingest"):
        report = desk.ingestor.ingest([inbox])
    failed = dict((Path(n).name, r) for n, r in report.failed)
    assert failed["bug.md"] == "internal error, see the log"
    assert "a parser bug" in caplog.text and "Traceback" in caplog.text
    assert "bad-date.md" in failed or "Bad date" in titles_of(desk)
    good = {a.title for a in report.added}
    assert set(titles) <= good
    assert_whole(desk)


def test_reindex_keeps_the_index_when_a_hand_edited_file_is_bad(
    make_desk: MakeDesk, env_for: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    desk = make_desk()
    titles = write_stories(env_for / "in", 4)
    desk.ingestor.ingest([env_for / "in"])
    before = desk.store.count_chunks()
    victim = sorted(desk.corpus.paths())[0]
    victim_title = desk.corpus.read(victim).title
    text = victim.read_text(encoding="utf-8")
    victim.write_text(text.replace("title:", "authors: [unclosed\ntitle:", 1))  # broken YAML
    desk.store.close()
    code, out, err = run_cli(["reindex"], capsys)
    assert code == 1, (out, err)  # a user error in one file, not a crash (70)
    assert victim.name in err and "Traceback" not in err
    again = make_desk()
    assert titles_of(again) == sorted(titles)  # the bad file's old version is still there
    assert again.store.count_chunks() == before
    passages = again.search("harbour ferry number 26", k=4)
    assert passages and passages[0].title == titles[2]
    assert any(p.title == victim_title for p in again.search(victim_title, k=8))


# -- 2. an empty or missing corpus never wipes the index -------------------------------------


def test_missing_or_empty_corpus_keeps_every_article(make_desk: MakeDesk, tmp_path: Path) -> None:
    desk = make_desk()
    titles = write_stories(tmp_path / "in", 8)
    desk.ingestor.ingest([tmp_path / "in"])
    vectors = len(desk.store.vector_ids())
    desk.store.close()
    corpus = desk.corpus.root
    corpus.rename(tmp_path / "away")  # the volume is not mounted: the folder is missing
    for state in ("missing", "empty"):
        if state == "empty":
            corpus.mkdir()
        other = make_desk()
        report = other.ingestor.repair()
        assert titles_of(other) == sorted(titles), state
        assert len(other.store.vector_ids()) == vectors
        assert "kept them in the index" in report.notes[0][1]
        assert "newsdesk repair --prune" in report.notes[0][1]
        with pytest.raises(NewsdeskError, match="missing or holds no articles"):
            other.ingestor.reindex()
        assert titles_of(other) == sorted(titles)
        other.store.close()
    corpus.rmdir()
    (tmp_path / "away").rename(corpus)
    # Most files gone at once: kept. One file gone: dropped. --prune: dropped anyway.
    desk = make_desk()
    paths = sorted(desk.corpus.paths())
    moved = tmp_path / "moved"
    moved.mkdir()
    for p in paths[:6]:
        shutil.move(p, moved / p.name)
    assert desk.ingestor.repair().notes and len(desk.store.articles()) == 8
    for p in sorted(moved.iterdir())[1:]:
        shutil.move(p, paths[0].parent / p.name)
    report = desk.ingestor.repair()
    assert not report.notes and len(desk.store.articles()) == 7
    for p in paths[1:]:
        p.unlink()
    assert desk.ingestor.repair().notes and len(desk.store.articles()) == 7
    report = desk.ingestor.repair(prune=True)
    assert desk.store.articles() == [] and desk.store.vector_ids() == set()


def test_cli_on_an_empty_corpus_mount_says_why(
    make_desk: MakeDesk, env_for: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    desk = make_desk()
    write_stories(env_for / "in", 3)
    desk.ingestor.ingest([env_for / "in"])
    desk.store.close()
    desk.corpus.root.rename(env_for / "away")
    desk.corpus.root.mkdir()  # an empty mount point
    code, _, err = run_cli(["repair"], capsys)
    assert code == 0 and "3 of 3 indexed articles have no file" in err
    code, _, err = run_cli(["repair", "--prune"], capsys)
    assert code == 0 and "kept them" not in err
    assert make_desk().store.articles() == []


# -- 3. remove: the file goes first, a takedown never comes back ----------------------------


def test_remove_prefix_is_literal_hex_and_ambiguity_deletes_nothing(
    make_desk: MakeDesk, tmp_path: Path
) -> None:
    desk = make_desk()
    write_stories(tmp_path / "in", 20)
    desk.ingestor.ingest([tmp_path / "in"])
    ids = [r.id for r in desk.store.articles()]
    for pattern in ("%", f"%{ids[0][-4:]}", "_" * 16, ids[0][:3] + "%", "", "zz"):
        with pytest.raises(NotFound, match="not an article id"):
            desk.ingestor.remove(pattern)
    assert len(desk.store.articles()) == 20
    first = Counter(i[0] for i in ids).most_common(1)[0][0]  # 20 ids: some share a digit
    sharing = [i for i in ids if i.startswith(first)]
    if len(sharing) > 1:
        with pytest.raises(NotFound, match=f"{len(sharing)} articles start with") as info:
            desk.ingestor.remove(first.upper())
        assert all(i in str(info.value) for i in sharing)
        assert len(desk.store.articles()) == 20
    desk.ingestor.remove(ids[0].upper())
    assert ids[0] not in {r.id for r in desk.store.articles()}


def _bind_readonly(folder: Path) -> contextlib.AbstractContextManager[None]:
    @contextlib.contextmanager
    def mounted() -> Iterator[None]:
        try:
            subprocess.run(
                ["mount", "--bind", str(folder), str(folder)], check=True, capture_output=True
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            pytest.skip(f"cannot bind-mount here (needs root and mount): {exc}")
        try:
            subprocess.run(
                ["mount", "-o", "remount,bind,ro", str(folder)], check=True, capture_output=True
            )
            yield
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)

    return mounted()


def test_remove_on_a_read_only_corpus_hides_and_never_comes_back(
    make_desk: MakeDesk, tmp_path: Path
) -> None:
    desk = make_desk()
    titles = write_stories(tmp_path / "in", 3)
    desk.ingestor.ingest([tmp_path / "in"])
    row = next(r for r in desk.store.articles() if r.title == titles[1])
    with _bind_readonly(desk.corpus.root):
        with pytest.raises(StorageError, match="hidden from answers"):
            desk.ingestor.remove(row.id)
        assert Path(row.path).exists()
        assert all(p.title != titles[1] for p in desk.search("harbour ferry number 13", k=6))
        report = desk.ingestor.repair()  # the next start: still hidden, not re-added
        assert "stays hidden" in report.notes[0][1]
        report = desk.ingestor.reindex()
        assert all(p.title != titles[1] for p in desk.search("harbour ferry number 13", k=6))
    desk.ingestor.repair()  # writable again: the takedown completes
    assert not Path(row.path).exists() and titles_of(desk) == sorted([titles[0], titles[2]])
    assert_whole(desk)


# -- 4. two writers ---------------------------------------------------------------------------


def test_second_writer_waits_with_a_message_then_gives_up(tmp_path: Path) -> None:
    first, second = IndexLock(tmp_path / "index"), IndexLock(tmp_path / "index")
    said: list[str] = []
    assert first.acquire("ingest", 1, said.append) is None
    with pytest.raises(WriterBusy, match=r"still in use by another newsdesk writer"):
        second.acquire("reindex", 1.5, said.append)
    holder = f"`newsdesk ingest`, pid {os.getpid()}"
    assert said == [f"waiting for another newsdesk writer ({holder}) to finish, up to 1.5 s …"]
    first.release()
    assert second.acquire("reindex", 1, said.append) is None
    second.release()


@pytest.mark.slow
def test_two_cli_ingests_at_once_both_succeed(tmp_path: Path, embedder: Embedder) -> None:
    """Two real `newsdesk ingest` runs on a fresh index (no tables yet) wait for each other."""
    for name in ("a", "b"):
        folder = tmp_path / name
        write_stories(folder, 5, prefix=name.upper())
    hold = IndexLock(tmp_path / "index")
    hold.acquire("ingest", 1, print)  # both find the index busy: neither may start writing
    procs = []
    for name in ("a", "b"):
        err = (tmp_path / f"{name}.err").open("w")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bot", "ingest", str(tmp_path / name)],
                cwd=tmp_path,
                env=cli_env(tmp_path, NEWSDESK_LOCK_TIMEOUT="150"),
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        )
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT
    while not all(
        "waiting for another newsdesk writer" in (tmp_path / f"{n}.err").read_text() for n in "ab"
    ):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.1)
    hold.release()
    outs = [p.communicate(timeout=SUBPROCESS_TIMEOUT)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    desk = Desk(settings_for(tmp_path), embedder=embedder)
    assert len(desk.store.articles()) == 10
    assert_whole(desk)


# -- 5. the bot and a CLI ingest at once ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="session")
async def test_cli_ingest_while_the_bot_runs_is_answerable(
    make_desk: MakeDesk, tmp_path: Path
) -> None:
    desk = desk_of_three(make_desk, tmp_path, inbox_interval=0.5)
    new = write_lighthouse(tmp_path)
    user = JOURNALISTS[0]
    async with FakeTelegram() as tg, running_bot(tg, desk):
        code, out, err = await newsdesk_async(tmp_path, "ingest", str(new))
        assert code == 0 and "handed over" in err and "1 added" in out, err
        start = len(tg.sent)
        question = tg.send_text(user, "Who kept the Skerry lighthouse?")
        reply = await tg.wait_for(
            lambda e: (
                e["chat_id"] == user and e.get("reply_to_message_id") == question["message_id"]
            ),
            start=start,
        )
        assert "Lighthouse keeper retires" in reply["text"]
        assert "went wrong" not in reply["text"]
    assert list((desk.settings.index_dir / "inbox").glob("*.json")) == []


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="session")
async def test_cli_questions_while_the_bot_writes_are_asked_of_the_bot(
    make_desk: MakeDesk, tmp_path: Path
) -> None:
    """`ask` and `search` from a shell beside a bot that keeps ingesting. A second process
    opening the embedded store saw half an ingest and told the journalist to run a repair."""
    desk = desk_of_three(make_desk, tmp_path, inbox_interval=0.2)
    more = write_stories(tmp_path / "more", 40, prefix="Busy")
    question = "Who kept the Skerry lighthouse?"
    stop = threading.Event()

    def keep_writing() -> None:  # uploads keep coming in while the shell asks
        while not stop.is_set():
            for path in sorted((tmp_path / "more").iterdir()):
                with desk.write_lock:
                    desk.ingestor.ingest([path])
                if stop.is_set():
                    return
            for row in desk.store.articles():
                if row.title in more:
                    with desk.write_lock:
                        desk.ingestor.remove(row.id)

    async with FakeTelegram() as tg, running_bot(tg, desk):
        new = write_lighthouse(tmp_path)
        with desk.write_lock:  # as an upload in Telegram would: the bot writes it
            desk.ingestor.ingest([new])
        expected = desk.ask(question)
        assert expected.citations and "Lighthouse" in expected.citations[0].title
        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            code, out, err = await newsdesk_async(tmp_path, "ask", question, "--json")
            assert code == 0 and "asking the bot, pid" in err, err
            cited = [c["article_id"] for c in json.loads(out)["citations"]]
            assert cited == [c.article_id for c in expected.citations]
            code, out, err = await newsdesk_async(
                tmp_path, "search", "Skerry lighthouse", "-k", "2"
            )
            assert code == 0 and "Lighthouse keeper retires" in out.splitlines()[1], err
            code, out, err = await newsdesk_async(tmp_path, "ask", question, "--lang", "de")
            assert code == 0 and "Lighthouse keeper retires" in out and "Quellen" in out, err
            listings = {c: await newsdesk_async(tmp_path, c) for c in ("docs", "stats")}
            assert all(code == 0 and not err for code, _, err in listings.values()), listings
            assert "Lighthouse keeper retires" in listings["docs"][1]  # index/'s tables only
            (tmp_path / "q.jsonl").write_text(json.dumps({"id": 1, "question": question}))
            code, out, err = await newsdesk_async(tmp_path, "eval", "q.jsonl", "--out", "r.jsonl")
            assert code == 1 and "while the bot is stopped" in err and "Traceback" not in err
            assert not (tmp_path / "r.jsonl").exists()
        finally:
            stop.set()
            writer.join()
        start = len(tg.sent)  # the bot still answers in Telegram, in English
        sent = tg.send_text(JOURNALISTS[0], question)
        reply = await tg.wait_for(
            lambda e: e.get("reply_to_message_id") == sent["message_id"], start=start
        )
        assert "Lighthouse keeper retires" in reply["text"] and "Quellen" not in reply["text"]
    assert list((desk.settings.index_dir / "inbox").rglob("*.json")) == []  # every note done


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="session")
async def test_a_cli_question_is_not_held_up_by_a_handed_over_ingest(
    make_desk: MakeDesk, tmp_path: Path
) -> None:
    desk = desk_of_three(make_desk, tmp_path, inbox_interval=0.2)
    inbox = desk.settings.index_dir / "inbox"
    async with FakeTelegram() as tg, running_bot(tg, desk):
        with desk.write_lock:  # the bot's writer is busy: a handed-over ingest waits behind it
            ingest = asyncio.create_task(
                newsdesk_async(tmp_path, "ingest", str(write_lighthouse(tmp_path)))
            )
            deadline = time.monotonic() + SUBPROCESS_TIMEOUT
            while not list(inbox.glob("*.json")):  # handed over, and not done
                assert time.monotonic() < deadline and not ingest.done()
                await asyncio.sleep(0.05)
            code, out, err = await newsdesk_async(
                tmp_path, "ask", "When did the harbour ferry 13 sail?", "--json"
            )
            assert code == 0 and json.loads(out)["citations"], err
            assert not ingest.done()
        code, out, err = await ingest
        assert code == 0 and "1 added" in out, err
    assert list(inbox.rglob("*.json")) == []


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="session")
async def test_a_cli_question_is_answered_long_before_the_inbox_interval(
    make_desk: MakeDesk, tmp_path: Path
) -> None:
    """An operator may space the bot's looks for handed-over work far apart; a journalist at
    a shell still gets an answer as from Telegram, not a minute later."""
    desk = desk_of_three(make_desk, tmp_path, inbox_interval=600)
    async with FakeTelegram() as tg, running_bot(tg, desk):
        code, out, err = await newsdesk_async(
            tmp_path,
            "ask",
            "When did the harbour ferry 13 sail?",
            "--json",
            NEWSDESK_LOCK_TIMEOUT="60",
        )
    assert code == 0 and json.loads(out)["citations"], err


def test_a_write_planted_in_the_questions_inbox_is_refused(
    make_desk: MakeDesk, tmp_path: Path
) -> None:
    """Questions are answered without the bot's write lock, so nothing else runs from there."""
    from bot.handoff import process_inbox

    desk = make_desk()
    questions = desk.settings.index_dir / "inbox" / "questions"
    questions.mkdir(parents=True)
    (questions / "1-1.json").write_text(
        json.dumps({"command": "ingest", "items": [str(write_lighthouse(tmp_path))]})
    )
    assert process_inbox(desk, questions=True) == 1
    done = json.loads((questions / "1-1.done.json").read_text())
    assert done["code"] == 1 and "only questions" in done["lines"][0][0]
    assert desk.store.articles() == []


def test_a_cli_question_to_a_bot_that_does_not_answer_says_so(tmp_path: Path) -> None:
    hold = IndexLock(tmp_path / "index")
    hold.acquire("serve", 1, print, bot=True)  # a bot busy with a long write: no inbox turn
    try:
        done = newsdesk(tmp_path, "ask", "Who kept the lighthouse?", NEWSDESK_LOCK_TIMEOUT="1")
    finally:
        hold.release()
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"no answer from the bot, pid {os.getpid()} within 1 s" in done.stderr
    assert list((tmp_path / "index" / "inbox").rglob("*.json")) == []  # withdrawn, not answered


def test_a_cli_question_waits_for_a_cli_writer(tmp_path: Path) -> None:
    hold = IndexLock(tmp_path / "index")
    hold.acquire("ingest", 1, print)
    try:
        done = newsdesk(tmp_path, "ask", "Who kept the lighthouse?", NEWSDESK_LOCK_TIMEOUT="1")
    finally:
        hold.release()
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "still in use by another newsdesk writer (`newsdesk ingest`" in done.stderr


@pytest.mark.slow
def test_keyword_hits_without_vectors_still_answer(make_desk: MakeDesk, tmp_path: Path) -> None:
    """Another process wrote into this process's embedded Chroma (as an old CLI would, around
    the lock): its chunks are keyword hits whose vectors this process cannot read."""
    desk = desk_of_three(make_desk, tmp_path)
    assert desk.search("harbour ferry", k=2)
    new = tmp_path / "lighthouse.md"
    new.write_text(story("Skerry lighthouse keeper retires", "Marta Olsen kept the light."))
    script = (
        "import sys; from bot.config import Settings; from bot.desk import Desk; "
        "Desk(Settings()).ingestor.ingest([sys.argv[1]])"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(new)],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        check=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    answer = desk.ask("Who is the Skerry lighthouse keeper Marta Olsen?")
    assert any("Skerry" in c.title for c in answer.citations) or answer.abstained


# -- 6. what built the index ------------------------------------------------------------------


def test_a_changed_chunker_or_model_is_refused_with_the_fix(
    make_desk: MakeDesk, tmp_path: Path
) -> None:
    desk = make_desk()
    titles = write_stories(tmp_path / "in", 3)
    desk.ingestor.ingest([tmp_path / "in"])
    desk.store.close()
    other = make_desk(chunk_overlap_tokens=7)
    with pytest.raises(IndexUnavailable, match=r"chunker .* run `newsdesk reindex`"):
        other.ingestor.ingest([tmp_path / "in"])
    with pytest.raises(IndexUnavailable, match="newsdesk reindex"):
        other.search("ferry")
    report = other.ingestor.reindex()
    assert len(report.updated) == 3 and titles_of(other) == sorted(titles)
    assert other.search("harbour ferry number 13", k=1)[0].title == titles[1]
    other.store.set_meta(
        "built_with", json.dumps({"model": "some/other-model", "dimension": 768, "chunker": "x"})
    )
    with pytest.raises(IndexUnavailable, match=r"some/other-model \(768 dims\).*reindex"):
        other.ingestor.repair()
    other.ingestor.reindex()
    assert_whole(other)


def test_a_lost_vector_store_is_said_and_repaired(
    make_desk: MakeDesk, env_for: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    desk = make_desk()
    titles = write_stories(env_for / "in", 4)
    desk.ingestor.ingest([env_for / "in"])
    built_on = desk.store.get_meta("vector_store")
    assert built_on and "collection" in built_on
    desk.store.reset_vectors()  # as a new, empty Chroma server would be
    desk.store.close()
    code, _, err = run_cli(["ask", "harbour ferry number 13"], capsys)
    assert code == 1 and "holds 0 of the 4 vectors" in err and "newsdesk repair" in err
    code, out, err = run_cli(["repair"], capsys)
    assert code == 0 and "4 updated" in out, (out, err)
    again = make_desk()
    assert_whole(again)
    assert again.search("harbour ferry number 13", k=1)[0].title == titles[1]


@pytest.mark.slow
def test_a_new_empty_chroma_server_is_refilled(tmp_path: Path, embedder: Embedder) -> None:
    """NEWSDESK_CHROMA_URL switched to a new, empty server while index/ is kept."""
    exe = chroma_executable()
    if exe is None:
        pytest.skip("the `chroma` executable (shipped with the chromadb package) is missing")
    ports = contextlib.ExitStack()
    old_port, new_port = (ports.enter_context(reserved_port()) for _ in "on")
    old = ChromaProcess(exe, tmp_path / "old-data", tmp_path / "old.log", old_port)
    new = ChromaProcess(exe, tmp_path / "new-data", tmp_path / "new.log", new_port)
    try:
        old.start()
        desk = Desk(settings_for(tmp_path, chroma_url=old.url), embedder=embedder)
        titles = write_stories(tmp_path / "in", 4)
        desk.ingestor.ingest([tmp_path / "in"])
        desk.store.close()
        old.stop()
        new.start()
        moved = Desk(settings_for(tmp_path, chroma_url=new.url), embedder=embedder)
        gap = vector_gap(moved.store)
        assert "holds 0 of the 4 vectors" in gap and old.url in gap and "repair" in gap
        report = moved.ingestor.repair()  # what `newsdesk ingest` and the bot's start do first
        assert len(report.updated) == 4 and vector_gap(moved.store) == ""
        assert_whole(moved)
        assert moved.search("harbour ferry number 13", k=1)[0].title == titles[1]
        assert new.url in (moved.store.get_meta("vector_store") or "")
        moved.store.close()
    finally:
        old.stop()
        new.stop()
        ports.close()


# -- 7. the operator's disk and token ---------------------------------------------------------


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {exc}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


@pytest.mark.slow
def test_full_disk_is_one_line_and_the_next_run_converges(
    tmp_path: Path, embedder: Embedder
) -> None:
    records = [
        {
            "id": f"s{i}",
            "title": f"Story {i}",
            "text": " ".join(f"Fact {i}-{j} holds." for j in range(120)),
        }
        for i in range(60)
    ]
    jsonl = tmp_path / "archive.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    index = tmp_path / "index"
    with tmpfs(index, "600k"):
        result = newsdesk(tmp_path, "ingest", str(jsonl))
        assert result.returncode == 1, result.stderr
        assert "no space left on the device" in result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        subprocess.run(["mount", "-o", "remount,size=64m", str(index)], check=True)
        desk = Desk(settings_for(tmp_path), embedder=embedder)
        desk.ingestor.repair()
        report = desk.ingestor.ingest([jsonl])
        assert report.failed == []
        assert len(desk.store.articles()) == 60
        assert_whole(desk)
        desk.store.close()


@pytest.mark.slow
def test_read_only_index_and_rejected_token_are_one_line(
    make_desk: MakeDesk, tmp_path: Path
) -> None:
    desk = make_desk()
    write_stories(tmp_path / "in", 2)
    desk.ingestor.ingest([tmp_path / "in"])
    desk.store.close()
    new = tmp_path / "new.txt"
    new.write_text("Pier reopens\nThe pier reopened on Monday.\n")
    with _bind_readonly(desk.settings.index_dir):
        result = newsdesk(tmp_path, "ingest", str(new))
    assert result.returncode == 1, result.stderr
    assert "read-only" in result.stderr and "reindex" not in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1

    async def serve_with_a_bad_token() -> subprocess.CompletedProcess[str]:
        async with FakeTelegram() as tg:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "serve",
                cwd=tmp_path,
                env=cli_env(
                    tmp_path,
                    NEWSDESK_TELEGRAM_TOKEN="123:not-the-token",
                    NEWSDESK_TELEGRAM_API_URL=tg.url,
                    NEWSDESK_HEALTH_PORT="0",
                ),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), SUBPROCESS_TIMEOUT)
            return subprocess.CompletedProcess([], proc.returncode or 0, out.decode(), err.decode())

    result = asyncio.run(serve_with_a_bad_token())
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Telegram rejected the bot token")
    assert "Traceback" not in result.stderr and "not-the-token" not in result.stderr


# -- 8. the tokenizer under threads -----------------------------------------------------------


def test_token_counts_and_encodes_from_many_threads(embedder: Embedder) -> None:
    texts = [f"The harbour ferry {i} sailed at dawn. " * (1 + i % 40) for i in range(60)]
    errors: list[BaseException] = []

    def hammer(i: int) -> None:
        try:
            for j in range(25):
                if (i + j) % 3:
                    embedder.count_tokens(texts[(i * 7 + j) % len(texts)])
                else:
                    embedder.encode(texts[j % 5 : j % 5 + 2])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.asyncio(loop_scope="session")
async def test_an_inbox_that_keeps_failing_is_logged_once_and_its_recovery_too(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Questions are looked for four times a second: a full disk must not write a stack
    trace into the log each time."""
    from bot import handoff

    looks: list[int] = []
    recovered = asyncio.Event()

    def full_then_fine(desk: object, questions: bool) -> int:
        looks.append(1)
        if len(looks) <= 20:
            raise OSError(28, "No space left on device")
        if len(looks) >= 22:
            recovered.set()
        return 0

    monkeypatch.setattr(handoff, "process_inbox", full_then_fine)
    stopping = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="bot.handoff"):
        watching = asyncio.create_task(handoff._watch(None, None, 0.001, stopping, True))  # type: ignore[arg-type]
        await asyncio.wait_for(recovered.wait(), SUBPROCESS_TIMEOUT)
        stopping.set()
        await watching
    records = [r for r in caplog.records if r.name == "bot.handoff"]
    assert [r.levelname for r in records] == ["ERROR", "WARNING"], records
    assert records[0].exc_info and "No space left" in str(records[0].exc_info[1])
    assert "processed again" in records[1].getMessage()
