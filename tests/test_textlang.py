"""Text in many languages: article language, sentence splitting, the keyword index, questions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.language import article_language, code_of
from bot.models import Article
from tests.articles_intl import ARTICLES
from tests.conftest import MakeDesk, run_cli

# -- article language ------------------------------------------------------------------------


def test_declared_languages_are_read_as_codes() -> None:
    assert code_of("en-GB") == "en"
    assert code_of(" RU ") == "ru"
    assert code_of("uk_UA") == "uk"
    assert code_of("tur") == "tr"
    assert code_of("Türkçe") == "tr"
    assert code_of("Ukrainian") == "uk"
    assert code_of("deu") == "de"
    for nothing in ("", "und", "xx-foo", "Klingonish", "<script>", "e" * 40):
        assert code_of(nothing) == "", nothing


@pytest.mark.parametrize("code", sorted(ARTICLES))
def test_undeclared_article_language_is_detected(code: str) -> None:
    title, text = ARTICLES[code]
    assert article_language("", title, text) == code
    # A declared language wins over the text, even when it looks wrong to the model.
    assert article_language("pl", title, text) == "pl"
    # An unknown declaration is no declaration.
    assert article_language("xx-foo", title, text) == code


def test_text_without_letters_has_no_language() -> None:
    assert article_language("", "2025", "12 345 — 67,8 %") == ""


def test_ingest_stores_every_articles_language(
    make_desk: MakeDesk,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    desk = make_desk()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for code, (title, text) in ARTICLES.items():
        (inbox / f"{code}.md").write_text(f"# {title}\n\n{text}\n", encoding="utf-8")
    lines = [
        {"title": "Declared", "text": ARTICLES["ru"][1], "lang": "uk-UA"},
        {"title": "Declared too", "text": ARTICLES["de"][1], "language": "German"},
    ]
    (inbox / "wire.jsonl").write_text(
        "\n".join(json.dumps(line, ensure_ascii=False) for line in lines), encoding="utf-8"
    )
    report = desk.ingestor.ingest([inbox])
    assert not report.failed
    by_title = {a.title: desk.store.article(a.id) for a in report.added}
    for code, (title, _) in ARTICLES.items():
        row = by_title[title]
        assert row is not None and row.language == code
        # Saved with the article: the corpus file says it, so a reindex does not guess again.
        assert f"language: {code}" in Path(row.path).read_text(encoding="utf-8")
    assert by_title["Declared"].language == "uk"  # type: ignore[union-attr]
    assert by_title["Declared too"].language == "de"  # type: ignore[union-attr]
    # Unchanged on a second run: the detected language does not make the article look new.
    again = desk.ingestor.ingest([inbox])
    assert len(again.unchanged) == len(report.added) and not again.updated

    monkeypatch.setenv("NEWSDESK_CORPUS_DIR", str(tmp_path / "corpus"))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(tmp_path / "index"))
    desk.store.close()
    code, out, _ = run_cli(["docs", "--json"], capsys)
    assert code == 0
    listed = {d["title"]: d["language"] for d in json.loads(out)}
    assert listed[ARTICLES["tr"][0]] == "tr" and listed["Declared"] == "uk"
    code, out, _ = run_cli(["docs"], capsys)
    line = next(x for x in out.splitlines() if ARTICLES["uk"][0][:40] in x)
    assert "  uk   " in line


def test_hand_made_corpus_file_keeps_its_hash(make_desk: MakeDesk) -> None:
    """A file put in corpus/ by hand without a language: detected for the index, but the file
    is not rewritten and a second ingest finds it unchanged."""
    desk = make_desk()
    desk.corpus.root.mkdir(parents=True, exist_ok=True)
    title, text = ARTICLES["tr"]
    path = desk.corpus.root / "elle.md"
    path.write_text(f"---\ntitle: {title}\n---\n{text}\n", encoding="utf-8")
    before = path.read_bytes()
    report = desk.ingestor.ingest([desk.corpus.root])
    assert len(report.added) == 1
    row = desk.store.article(report.added[0].id)
    assert row is not None and row.language == "tr"
    assert path.read_bytes() == before
    assert len(desk.ingestor.ingest([desk.corpus.root]).unchanged) == 1


def test_pasted_article_gets_its_language(make_desk: MakeDesk) -> None:
    desk = make_desk()
    title, text = ARTICLES["uk"]
    report = desk.ingestor.ingest_articles([Article(title=title, text=text)])
    row = desk.store.article(report.added[0].id)
    assert row is not None and row.language == "uk"
