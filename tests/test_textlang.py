"""Text in many languages: article language, sentence splitting, the keyword index, questions."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import sqlite3
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from articles_intl import ARTICLES
from conftest import MakeDesk, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import fts
from bot.chunk import Chunker
from bot.conversation import Conversation, FilterError, is_follow_up, split_filters
from bot.desk import Desk
from bot.language import article_language, code_of
from bot.models import Article, Chunk, Filters, Passage
from bot.query import keyword_query, keyword_terms
from bot.sentences import sentence_spans

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


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("code", sorted(SENTENCES))
def test_sentences_end_where_the_language_ends_them(code: str, fast: bool) -> None:
    """Abbreviations, initials, ordinals and decimals do not end a sentence (pysbd or rules)."""
    text = " ".join(SENTENCES[code])
    spans = sentence_spans(text, code, fast=fast)
    assert [text[s:e].strip() for s, e in spans] == SENTENCES[code]


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
    st.booleans(),
)
def test_sentence_spans_cover_the_text_in_order(text: str, code: str, fast: bool) -> None:
    spans = sentence_spans(text, code, fast=fast)
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


# -- the keyword index -----------------------------------------------------------------------


@pytest.fixture
def archive(make_desk: MakeDesk) -> Desk:
    """One article per language, none declaring it."""
    desk = make_desk()
    report = desk.ingestor.ingest_articles(
        [Article(title=title, text=text) for title, text in ARTICLES.values()]
    )
    assert len(report.added) == len(ARTICLES)
    return desk


def keyword_hits(desk: Desk, question: str) -> list[str]:
    """The languages of the articles the keyword side finds, best first."""
    languages = {title: code for code, (title, _) in ARTICLES.items()}
    found = desk.store.keyword_search(question, 10, Filters())
    return list(dict.fromkeys(languages[p.title] for p in found))


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("istanbul", "tr"),  # İstanbul'da
        ("ISTANBUL", "tr"),
        ("Turkiye", "tr"),  # Türkiye'nin
        ("ılık", "tr"),  # ILIK: Turkish capital I is dotless
        ("Kilic", "tr"),  # Kılıç'a
        ("ТУРЦИИ", "ru"),  # Cyrillic case
        ("Турция", "ru"),  # another form of "Турции": the prefix finds it
        ("емкость", "ru"),  # Ёмкость
        ("п'ять", "uk"),  # пʼять, written with U+02BC
        ("Туреччини", "uk"),  # Туреччина
        ("Strasse", "de"),  # Straße
        ("gesprach", "de"),  # Gespräche
    ],
)
def test_keyword_side_matches_across_case_diacritics_and_forms(
    archive: Desk, question: str, language: str
) -> None:
    assert keyword_hits(archive, question)[:1] == [language]


def test_english_keeps_its_stemmer_other_languages_do_not_get_it(archive: Desk) -> None:
    assert keyword_hits(archive, "purchases")[:1] == ["en"]  # "purchase" via Porter
    db = archive.store.db
    english = {r[0] for r in db.execute("SELECT term FROM chunks_fts_vocab")}
    other = {r[0] for r in db.execute("SELECT term FROM chunks_fts_intl_vocab")}
    assert "purchas" in english and "gesprache" in other and "turkiye" in other
    assert "gesprach" not in other  # what Porter would have made of it
    assert not any("\u0400" <= ch <= "\u04ff" for term in english for ch in term)


@pytest.fixture(autouse=True)
def _vocab_tables(request: pytest.FixtureRequest) -> None:
    """fts5vocab views over both tables, for the test that reads the index's terms."""
    if "archive" not in request.fixturenames:
        return
    desk: Desk = request.getfixturevalue("archive")
    for table in ("chunks_fts", "chunks_fts_intl"):
        desk.store.db.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{table}_vocab "
            f"USING fts5vocab(main, {table}, 'row')"
        )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=120), st.booleans())
def test_any_question_is_a_valid_keyword_query(text: str, prefixes: bool) -> None:
    """No user text makes FTS5 raise: every term is quoted and folded like the index."""
    db = sqlite3.connect(":memory:")
    db.executescript(fts.SCHEMA)
    db.execute("INSERT INTO chunks_fts_intl VALUES ('x', 'Türkiye', ?)", (fts.fold(text),))
    query = keyword_query(text, prefixes=prefixes)
    if query:
        db.execute("SELECT * FROM chunks_fts_intl WHERE chunks_fts_intl MATCH ?", (query,))
        db.execute("SELECT * FROM chunks_fts WHERE chunks_fts MATCH ?", (query,))
    assert '"' not in "".join(keyword_terms(text))


OLD_LAYOUT = """
DROP TABLE chunks_fts_intl;
DELETE FROM chunks_fts;
INSERT INTO chunks_fts (chunk_id, title, text)
    SELECT c.id, a.title, c.text FROM chunks c JOIN articles a ON a.id = c.article_id;
UPDATE articles SET language = '';
DELETE FROM meta WHERE key = 'fts_version';
"""
OPEN_STORE = """
import os, sys
from pathlib import Path
from bot import fts
real, calls = fts.fold, [0]
def dying(text):
    calls[0] += 1
    if calls[0] > int(sys.argv[2]):
        os._exit(9)  # killed in the middle of the upgrade
    return real(text)
fts.fold = dying
from bot.store import Store
Store(Path(sys.argv[1])).close()
"""


