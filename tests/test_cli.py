"""The `newsdesk` command: JSON contracts, exit codes, messages without stack traces."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from conftest import run_cli, settings_for

from bot.desk import Desk


@pytest.fixture
def on_seeded(seeded: Desk, monkeypatch: pytest.MonkeyPatch) -> Desk:
    monkeypatch.setenv("NEWSDESK_CORPUS_DIR", str(seeded.settings.corpus_dir))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(seeded.settings.index_dir))
    return seeded


@pytest.fixture
def on_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSDESK_CORPUS_DIR", str(tmp_path / "corpus"))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(tmp_path / "index"))
    return tmp_path


def test_ask_json_contract(on_seeded: Desk, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["ask", "How much did Turkey pay for the S-400?", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"question", "abstained", "answer", "citations", "sources", "latency_ms"}
    assert data["abstained"] is False and data["citations"]
    for c in data["citations"]:
        assert set(c) == {
            "n",
            "article_id",
            "title",
            "source",
            "published",
            "url",
            "quote",
            "start",
            "end",
        }
        row = on_seeded.store.article(c["article_id"])
        assert row is not None
        text = on_seeded.corpus.read(Path(row.path)).text
        assert text[c["start"] : c["end"]] == c["quote"]
        assert c["quote"] in Path(row.path).read_text(encoding="utf-8")
        assert f"[{c['n']}]" in data["answer"]


def test_ask_text_and_abstention(on_seeded: Desk, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["ask", "What did Thomas Barak urge Turkey to do?"], capsys)
    assert code == 0 and "[1]" in out and "Sources:" in out and "abandon the S-400" in out
    code, out, _ = run_cli(
        ["ask", "What is the best recipe for sourdough bread?", "--json"], capsys
    )
    data = json.loads(out)
    assert code == 0 and data["abstained"] is True and data["citations"] == []
    assert data["sources"]  # the nearest articles are still listed


def test_eval_contract(on_seeded: Desk, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"id": "a", "question": "How many pilgrims died in the Hajj stampede?", '
        '"date": "2006-01-13"}\n{"id": "b", "question": "Best sourdough recipe?"}\n',
        encoding="utf-8",
    )
    results = tmp_path / "r.jsonl"
    code, out, _ = run_cli(["eval", str(questions), "--out", str(results)], capsys)
    assert code == 0 and "2 questions: 1 answered, 1 abstained" in out
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["a", "b"]
    for line in lines:
        assert set(line) == {"id", "abstained", "answer", "citations", "latency_ms"}
    assert not lines[0]["abstained"] and any("345" in c["quote"] for c in lines[0]["citations"])
    assert set(lines[0]["citations"][0]) == {"n", "article_id", "url", "title", "quote"}
    assert lines[1]["abstained"] and lines[1]["citations"] == []


def test_ingest_docs_stats_remove_and_exit_codes(
    on_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = on_tmp / "story.txt"
    good.write_text("Pier reopens\nThe pier reopened on Monday after storm repairs.\n")
    empty = on_tmp / "empty.txt"
    empty.write_text("")
    code, out, err = run_cli(["ingest", str(good), str(empty)], capsys)
    assert code == 1
    assert "1 added, 0 unchanged, 0 updated, 1 failed" in out
    assert "empty.txt: file is empty" in err and "Traceback" not in err
    code, out, _ = run_cli(["ingest", str(good)], capsys)
    assert code == 0 and "0 added, 1 unchanged, 0 updated, 0 failed" in out
    code, out, _ = run_cli(["docs"], capsys)
    assert code == 0 and "Pier reopens" in out and "1 articles" in out
    article_id = out.split()[0]
    # A takedown a crash interrupted hides the article from listings at once.
    desk = Desk(settings_for(on_tmp))
    desk.store.mark([article_id], "removing")
    code, out, _ = run_cli(["docs"], capsys)
    assert code == 0 and "Pier reopens" not in out and "0 articles" in out
    desk.store.mark([article_id], "ready")
    code, out, _ = run_cli(["stats", "--json"], capsys)
    assert code == 0 and json.loads(out)["articles"] == 1 and json.loads(out)["chunks"] == 1
    code, out, err = run_cli(["remove", "ffffffff"], capsys)
    assert code == 1 and "no article with id 'ffffffff'" in err and "Traceback" not in err
    code, out, _ = run_cli(["remove", article_id], capsys)
    assert code == 0 and "removed" in out
    assert list((on_tmp / "corpus").rglob("*.md")) == []


def test_user_errors_are_one_line(on_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["ask", "anything", "--since", "last week"], capsys)
    assert code == 2 and "not a date" in err and "Traceback" not in err
    # An empty index beside a non-empty corpus says how to rebuild it.
    corpus = on_tmp / "corpus" / "undated"
    corpus.mkdir(parents=True)
    (corpus / "a.md").write_text("---\ntitle: A\n---\n\nSome text.\n")
    code, _, err = run_cli(["ask", "anything"], capsys)
    assert code == 1 and "newsdesk reindex" in err and "Traceback" not in err
    code, out, _ = run_cli(["reindex"], capsys)
    assert code == 0 and "1 added" in out
    code, _, err = run_cli(
        ["eval", str(on_tmp / "missing.jsonl"), "--out", str(on_tmp / "o")], capsys
    )
    assert code == 1 and "cannot read" in err


def test_first_ingest_of_the_corpus_reports_what_it_added(
    on_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = on_tmp / "corpus" / "undated"
    corpus.mkdir(parents=True)
    for name in ("a", "b"):
        (corpus / f"{name}.md").write_text(f"---\ntitle: {name}\n---\n\nText {name}.\n")
    code, out, _ = run_cli(["ingest", str(on_tmp / "corpus")], capsys)
    assert code == 0 and "2 added, 0 unchanged, 0 updated, 0 failed" in out
    code, out, _ = run_cli(["ingest", str(on_tmp / "corpus")], capsys)
    assert code == 0 and "0 added, 2 unchanged, 0 updated, 0 failed" in out


def test_a_bad_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEWSDESK_ADMINS", "abc")
    monkeypatch.setenv("NEWSDESK_FETCH_ALLOWED_NETWORKS", "10.0.0.0/33")
    code, _, err = run_cli(["stats"], capsys)
    assert code == 1
    assert err.startswith("error: bad setting "), err
    assert "NEWSDESK_ADMINS: invalid literal for int() with base 10: 'abc'" in err, err
    assert "NEWSDESK_FETCH_ALLOWED_NETWORKS: '10.0.0.0/33' does not appear" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_a_webhook_port_in_use_stops_serve_with_one_line(
    on_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEWSDESK_TELEGRAM_TOKEN", "123456:fake-token-for-a-port-test")
    with socket.create_server(("127.0.0.1", 0)) as taken:  # another program holds the port
        port = taken.getsockname()[1]
        code, _, err = run_cli(
            ["serve", "--webhook-url", "https://news.example/telegram",
             "--listen", f"127.0.0.1:{port}"],
            capsys,
        )  # fmt: skip
    assert code == 1 and f"cannot listen on 127.0.0.1:{port}" in err, err
    assert "Traceback" not in err and "fake-token" not in err
