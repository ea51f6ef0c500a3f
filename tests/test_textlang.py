"""Text in many languages: article language, sentence splitting, the keyword index, questions."""

from __future__ import annotations

import itertools
import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.chunk import Chunker
from bot.language import article_language, code_of
from bot.models import Article, Chunk, Passage
from bot.sentences import sentence_spans
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


# -- sentences -------------------------------------------------------------------------------

SENTENCES = {
    "tr": [
        "Dışişleri Bakanı Dr. Ahmet Yılmaz, 14 Mart'ta İstanbul'da düzenlenen zirvede konuştu.",
        "Yılmaz, Türkiye'nin Karadeniz'de istikrarı korumak için 3. kez arabuluculuk yapmaya "
        "hazır olduğunu söyledi.",
        "Toplantıya Rusya ve Ukrayna'dan heyetler katıldı.",
    ],
    "uk": [
        "Міністр оборони України О. Резніков 3 лютого відвідав Анкару.",
        "Сторони підписали угоду про спільне виробництво безпілотників «Байрактар» на "
        "території України, повідомило Міноборони.",
    ],
    "ru": [
        "Министр иностранных дел Турции М. Чавушоглу 12 марта прибыл в Москву.",
        "Переговоры длились около 3,5 ч. и прошли, по словам дипломатов, «в деловой атмосфере».",
        "Стороны обсудили поставку второй партии систем С-400, т. е. ещё четырёх дивизионов.",
    ],
    "de": [
        "Verteidigungsminister Dr. Klaus Berger sagte am 5. März in Berlin, die Gespräche seien "
        "weit fortgeschritten.",
        "Die Kosten liegen bei ca. 1,2 Mrd. Euro.",
        "Kritik kam u. a. von der Opposition.",
    ],
}


@pytest.mark.parametrize("code", sorted(SENTENCES))
def test_sentences_end_where_the_language_ends_them(code: str) -> None:
    """Abbreviations, initials, ordinals and decimals do not end a sentence."""
    text = " ".join(SENTENCES[code])
    assert [text[s:e].strip() for s, e in sentence_spans(text, code)] == SENTENCES[code]


def test_english_splitting_is_unchanged() -> None:
    text = "Mr. Smith went to Washington. He arrived at 3.30 p.m. on Monday. It rained."
    pieces = [text[s:e].strip() for s, e in sentence_spans(text, "")]
    assert pieces == [
        "Mr. Smith went to Washington.",
        "He arrived at 3.30 p.m. on Monday.",
        "It rained.",
    ]


WORDS = st.sampled_from(
    [
        "Dr.",
        "İstanbul'da",
        "3.",
        "kez",
        "т. е.",
        "ещё",
        "пʼять",
        "М.",
        "Straße",
        "u. a.",
        "…",
        "«Так»",
        "?!",
        "2,5",
        "\n",
        "\n\n",
        "A.",
        "e\u0301",
        "Ё",
        "ılık",
        "—",
        '"Yes."',
        "x",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(max_size=300),
        st.lists(WORDS, max_size=60).map(" ".join),
        st.lists(st.one_of(WORDS, st.text(max_size=5)), max_size=40).map("".join),
    ),
    st.sampled_from(["", "en", "de", "ru", "uk", "tr", "xx"]),
)
def test_sentence_spans_cover_the_text_in_order(text: str, code: str) -> None:
    spans = sentence_spans(text, code)
    if not text:
        assert spans == []
        return
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert all(s < e for s, e in spans)
    assert "".join(text[s:e] for s, e in spans) == text
    for _, cut in spans[:-1]:  # never inside a word, never before a combining mark
        assert not (text[cut - 1].isalnum() and text[cut].isalnum())
        assert not unicodedata.category(text[cut]).startswith("M")


def test_quotes_are_whole_sentences_of_the_articles_language() -> None:
    from bot.answer import split_sentences

    text = " ".join(SENTENCES["uk"])
    chunk = Chunk("a:0:x", "a", 0, 100, 100 + len(text), text)
    passage = Passage(chunk, "t", "s", None, "", language="uk")
    sentences = split_sentences(passage)
    assert [s.text for s in sentences] == SENTENCES["uk"]
    for s in sentences:  # offsets into the article, exact
        assert text[s.start - 100 : s.end - 100] == s.text


def test_chunks_are_cut_between_sentences_of_the_articles_language() -> None:
    """A paragraph longer than a chunk is cut at sentence ends, not after "Dr." or "3."."""
    text = " ".join(SENTENCES["tr"] * 6)
    chunker = Chunker(lambda s: len(s.split()), max_tokens=40, overlap_tokens=0)
    chunks = chunker.chunk(Article(title="t", text=text, language="tr", id="a"))
    assert len(chunks) > 2
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text.endswith("."), chunk.text
        assert not chunk.text.endswith(("Dr.", "3.")), chunk.text
