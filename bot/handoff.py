"""Hand-off to the running bot: a CLI write, or a question, while `newsdesk serve` holds index/.

Embedded Chroma is not multi-process safe (the bot would never see another process's vectors:
"Error finding id"), so two processes never both write index/. While the bot runs it holds the
writer lock (bot/lock.py); a CLI `ingest`, `remove`, `reindex` or `repair` then copies its
input files into index/inbox/<note>/, writes index/inbox/<note>.json, and waits for the bot.
The bot looks at the inbox every NEWSDESK_INBOX_INTERVAL seconds, does the work under its own
write lock, and answers with index/inbox/<note>.done.json, which the CLI prints. A question
(`ask`, `search`, `timeline`: bot/reads.py) goes to index/inbox/questions/ instead, which the
bot looks at four times a second on a loop of its own: never behind a long handed-over ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot import private, reads
from bot.desk import Desk
from bot.errors import NewsdeskError, StorageError, storage_problem
from bot.lock import Holder, IndexLock, Say
from bot.models import IngestReport

log = logging.getLogger(__name__)
STALE_RESULTS = 3600.0  # seconds after which an answer nobody collected is deleted
QUESTIONS = "questions"  # index/inbox/questions/: questions, answered beside the writes
# How often the bot looks for questions, at most: someone waits at a shell for the answer, and a
# look at an empty folder is one directory listing. NEWSDESK_INBOX_INTERVAL spaces the writes'.
QUESTION_LOOK = 0.25


@dataclass
class Outcome:
    """What a command printed (line, to stderr) and its exit code."""

    lines: list[tuple[str, bool]] = field(default_factory=list)
    code: int = 0


def report_lines(report: IngestReport) -> list[tuple[str, bool]]:
    lines: list[tuple[str, bool]] = []
    for label, articles in (("added", report.added), ("updated", report.updated)):
        for a in articles:
            chunks = report.chunks.get(a.id, 0)
            lines.append((f"{label:9} {a.id}  {a.title[:70]}  ({chunks} chunks)", False))
    lines += [(f"failed    {name}: {reason}", True) for name, reason in report.failed]
    lines += [(f"note      {name}: {note}", True) for name, note in report.notes]
    lines.append(
        (
            f"{len(report.added)} added, {len(report.unchanged)} unchanged, "
            f"{len(report.updated)} updated, {len(report.failed)} failed",
            False,
        )
    )
    return lines


def report_outcome(report: IngestReport) -> Outcome:
    return Outcome(report_lines(report), 1 if report.failed else 0)


# -- the CLI side ----------------------------------------------------------------------------


def hand_off(desk: Desk, bot: Holder, note: dict[str, Any], say: Say) -> Outcome | None:
    """Queue `note` for the bot and wait for its answer (None: not answered in time)."""
    question = note["command"] in reads.COMMANDS
    inbox = _inbox(desk, question)
    name = f"{time.time_ns()}-{os.getpid()}"
    try:
        private.private_dir(inbox)
        if note["command"] == "ingest":
            note["items"], note["names"] = _stage(desk, inbox / name, note["items"])
        _write_json(inbox / f"{name}.json", note)
    except OSError as exc:
        raise StorageError(f"cannot hand over to the bot: {storage_problem(exc) or exc}") from exc
    if question:
        say(f"asking {bot}, which has {desk.settings.index_dir} open …")
    else:
        say(
            f"{bot} runs on {desk.settings.index_dir}: handed over to it as {inbox / name}.json;"
            " waiting for it …"
        )
    done = inbox / f"{name}.done.json"
    deadline = time.monotonic() + desk.settings.lock_timeout
    while time.monotonic() < deadline:
        if done.exists():
            data = json.loads(done.read_text(encoding="utf-8"))
            done.unlink(missing_ok=True)
            return Outcome([(str(t), bool(e)) for t, e in data["lines"]], int(data["code"]))
        time.sleep(0.2)
    if question:  # a question nobody waits for is withdrawn; handed-over work goes on
        (inbox / f"{name}.json").unlink(missing_ok=True)
    return None


def _stage(desk: Desk, folder: Path, items: list[str]) -> tuple[list[str], dict[str, str]]:
    """Copy local inputs where the bot can read them, even after this command ends."""
    staged: list[str] = []
    names: dict[str, str] = {}
    for i, item in enumerate(items):
        path = Path(item)
        if item.startswith(("http://", "https://")) or not path.exists():
            staged.append(item)  # URLs are fetched by the bot; a missing path is reported
            continue
        if desk.corpus.contains(path):
            staged.append(str(path.resolve()))  # already in corpus/: indexed where it is
            continue
        target = folder / str(i) / path.resolve().name
        private.private_dir(target.parent)
        if path.is_dir():
            shutil.copytree(path, target)
        else:
            shutil.copy2(path, target)
        staged.append(str(target))
        names[str(target)] = item
    return staged, names


# -- the bot side ----------------------------------------------------------------------------


def _inbox(desk: Desk, questions: bool) -> Path:
    inbox = desk.settings.index_dir / "inbox"
    return inbox / QUESTIONS if questions else inbox


def process_inbox(desk: Desk, questions: bool = False) -> int:
    """Do every queued note (the writes, or the questions), oldest first; how many were done."""
    inbox = _inbox(desk, questions)
    if not inbox.is_dir():
        return 0
    notes = sorted(p for p in inbox.glob("*.json") if not p.name.endswith(".done.json"))
    for path in notes:
        try:
            note = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("unreadable hand-off note %s (%s): skipped", path, exc)
            path.rename(path.with_suffix(".bad"))
            continue
        log.info("handed over by the command line: %s", note.get("command"))
        if questions:  # read only, beside the bot's own writes: nothing else is done from here
            outcome = (
                run_note(desk, note)
                if note.get("command") in reads.COMMANDS
                else Outcome([("error: only questions go to the questions' inbox", True)], 1)
            )
        else:
            with desk.write_lock:
                outcome = run_note(desk, note)
        _write_json(path.with_suffix(".done.json"), {"lines": outcome.lines, "code": outcome.code})
        path.unlink(missing_ok=True)
        shutil.rmtree(path.with_suffix(""), ignore_errors=True)
    for old in inbox.glob("*.done.json"):
        with contextlib.suppress(OSError):
            if time.time() - old.stat().st_mtime > STALE_RESULTS:
                old.unlink()
    return len(notes)


def run_note(desk: Desk, note: dict[str, Any]) -> Outcome:
    """One CLI command, done by the bot."""
    ingestor = desk.ingestor
    command = note.get("command")
    try:
        if command == "ingest":
            report = ingestor.ingest([str(i) for i in note.get("items", [])])
            names = note.get("names", {})
            report.failed = [(_original(n, names), r) for n, r in report.failed]
            return report_outcome(report)
        if command in reads.COMMANDS:
            return Outcome([(reads.run(desk, note), False)])
        if command == "remove":
            article = ingestor.remove(str(note.get("id", "")))
            return Outcome([(f"removed {article.id}  {article.title}", False)])
        if command == "reindex":
            return report_outcome(ingestor.reindex())
        if command == "repair":
            return report_outcome(ingestor.repair(prune=bool(note.get("prune"))))
        if command == "feeds-poll":
            from bot.feeds_cli import poll_now, result_lines

            feed_id = note.get("id")
            results = poll_now(desk, int(feed_id) if feed_id is not None else None)
            return Outcome(result_lines(results), int(any(r.error for r in results)))
        return Outcome([(f"error: the bot does not know the command {command!r}", True)], 1)
    except NewsdeskError as exc:
        return Outcome([(f"error: {exc}", True)], 1)
    except Exception:
        log.exception("a command handed over by the command line failed")
        return Outcome([("error: internal error in the bot, see its log", True)], 70)


def _original(name: str, names: dict[str, str]) -> str:
    for staged, original in names.items():
        if name == staged or name.startswith(staged + os.sep):
            return original + name[len(staged) :]
    return name


def _write_json(path: Path, data: object) -> None:
    private.write_text(path, json.dumps(data, ensure_ascii=False))


@dataclass
class Watcher:
    """The running bot's side of the hand-off: the inbox task and the writer lock it holds."""

    task: asyncio.Task[None]
    questions: asyncio.Task[None]
    stopping: asyncio.Event
    lock: IndexLock | None  # None: another Application in this process holds it


