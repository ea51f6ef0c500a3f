"""Crash safety: a real `newsdesk ingest` killed with SIGKILL at random points, then repaired.

Each trial runs the real CLI (`newsdesk ingest articles.jsonl`, in a fresh Python process) in
its own folders and kills it at a seeded random moment: one while it starts up, the others
while it writes corpus files, manifest rows, vectors and chunks. The folders are then
repaired in this process and must hold a consistent index (no orphans, no duplicates, every
corpus file indexed and ready); a last complete ingest must then hold every input article
exactly once. A second test stops an ingest at each write step exactly.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import settings_for

from bot.corpus import content_hash
from bot.desk import Desk
from bot.embed import Embedder

N_ARTICLES = 40
SEED = 20250314
WRITING_KILLS = 6  # kills that must land while the ingest is writing
MAX_TRIALS = 12
WORKERS = 2  # subprocesses at once: each spends most of its life importing torch
TIMEOUT = 300.0  # seconds for a subprocess to reach a point: usually ~5 s, 60+ when loaded
# `python -m bot ingest FILE`, with embedding batches of 8 chunks instead of 512 so that corpus
# writes, manifest rows, vectors and chunk rows interleave as they do in a large ingest.
INGEST = (
    "import sys, bot.batch, bot.cli; bot.batch.FLUSH_CHUNKS = 8; "
    "bot.cli.main(['ingest', sys.argv[1]])"
)

WORDS = (  # noqa: SIM905
    "harbour council budget bridge ferry strike school library election mayor river flood "
    "storm rail station museum festival hospital police court market tunnel airport"
).split()


def articles() -> list[dict[str, object]]:
    """Small articles (every eighth a few chunks long) with explicit ids, URLs, or neither."""
    rnd = random.Random(SEED)
    records: list[dict[str, object]] = []
    for i in range(N_ARTICLES):
        a, b, c = rnd.sample(WORDS, 3)
        sentences = 60 if i % 8 == 0 else rnd.randint(2, 6)
        text = " ".join(
            f"The {a} report {i} notes {b} and {c} figure {i * 7 + j} in paragraph {j}."
            for j in range(sentences)
        )
        record: dict[str, object] = {
            "title": f"Report {i}: {a} and {b}",
            "text": text,
            "source": ("Wire", "Port Herald", "Gazette")[i % 3],
            "published": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
        }
        if i % 3 == 0:
            record["id"] = f"wire-{i}"
        elif i % 3 == 1:
            record["url"] = f"https://example.org/news/{i}"
        records.append(record)
    return records


@dataclass
class Trial:
    """One subprocess and when it was killed: `delay` s into 'startup' or into 'writing'."""

    root: Path
    phase: str
    delay: float
    returncode: int | None = None
    before: dict[str, int] = field(default_factory=dict)

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def db(self) -> Path:
        return self.root / "index" / "newsdesk.db"

    @property
    def partial(self) -> bool:
        """Killed mid-write: some work on disk, and not all of it finished."""
        started = self.before.get("files", 0) + self.before.get("rows", 0) > 0
        return started and self.before.get("ready", 0) < N_ARTICLES


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")}
    env.update(
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",  # two of these share a small machine
        NEWSDESK_CORPUS_DIR=str(root / "corpus"),
        NEWSDESK_INDEX_DIR=str(root / "index"),
    )
    return env


def _start(root: Path, jsonl: Path) -> subprocess.Popen[bytes]:
    root.mkdir(parents=True, exist_ok=True)
    log = (root / "ingest.log").open("wb")
    try:
        return subprocess.Popen(
            [sys.executable, "-c", INGEST, str(jsonl)],
            cwd=root,  # no stray .env
            env=_env(root),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()


def _wait_for(check: Callable[[], bool], proc: subprocess.Popen[bytes]) -> float:
    """Poll until `check()` holds (or the process ended); the moment it did."""
    deadline = time.monotonic() + TIMEOUT
    while not check() and proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"ingest made no progress in {TIMEOUT:g} s")
        time.sleep(0.005)
    return time.monotonic()


def _ready_count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as con:
            return int(
                con.execute("SELECT count(*) FROM articles WHERE state='ready'").fetchone()[0]
            )
    except sqlite3.Error:
        return 0


def calibrate(root: Path, jsonl: Path) -> dict[str, float]:
    """A complete run: when the index opens, writing starts, and the last article is ready."""
    proc = _start(root, jsonl)
    started = time.monotonic()
    trial = Trial(root, "complete", 0.0)
    opened = _wait_for(trial.db.exists, proc)
    writing = _wait_for(trial.corpus.exists, proc)
    ready = _wait_for(lambda: _ready_count(trial.db) == N_ARTICLES, proc)
    assert proc.wait(timeout=TIMEOUT) == 0, (root / "ingest.log").read_text(errors="replace")
    return {"open": opened - started, "write_start": writing - opened, "write": ready - writing}


def run_trial(trial: Trial, jsonl: Path) -> Trial:
    proc = _start(trial.root, jsonl)
    try:
        if trial.phase == "writing":
            _wait_for(trial.corpus.exists, proc)  # the first article file is being written
        time.sleep(trial.delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        trial.returncode = proc.wait(timeout=TIMEOUT)
    log = (trial.root / "ingest.log").read_text(errors="replace")
    assert trial.returncode in (0, -signal.SIGKILL), f"ingest failed:\n{log[-3000:]}"
    return trial


def snapshot(desk: Desk) -> dict[str, int]:
    """What the killed process left, before repair touches it."""
    rows = desk.store.articles()
    chunk_ids = {c for r in rows for c in desk.store.chunk_ids(r.id)}
    return {
        "files": sum(1 for _ in desk.corpus.paths()),
        "rows": len(rows),
        "ready": sum(r.state == "ready" for r in rows),
        "indexing": sum(r.state == "indexing" for r in rows),
        "unindexed": len({str(p) for p in desk.corpus.paths()} - {r.path for r in rows}),
        "orphans": len(desk.store.vector_ids() - chunk_ids),
    }


def check_consistent(desk: Desk) -> None:
    """Index and corpus agree: each file indexed once and ready, no orphans, no duplicates."""
    store, corpus = desk.store, desk.corpus
    rows = store.articles()
    files = {str(p): corpus.read(p) for p in corpus.paths()}
    assert [r.state for r in rows if r.state != "ready"] == []
    assert [i for i, n in Counter(a.id for a in files.values()).items() if n > 1] == []
    assert [t for t, n in Counter(r.title for r in rows).items() if n > 1] == []
    assert {r.path for r in rows} == set(files), "index entries and corpus files differ"
    all_chunks: list[str] = []
    for row in rows:
        article = files[row.path]
        assert (article.id, content_hash(article)) == (row.id, row.content_hash)
        ids = store.chunk_ids(row.id)
        assert len(ids) == row.n_chunks > 0
        all_chunks += ids
    assert len(all_chunks) == len(set(all_chunks)) == store.count_chunks()
    got = store.collection.get(include=["metadatas"])
    assert sorted(got["ids"]) == sorted(all_chunks), "Chroma ids != SQLite chunk ids"
    owners = dict(store.db.execute("SELECT id, article_id FROM chunks").fetchall())
    assert {i: m["article_id"] for i, m in zip(got["ids"], got["metadatas"], strict=True)} == owners
    fts = [
        r[0]
        for r in store.db.execute(
            "SELECT chunk_id FROM chunks_fts UNION ALL SELECT chunk_id FROM chunks_fts_intl"
        )
    ]
    assert sorted(fts) == sorted(all_chunks), "keyword index rows != chunks"
    sentences = [r[0] for r in store.db.execute("SELECT chunk_id FROM sentence_vectors")]
    assert sorted(sentences) == sorted(all_chunks), "sentence vectors != chunks"


def verify(trial: Trial, jsonl: Path, embedder: Embedder, titles: set[str]) -> None:
    desk = Desk(settings_for(trial.root), embedder=embedder)
    try:
        trial.before = snapshot(desk)
        # Sentence vectors are committed with their chunk rows: a kill never leaves them alone.
        sentences = {r[0] for r in desk.store.db.execute("SELECT chunk_id FROM sentence_vectors")}
        assert sentences <= desk.store.all_chunk_ids()
        desk.ingestor.repair()
        check_consistent(desk)
        report = desk.ingestor.ingest([jsonl])
        assert report.failed == []
        check_consistent(desk)
        assert sorted(r.title for r in desk.store.articles()) == sorted(titles)
        assert len(report.added) + len(report.unchanged) + len(report.updated) == N_ARTICLES
    finally:
        desk.store.close()


@pytest.mark.slow
def test_killed_ingest_is_repaired(tmp_path: Path, embedder: Embedder) -> None:
    records = articles()
    titles = {str(r["title"]) for r in records}
    jsonl = tmp_path / "articles.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    # Two complete runs side by side, as the trials run: when does each phase happen?
    with ThreadPoolExecutor(WORKERS) as pool:
        runs = list(pool.map(lambda i: calibrate(tmp_path / f"full{i}", jsonl), range(WORKERS)))
    timing = {key: max(run[key] for run in runs) for key in runs[0]}
    for i in range(WORKERS):
        verify(Trial(tmp_path / f"full{i}", "complete", 0.0), jsonl, embedder, titles)

    rnd = random.Random(SEED)
    verifying = threading.Lock()  # one repair at a time, beside the other worker's ingest

    def trial_and_repair(trial: Trial) -> Trial:
        run_trial(trial, jsonl)
        with verifying:
            verify(trial, jsonl, embedder, titles)
        return trial

    # One kill while the process starts (imports, model, opening the index), then kills
    # spread over the writing, until enough of them caught the ingest half-way. A kill that
    # came too late (all ready: this machine got faster) shortens the window for the next ones.
    window = 0.85 * timing["write"]
    plan = [("startup", rnd.uniform(0.2, timing["open"] + timing["write_start"]))]
    trials: list[Trial] = []
    while sum(t.partial for t in trials) < WRITING_KILLS and len(trials) < MAX_TRIALS:
        plan += [("writing", rnd.uniform(0.0, window)) for _ in range(WORKERS - len(plan))]
        batch = [Trial(tmp_path / f"t{len(trials) + i}", p, d) for i, (p, d) in enumerate(plan)]
        plan = []
        with ThreadPoolExecutor(WORKERS) as pool:
            trials += pool.map(trial_and_repair, batch)
        if any(t.phase == "writing" and t.before["ready"] == N_ARTICLES for t in batch):
            window *= 0.7

    summary = "\n".join(
        f"{t.root.name:4} {t.phase:8} {t.delay:5.2f}s rc={t.returncode} {t.before}" for t in trials
    )
    print(f"timing {timing}\n{summary}")
    assert sum(t.partial for t in trials) >= WRITING_KILLS, summary
    # The kills landed at different stages: with some articles ready and others not yet.
    partial = [t.before for t in trials if t.partial]
    assert any(0 < b["ready"] < b["rows"] for b in partial), summary
    assert any(b["rows"] < N_ARTICLES for b in partial), summary


class Crash(BaseException):
    """Stands for SIGKILL at one exact point (not an Exception: nothing may catch it)."""


# Where the process dies: (object, method, before or after the call, on which call), and
# what the next process finds.
CRASH_POINTS = {
    "corpus file written, no manifest row": ("store", "begin_article", "before", 3, "unindexed"),
    "manifest row, no vectors": ("embedder", "encode_passages", "before", 1, "indexing"),
    "vectors stored, chunk rows not committed": ("collection", "upsert", "after", 3, "orphans"),
    "update: old chunks gone, new vectors without rows": (
        "collection",
        "upsert",
        "after",
        1,
        "orphans",
    ),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_crash_at_each_write_step_is_repaired(
    point: str, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The windows too narrow for a random kill, hit exactly: the next run repairs them."""
    records = articles()[:6]
    jsonl = tmp_path / "articles.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    desk = Desk(settings_for(tmp_path), embedder=embedder)
    if point.startswith("update"):
        desk.ingestor.ingest([jsonl])
        records[0]["text"] = "The story changed: the bridge opens in May, not in June."
        jsonl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    owner_name, method, when, nth, found = CRASH_POINTS[point]
    owner = {"store": desk.store, "embedder": embedder, "collection": desk.store.collection}
    original = getattr(owner[owner_name], method)
    calls = 0

    def dying(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == nth and when == "before":
            raise Crash(point)
        result = original(*args, **kwargs)
        if calls == nth:
            raise Crash(point)
        return result

    monkeypatch.setattr(owner[owner_name], method, dying)
    monkeypatch.setattr("bot.batch.FLUSH_CHUNKS", 1)  # one article per batch
    with pytest.raises(Crash):
        desk.ingestor.ingest([jsonl])
    monkeypatch.undo()
    desk.store.close()

    again = Desk(settings_for(tmp_path), embedder=embedder)  # the next process
    before = snapshot(again)
    assert before[found] > 0, before
    again.ingestor.repair()
    check_consistent(again)
    report = again.ingestor.ingest([jsonl])
    assert report.failed == []
    check_consistent(again)
    assert sorted(r.title for r in again.store.articles()) == sorted(
        str(r["title"]) for r in records
    )
    if point.startswith("update"):
        (row,) = [r for r in again.store.articles() if r.title == records[0]["title"]]
        assert "opens in May" in Path(row.path).read_text(encoding="utf-8")


# -- remove and reindex ---------------------------------------------------------------------

# `newsdesk remove ID` / `newsdesk reindex` with small embedding batches, as INGEST above.
COMMAND = "import sys, bot.batch, bot.cli; bot.batch.FLUSH_CHUNKS = 8; bot.cli.main(sys.argv[1:])"


def _states(db: Path) -> Counter[str]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as con:
            return Counter(dict(con.execute("SELECT state, count(*) FROM articles GROUP BY state")))
    except sqlite3.Error:
        return Counter()


def kill_during(root: Path, args: list[str], started: Callable[[], bool], delay: float) -> int:
    """Run `newsdesk ARGS` in root; SIGKILL it `delay` s after `started()` first holds."""
    log = (root / "run.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", COMMAND, *args],
        cwd=root,
        env=_env(root),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        _wait_for(started, proc)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        code = proc.wait(timeout=TIMEOUT)
    assert code in (0, -signal.SIGKILL), (root / "run.log").read_text(errors="replace")[-3000:]
    return code


@pytest.mark.slow
def test_killed_remove_and_reindex_are_repaired(tmp_path: Path, embedder: Embedder) -> None:
    """SIGKILL a real `newsdesk reindex` mid-way and a real `newsdesk remove` right after it
    hid the article: repair leaves every other article whole and the removed one gone."""
    records = articles()
    jsonl = tmp_path / "articles.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    rnd = random.Random(SEED)
    plans = [("reindex", rnd.uniform(0.0, 1.5)), ("remove", 0.0)]
    for i in range(len(plans)):
        desk = Desk(settings_for(tmp_path / f"k{i}"), embedder=embedder)
        desk.ingestor.ingest([jsonl])
        victim = desk.store.articles()[5]  # the same article (ids are stable) in each copy
        desk.store.close()

    def trial(i: int) -> tuple[str, float, int, Counter[str]]:
        command, delay = plans[i]
        root = tmp_path / f"k{i}"
        db = root / "index" / "newsdesk.db"
        if command == "reindex":
            code = kill_during(root, ["reindex"], lambda: _states(db)["indexing"] > 0, delay)
        else:
            hidden = lambda: _states(db)["removing"] > 0 or _states(db)["ready"] < N_ARTICLES  # noqa: E731
            code = kill_during(root, ["remove", victim.id], hidden, delay)
        return command, delay, code, _states(db)

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(trial, range(len(plans))))
    titles = sorted(str(r["title"]) for r in records)
    for i, (command, delay, code, before) in enumerate(results):
        again = Desk(settings_for(tmp_path / f"k{i}"), embedder=embedder)
        try:
            again.ingestor.repair()
            check_consistent(again)
            got = sorted(r.title for r in again.store.articles())
            if command == "reindex":
                assert got == titles, (command, delay, code, before)
            else:  # hidden at the kill: the takedown finishes, never comes back
                assert got == [t for t in titles if t != victim.title], (delay, code, before)
                assert not list(again.corpus.root.rglob(Path(victim.path).name))
        finally:
            again.store.close()
    print(results)


