"""Chroma in server mode (NEWSDESK_CHROMA_URL): a real `chroma run` on 127.0.0.1.

Ingest, cited answers, removal and reindex against the server; then the server goes down
(clear IndexUnavailable, nothing half-applied) and comes back (repair and ask recover).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botkit import reserved_port
from conftest import CORPUS, settings_for
from test_answers import check_citations

from bot import cli
from bot.chroma import ChromaServer, parse_chroma_url
from bot.desk import Desk
from bot.embed import Embedder
from bot.errors import IndexUnavailable, NewsdeskError

SEED = "undated/eu-considers-buying-russian-s-400-systems-from-turkey-to-sen-e18afebe.md"
HAJJ = "2006/hundreds-dead-in-hajj-stampede-0bc9dd69.md"
OTHERS = [
    "2015/at-least-107-killed-in-mecca-crane-collapse-e451d624.md",
    "2011/microsoft-waits-for-death-of-internet-explorer-6-cfa84238.md",
]
S400 = "Why would the EU buy Russian S-400 systems from Turkey?"
HARBOUR = """---
title: Harbour board approves floating breakwater
source: Gazette
published: '2024-05-02'
---

The Riverside harbour board approved a 240-metre floating breakwater on Tuesday.
The breakwater will shelter the fishing fleet from winter storms, the board said.
"""


def chroma_executable() -> str | None:
    beside = Path(sys.executable).parent / "chroma"
    return str(beside) if beside.exists() else shutil.which("chroma")


class ChromaProcess:
    """`chroma run` on a fixed data path and a port reserved for it (`reserved_port`: nobody
    else gets it while the server is down), started and stopped on demand."""

    def __init__(self, exe: str, data: Path, log: Path, port: int) -> None:
        self.exe, self.data, self.log = exe, data, log
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [self.exe, "run", "--path", str(self.data)]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120  # a hang guard: it starts in seconds when quiet
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"chroma exited with {self.proc.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"chroma did not answer its heartbeat within 120 s: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaProcess]:
    exe = chroma_executable()
    if exe is None:
        pytest.skip("the `chroma` executable (shipped with the chromadb package) is missing")
    with reserved_port() as port:
        server = ChromaProcess(exe, tmp_path / "chroma-data", tmp_path / "chroma.log", port)
        try:
            server.start()
            yield server
        finally:
            server.stop()


def server_desk(root: Path, url: str, embedder: Embedder) -> Desk:
    return Desk(settings_for(root, chroma_url=url, chroma_retries=2), embedder=embedder)


def assert_in_sync(desk: Desk) -> None:
    """Every chunk row has its vector on the server and no vector lacks a row."""
    rows = {cid for row in desk.store.articles() for cid in desk.store.chunk_ids(row.id)}
    assert rows and desk.store.vector_ids() == rows


@pytest.mark.slow
def test_server_mode_ingest_ask_remove_reindex_outage_and_recovery(
    chroma: ChromaProcess,
    tmp_path: Path,
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "desk"
    for name in [SEED, HAJJ, *OTHERS]:
        (root / "corpus" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CORPUS / name, root / "corpus" / name)
    desk = server_desk(root, chroma.url, embedder)

    # Up: ingest, cited answers, remove, reindex, all against the server.
    report = desk.ingestor.ingest([desk.corpus.root])
    assert not report.failed and len(report.added) == 4
    assert not (root / "index" / "chroma").exists()  # nothing embedded: vectors are served
    assert_in_sync(desk)
    answer = desk.ask(S400)
    assert not answer.abstained
    check_citations(desk, answer)
    assert all("S-400" in c.title for c in answer.citations)

    hajj = desk.ingestor.remove("0bc9dd69")
    assert desk.store.article(hajj.id) is None and not (root / "corpus" / HAJJ).exists()
    assert_in_sync(desk)
    assert all(p.article_id != hajj.id for p in desk.search("Hajj stampede pilgrims"))

    report = desk.ingestor.reindex()  # re-embeds each article in place
    assert not report.failed and len(report.updated) == 3
    assert_in_sync(desk)

    # Down: a clear error naming the server, after a bounded number of quick retries.
    chroma.stop()
    started = time.monotonic()
    with pytest.raises(IndexUnavailable, match=r"not reachable") as caught:
        desk.ask(S400)
    assert chroma.url in str(caught.value) and "NEWSDESK_CHROMA_URL" in str(caught.value)
    assert time.monotonic() - started < 30  # two attempts, not a hang (chroma_retries=2)

    new = root / "harbour.md"
    new.write_text(HARBOUR, encoding="utf-8")
    with pytest.raises(IndexUnavailable, match=chroma.url):
        desk.ingestor.ingest([new])
    (pending,) = desk.store.articles(state="indexing")
    assert pending.title == "Harbour board approves floating breakwater"
    assert Path(pending.path).exists()  # kept in corpus/, the source of truth
    assert desk.store.chunk_ids(pending.id) == []  # no chunk rows without their vectors
    assert desk.store.count_chunks() == sum(r.n_chunks for r in desk.store.articles("ready"))

    # A fresh process while the server is down: SQLite reads work, Chroma calls fail cleanly.
    late = server_desk(root, chroma.url, embedder)
    assert len(late.store.articles()) == 4
    with pytest.raises(IndexUnavailable, match=chroma.url):
        late.search("S-400")

    # The command line shows the message, not a stack trace.
    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setenv("NEWSDESK_CORPUS_DIR", str(root / "corpus"))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(root / "index"))
    monkeypatch.setenv("NEWSDESK_CHROMA_URL", chroma.url)
    monkeypatch.setenv("NEWSDESK_CHROMA_RETRIES", "1")
    with pytest.raises(SystemExit) as exit_code:
        cli.main(["remove", "e18afebe"])
    assert exit_code.value.code == 1
    err = capsys.readouterr().err
    assert f"error: the vector store at {chroma.url} is not reachable" in err
    assert "Traceback" not in err
    assert (root / "corpus" / SEED).exists()  # nothing removed while the index was down

    # Back up on the same data: the same desk and the one created during the outage recover.
    chroma.start()
    report = desk.ingestor.repair()
    assert [a.id for a in report.added + report.updated] == [pending.id]
    row = desk.store.article(pending.id)
    assert row is not None and row.state == "ready" and row.n_chunks > 0
    assert_in_sync(desk)
    answer = late.ask("How long is the breakwater the harbour board approved?")
    assert not answer.abstained
    check_citations(late, answer)
    assert any("240-metre" in c.quote for c in answer.citations)
    check_citations(desk, desk.ask(S400))


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("http://chroma:8000", ChromaServer("http", "chroma", 8000)),
        ("http://chroma", ChromaServer("http", "chroma", 8000)),
        ("chroma:9000", ChromaServer("http", "chroma", 9000)),
        (
            " https://news.example.org/chroma/ ",
            ChromaServer("https", "news.example.org", 443, "/chroma"),
        ),
        ("http://[::1]:8001", ChromaServer("http", "::1", 8001)),
    ],
)
def test_chroma_url_is_parsed(url: str, server: ChromaServer) -> None:
    assert parse_chroma_url(url) == server
    assert parse_chroma_url(server.url) == server


@pytest.mark.parametrize(
    "url", ["ftp://chroma:8000", "http://:8000", "http://chroma:port", "http://u:p@chroma:8000"]
)
def test_bad_chroma_url_is_a_clear_error(url: str) -> None:
    with pytest.raises(NewsdeskError, match="NEWSDESK_CHROMA_URL"):
        parse_chroma_url(url)