async def start(desk: Desk, writer: Executor) -> Watcher:
    """At bot start-up: take index/'s writer lock; then, in the background once the desk has
    loaded, repair and watch the inbox. The bot answers meanwhile (questions only read). The
    work runs on the bot's writer thread, one write at a time with uploads."""
    s = desk.settings
    shared = await asyncio.to_thread(
        desk.index_lock.acquire, "serve", s.lock_timeout, log.warning, True
    )
    stopping = asyncio.Event()
    task = asyncio.create_task(_repair_then_watch(desk, writer, s.inbox_interval, stopping))
    look = min(s.inbox_interval, QUESTION_LOOK)
    questions = asyncio.create_task(_answer_questions(desk, look, stopping))
    return Watcher(task, questions, stopping, None if shared else desk.index_lock)


async def _repair_then_watch(
    desk: Desk, writer: Executor, interval: float, stopping: asyncio.Event
) -> None:
    with contextlib.suppress(Exception):  # a failed load is logged, and told to each asker
        await asyncio.wrap_future(desk.loading())
    if stopping.is_set():
        return

    def repair() -> IngestReport:
        with desk.write_lock:
            return desk.ingestor.repair()

    try:
        report = await asyncio.get_running_loop().run_in_executor(writer, repair)
    except NewsdeskError as exc:
        log.error("start-up repair failed: %s", exc)
    except Exception:
        log.exception("start-up repair failed")
    else:
        for name, reason in report.failed:
            log.warning("start-up repair: %s failed: %s", name, reason)
    # Even after a failure: a `newsdesk reindex` handed over by the operator is the cure.
    await _watch(desk, writer, interval, stopping)


async def _answer_questions(desk: Desk, interval: float, stopping: asyncio.Event) -> None:
    """Questions from a shell, on threads of their own (they read, as a journalist's do)."""
    with contextlib.suppress(Exception):
        await asyncio.wrap_future(desk.loading())
    await _watch(desk, None, interval, stopping, questions=True)


async def stop(watcher: Watcher) -> None:
    """At shutdown: let a hand-off in progress finish, then release the lock."""
    watcher.stopping.set()
    await asyncio.gather(watcher.task, watcher.questions)
    if watcher.lock is not None:
        watcher.lock.release()


async def _watch(
    desk: Desk,
    executor: Executor | None,
    interval: float,
    stopping: asyncio.Event,
    questions: bool = False,
) -> None:
    failing = ""  # the failure last logged: a full disk is not logged four times a second
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=interval)
        if stopping.is_set():
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(executor, process_inbox, desk, questions)
        except Exception as exc:
            if repr(exc) != failing:
                log.exception("the hand-off inbox could not be processed (logged once)")
            failing = repr(exc)
        else:
            if failing:
                log.warning("the hand-off inbox is processed again")
            failing = ""