# Where a remove or a reindex dies, exactly: (object, method, before/after, on which call).
STEP_CRASHES = {
    "remove: hidden, file still there": ("remove", "corpus", "delete", "before", 1),
    "remove: file gone, index entry left": ("remove", "store", "delete_article", "before", 1),
    "reindex: some articles re-embedded": ("reindex", "collection", "upsert", "after", 3),
}


@pytest.mark.parametrize("point", list(STEP_CRASHES))
def test_remove_and_reindex_crash_at_each_step(
    point: str, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = articles()[:6]
    jsonl = tmp_path / "articles.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    desk = Desk(settings_for(tmp_path), embedder=embedder)
    desk.ingestor.ingest([jsonl])
    victim = desk.store.articles()[2]
    command, owner_name, method, when, nth = STEP_CRASHES[point]
    owner = {"store": desk.store, "corpus": desk.corpus, "collection": desk.store.collection}
    original = getattr(owner[owner_name], method)
    calls = 0

    def dying(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == nth and when == "before":
            raise Crash(point)
        result = original(*args, **kwargs)
        if calls == nth:
            raise Crash(point)
        return result

    monkeypatch.setattr(owner[owner_name], method, dying)
    monkeypatch.setattr("bot.batch.FLUSH_CHUNKS", 1)
    with pytest.raises(Crash):
        if command == "remove":
            desk.ingestor.remove(victim.id)
        else:
            desk.ingestor.reindex()
    if command == "remove":  # hidden from the moment the remove began
        assert all(p.article_id != victim.id for p in desk.search(victim.title, k=10))
    monkeypatch.undo()
    desk.store.close()

    again = Desk(settings_for(tmp_path), embedder=embedder)
    again.ingestor.repair()
    check_consistent(again)
    titles = sorted(str(r["title"]) for r in records)
    if command == "remove":
        titles.remove(victim.title)
        assert not Path(victim.path).exists()
    assert sorted(r.title for r in again.store.articles()) == titles