def fts_rows(index: Path) -> int:
    db = sqlite3.connect(index / "newsdesk.db")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    count = sum(
        db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("chunks_fts", "chunks_fts_intl")
        if t in tables
    )
    db.close()
    return int(count)


def open_store(index: Path, die_after: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", OPEN_STORE, str(index), str(die_after)])


def test_an_index_from_before_is_upgraded_in_place_and_survives_a_kill(
    archive: Desk, make_desk: MakeDesk
) -> None:
    index = archive.settings.index_dir
    chunks = archive.store.count_chunks()
    archive.store.db.executescript(OLD_LAYOUT)
    archive.store.close()
    assert fts_rows(index) == chunks

    # Killed half-way: the old index is untouched, nothing is half-upgraded.
    assert open_store(index, die_after=3).wait(timeout=120) == 9
    assert fts_rows(index) == chunks
    db = sqlite3.connect(index / "newsdesk.db")
    assert db.execute("SELECT value FROM meta WHERE key='fts_version'").fetchone() is None
    db.close()

    # Two processes open it at once: one upgrades, the other waits and finds it done.
    both = [open_store(index, die_after=10**9) for _ in range(2)]
    assert [p.wait(timeout=180) for p in both] == [0, 0]
    assert fts_rows(index) == chunks

    desk = make_desk()
    assert keyword_hits(desk, "ılık")[:1] == ["tr"]
    assert keyword_hits(desk, "Турция")[:1] == ["ru"]
    languages = {r.title: r.language for r in desk.store.articles()}
    assert languages == {title: code for code, (title, _) in ARTICLES.items()}


# -- questions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "terms"),
    [
        ("Why did Turkey buy the S-400 in 2019?", ["turkey", "buy", "400", "2019"]),
        ("What did the war cost?", ["war", "cost"]),  # "war" is German for "was", not here
        ("Was war der Grund für die Lieferung?", ["grund", "lieferung"]),
        ("Почему Турция покупает С-400?", ["турция", "покупает", "400"]),
        ("Чому Туреччина купує С-400?", ["туреччина", "купує", "400"]),
        ("Türkiye neden S-400 aldı?", ["türkiye", "400", "aldi"]),  # FTS5 folds the ü
        ("İstanbul'da ne oldu?", ["istanbul"]),
    ],
)
def test_questions_lose_their_languages_stopwords(question: str, terms: list[str]) -> None:
    assert keyword_terms(question) == terms


@pytest.mark.parametrize(
    ("question", "follow_up"),
    [
        ("А что сказал Кремль?", True),
        ("Что он сказал?", True),
        ("І що відповів Київ?", True),
        ("Що він сказав?", True),
        ("Peki Ankara ne dedi?", True),
        ("O ne dedi?", True),
        ("Und was sagte Berlin?", True),
        ("Was hat er gesagt?", True),
        ("Почему Турция покупает российские ракеты С-400?", False),
        ("Чому Туреччина купує російські ракети?", False),
        ("Türkiye neden Rus füzeleri alıyor?", False),
        ("Gibt es neue Sanktionen gegen Russland?", False),
        ("and Ankara?", True),
        ("Is this year's budget late?", False),
    ],
)
def test_follow_ups_in_every_supported_language(question: str, follow_up: bool) -> None:
    assert is_follow_up(question) is follow_up


def test_a_follow_up_borrows_the_previous_questions_words() -> None:
    chat = Conversation()
    chat.remember("Почему Турция покупает С-400?")
    standalone = chat.standalone("А что сказал Кремль?")
    assert "Турция" in standalone and "покупает" in standalone and "Почему" not in standalone


@pytest.mark.parametrize(
    "question",
    [
        'Что сказал Эрдоган? since:2025-01-01 source:"ТАСС"',
        'Erdoğan ne dedi? since:2025-01-01 source:"ТАСС"',
        'Що сказав Ердоган? source:"ТАСС" since:2025-01-01',
    ],
)
def test_filters_work_inside_non_english_questions(question: str) -> None:
    text, filters = split_filters(question)
    assert filters.since == dt.date(2025, 1, 1) and filters.source == "ТАСС"
    assert "since" not in text and "ТАСС" not in text and text.endswith("?")


def test_a_bad_filter_in_a_non_english_question_is_a_clear_error() -> None:
    with pytest.raises(FilterError, match="since:вчера is not a date"):
        split_filters("Что сказал Эрдоган? since:вчера")


LOADED = (
    "import sys; from bot.query import keyword_query; keyword_query({!r}); "
    "print('py3langid' in sys.modules)"
)


@pytest.mark.parametrize(
    ("question", "loads"),
    [
        ("Why did Turkey buy the S-400?", False),
        ("Почему Турция покупает С-400?", False),
        ("Was war der Grund?", True),  # "was"/"war": English or German? Only the model knows
    ],
)
def test_the_language_model_loads_only_when_a_question_needs_it(question: str, loads: bool) -> None:
    """Cold `newsdesk ask` stays fast: most questions never load the detector."""
    out = subprocess.run(
        [sys.executable, "-c", LOADED.format(question)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == str(loads)
