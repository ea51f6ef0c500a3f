"""Ingestion: every format, idempotency, updates, removal, bad input, offsets."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import SHARED, MakeDesk
from documents import ARTICLE_HTML, docx_bytes, pdf_bytes, zip_bomb_docx

from bot.corpus import Corpus

TEXT_ARTICLE = (
    "Library opens on Sunday\n"
    "The new city library on Quay Street opens on Sunday with 120,000 books.\n\n"
    "The librarian, Ona Virtanen, said the reading room seats 300 people."
)


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def test_every_format_is_ingested(tmp_path: Path, make_desk: MakeDesk) -> None:
    src = tmp_path / "in"
    write(src / "a.txt", TEXT_ARTICLE)
    write(
        src / "b.md",
        "---\ntitle: Ferry strike ends\nsource: Port Herald\npublished: 2025-02-01\n"
        "url: https://example.org/ferry\n---\n\nFerry workers ended a nine-day strike.\n",
    )
    write(src / "c.html", ARTICLE_HTML)
    write(
        src / "d.pdf", pdf_bytes(["Council approves budget", "The council approved it."], "Budget")
    )
    write(src / "e.docx", docx_bytes("Zoo welcomes twins", ["Two red panda cubs were born."]))
    records = [
        {
            "title": "Rail line electrified",
            "text": "The northern rail line is electric now.",
            "url": "https://example.org/rail",
            "source": "Wire",
            "published": "2024-05-06",
            "id": "wire-1",
            "language": "en",
            "authors": ["A. Writer"],
        },
        {"title": "Market hall restored", "text": "The 1890 market hall has been restored."},
    ]
    write(src / "f.jsonl", "\n".join(json.dumps(r) for r in records))
    desk = make_desk()
    report = desk.ingestor.ingest([src])
    assert report.failed == []
    titles = {a.title for a in report.added}
    assert titles == {
        "Library opens on Sunday",
        "Ferry strike ends",
        "Harbour bridge reopens after repairs",
        "Budget",
        "Zoo welcomes twins",
        "Rail line electrified",
        "Market hall restored",
    }
    by_title = {a.title: a for a in report.added}
    html = by_title["Harbour bridge reopens after repairs"]
    assert html.source == "The Coastal Gazette" and str(html.published) == "2025-03-14"
    assert "312 steel cables" in html.text and "tracking" not in html.text
    assert "Home" not in html.text.split("\n")[0]
    md = by_title["Ferry strike ends"]
    assert (md.source, str(md.published), md.url) == (
        "Port Herald",
        "2025-02-01",
        "https://example.org/ferry",
    )
    assert by_title["Rail line electrified"].authors == ["A. Writer"]
    assert by_title["Library opens on Sunday"].text.startswith("The new city library")
    # Each article is a corpus file that reads back identically.
    corpus = Corpus(desk.settings.corpus_dir)
    for article in report.added:
        assert article.path is not None and corpus.contains(article.path)
        again = corpus.read(article.path)
        assert (again.id, again.title, again.text) == (article.id, article.title, article.text)
    assert desk.store.count_chunks() == sum(report.chunks.values()) >= 7


def test_ingest_is_idempotent_and_cheap(make_desk: MakeDesk, tmp_path: Path) -> None:
    src = write(tmp_path / "a.txt", TEXT_ARTICLE)
    desk = make_desk()
    first = desk.ingestor.ingest([src])
    ids_before = desk.store.vector_ids()
    files_before = sorted(desk.corpus.paths())
    calls: list[int] = []
    encode = desk.embedder.encode
    desk.embedder.encode = lambda texts, progress=False: calls.append(len(texts)) or encode(texts)  # type: ignore[method-assign]
    try:
        second = desk.ingestor.ingest([src, src])
        third = desk.ingestor.ingest([desk.corpus.root])  # the saved copy is the same article
    finally:
        del desk.embedder.encode
    assert len(first.added) == 1
    assert len(second.unchanged) == 2 and not second.added and not second.updated
    assert len(third.unchanged) == 1
    assert calls == []  # nothing was re-embedded
    assert desk.store.vector_ids() == ids_before
    assert sorted(desk.corpus.paths()) == files_before


def test_changed_article_replaces_its_chunks(make_desk: MakeDesk, tmp_path: Path) -> None:
    desk = make_desk()
    rec = {"id": "story-9", "title": "Dam inspection", "text": "Inspectors found a crack. " * 5}
    src = write(tmp_path / "s.jsonl", json.dumps(rec))
    added = desk.ingestor.ingest([src]).added[0]
    old_chunks = set(desk.store.chunk_ids(added.id))
    rec["text"] = "Inspectors found no crack after all; the dam is safe."
    write(src, json.dumps(rec))
    report = desk.ingestor.ingest([src])
    assert [a.id for a in report.updated] == [added.id]
    new_chunks = set(desk.store.chunk_ids(added.id))
    assert new_chunks and not (new_chunks & old_chunks)
    assert desk.store.vector_ids() == new_chunks
    assert len(list(desk.corpus.paths())) == 1
    assert "no crack" in next(desk.corpus.paths()).read_text()


def test_hand_edited_corpus_file_is_updated(make_desk: MakeDesk, tmp_path: Path) -> None:
    desk = make_desk()
    write(desk.corpus.root / "2025" / "note.md", "# Pier closes\n\nThe pier closes in May.\n")
    first = desk.ingestor.ingest([desk.corpus.root])
    assert len(first.added) == 1
    write(desk.corpus.root / "2025" / "note.md", "# Pier closes\n\nThe pier closes in June.\n")
    second = desk.ingestor.ingest([desk.corpus.root])
    assert len(second.updated) + len(second.added) == 1
    assert len(desk.store.articles()) == 1
    assert (
        "June"
        in desk.store._passages(desk.store.chunk_ids(desk.store.articles()[0].id))[0].chunk.text
    )


def test_remove_deletes_file_and_index(make_desk: MakeDesk, tmp_path: Path) -> None:
    desk = make_desk()
    article = desk.ingestor.ingest([write(tmp_path / "a.txt", TEXT_ARTICLE)]).added[0]
    removed = desk.ingestor.remove(article.id[:6])
    assert removed.id == article.id
    assert list(desk.corpus.paths()) == []
    assert desk.store.articles() == [] and desk.store.vector_ids() == set()
    assert desk.store.count_chunks() == 0


def test_bad_inputs_are_reported_and_the_rest_proceeds(make_desk: MakeDesk, tmp_path: Path) -> None:
    src = tmp_path / "in"
    write(src / "good.txt", TEXT_ARTICLE)
    write(src / "empty.txt", "  \n")
    write(src / "binary.txt", b"\x00\x01\x02binary")
    write(src / "latin1.txt", "Caf\xe9 owners protest".encode("latin-1"))
    write(src / "broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage")
    write(src / "fake.pdf", b"this is not a pdf at all")
    write(src / "broken.docx", b"PK\x03\x04 definitely not a zip")
    write(src / "bomb.docx", zip_bomb_docx())
    write(src / "bad.jsonl", '{"title": "ok", "text": "Fine line."}\nnot json\n{"title": "x"}\n')
    write(src / "page.html", "<html><body><script>alert(1)</script></body></html>")
    write(src / "big.txt", "Big\n" + "x" * 3_000_000)
    write(src / "sheet.xlsx", b"PK...")
    desk = make_desk(max_file_mb=2)
    report = desk.ingestor.ingest([src, tmp_path / "missing.txt"])
    reasons = {Path(name.split(":")[0]).name: reason for name, reason in report.failed}
    assert sorted(a.title for a in report.added) == ["Library opens on Sunday", "ok"]
    assert "empty" in reasons["empty.txt"]
    assert "binary" in reasons["binary.txt"]
    assert "UTF-8" in reasons["latin1.txt"]
    assert "PDF" in reasons["broken.pdf"] and "PDF" in reasons["fake.pdf"]
    assert "DOCX" in reasons["broken.docx"]
    assert "zip bomb" in reasons["bomb.docx"]
    assert "invalid JSON" in dict(report.failed)["bad.jsonl:2"]
    assert "no text" in dict(report.failed)["bad.jsonl:3"]
    assert "no article text" in reasons["page.html"]
    assert "limit" in reasons["big.txt"]
    assert "unsupported" in reasons["sheet.xlsx"]
    assert "no such file" in reasons["missing.txt"]
    # Nothing partial reached corpus/ or the index.
    assert len(list(desk.corpus.paths())) == 2 and len(desk.store.articles()) == 2
    assert {r.state for r in desk.store.articles()} == {"ready"}


def test_chunks_fit_the_model_and_offsets_round_trip(make_desk: MakeDesk, embedder) -> None:  # type: ignore[no-untyped-def]
    desk = make_desk()
    report = desk.ingestor.ingest([SHARED / "sample-news" / "articles.jsonl"])
    assert len(report.added) == 43
    for article in report.added[:15]:
        chunks = desk.ingestor.chunker.chunk(article)
        assert chunks and len(chunks) == report.chunks[article.id]
        for chunk in chunks:
            assert article.text[chunk.start : chunk.end] == chunk.text
            tokens = embedder.count_tokens(f"{article.title[:200]}\n\n{chunk.text}")
            assert tokens + 2 <= embedder.max_tokens
        covered = set()
        for chunk in chunks:
            covered.update(range(chunk.start, chunk.end))
        assert all(i in covered for i, ch in enumerate(article.text) if not ch.isspace())


def test_interrupted_ingest_is_repaired(make_desk: MakeDesk, tmp_path: Path) -> None:
    desk = make_desk()
    article = desk.ingestor.ingest([write(tmp_path / "a.txt", TEXT_ARTICLE)]).added[0]
    # Simulate a crash after the manifest said 'indexing' and before the chunks were stored.
    desk.store.begin_article(article, "stale")
    desk.store._delete_chunks(article.id)
    # ... and a corpus file that never reached the index, and an index row without a file.
    write(desk.corpus.root / "undated" / "late.md", "---\ntitle: Late\n---\n\nLate news text.\n")
    ghost = desk.ingestor.ingest([write(tmp_path / "g.txt", "Ghost\nGone soon.")]).added[0]
    assert ghost.path is not None
    ghost.path.unlink()
    fresh = make_desk()  # a new process on the same folders
    fresh.ingestor.repair()
    rows = {r.title: r for r in fresh.store.articles()}
    assert set(rows) == {"Library opens on Sunday", "Late"}
    assert {r.state for r in rows.values()} == {"ready"}
    chunk_ids = {c for r in rows.values() for c in fresh.store.chunk_ids(r.id)}
    assert fresh.store.vector_ids() == chunk_ids
