"""Every message the bot can send fits Telegram: valid HTML, <= 4096 UTF-16 units, in order.

Property tests over every renderer, fed long, emoji-laden, right-to-left and `<>&`-ridden
titles, outlets, quotes and URLs; each part must parse under the fake server's strict parser
(Telegram's own rules, stricter about `&`) and fit.
"""

from __future__ import annotations

import datetime as dt
import re

from fake_telegram import MAX_TEXT, parse_html, utf16_len
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import render
from bot.journal import AuditEntry
from bot.models import Answer, Article, Chunk, Citation, IngestReport, Passage
from bot.split import fit, pack, split
from bot.store import ArticleRow

ALPHABET = st.sampled_from(
    list("abc xyz ABC .,;:!?\n\t\"'")
    + list("<>&;#/=")
    + ["&amp;", "&lt;", "<b>", "</a>"]
    + list("שלום مرحبا")
    + ["😀", "👍🏽", "🇺🇦", "\u200f", "\u202e", "é", "ß", "漢字"]
)
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def texts(max_repeat: int = 400) -> st.SearchStrategy[str]:
    """Short strings, and long ones (a random piece repeated up to `max_repeat` times)."""
    piece = st.lists(ALPHABET, max_size=25).map("".join)
    return st.one_of(piece, st.tuples(piece, st.integers(1, max_repeat)).map(lambda p: p[0] * p[1]))


urls = st.one_of(
    st.just(""),
    texts(5).map(lambda t: "https://example.org/" + t),
    texts(400).map(lambda t: "http://e.x/?q=" + t),
)
dates = st.one_of(st.none(), st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1)))


def assert_fits(parts: list[str]) -> None:
    assert parts, "nothing to send"
    for part in parts:
        text, _ = parse_html(part)  # raises ApiError(400) like Telegram
        assert 0 < utf16_len(text.strip()) <= MAX_TEXT


@st.composite
def citations(draw: st.DrawFn) -> list[Citation]:
    n = draw(st.integers(1, 12))
    return [
        Citation(
            i,
            f"{draw(st.integers(0, 3)):016x}",
            draw(texts()),
            draw(texts()),
            draw(dates),
            draw(urls),
            draw(texts()),
            0,
            1,
        )
        for i in range(1, n + 1)
    ]


@st.composite
def passages(draw: st.DrawFn) -> list[Passage]:
    result = []
    for i in range(draw(st.integers(0, 6))):
        chunk = Chunk(f"c{i}", f"{i:016x}", 0, 0, 1, draw(texts()))
        result.append(Passage(chunk, draw(texts()), draw(texts()), draw(dates), draw(urls)))
    return result


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    cites = draw(citations())
    text = draw(texts()) + " " + " ".join(f"{draw(texts(40))} [{c.n}]" for c in cites)
    abstained = draw(st.booleans())
    note = draw(st.one_of(st.just(""), texts(20)))
    return Answer(draw(texts()), text, cites, abstained, draw(passages()), note)


@st.composite
def rows(draw: st.DrawFn) -> list[ArticleRow]:
    return [
        ArticleRow(
            f"{i:016x}",
            draw(texts(20)),
            "h",
            draw(texts()),
            draw(texts()),
            draw(dates),
            draw(urls),
            draw(st.integers(0, 10**6)),
            "ready",
            "2025-01-01",
        )
        for i in range(draw(st.integers(0, 25)))
    ]


@st.composite
def articles(draw: st.DrawFn) -> Article:
    return Article(
        title=draw(texts()),
        text=draw(texts()),
        source=draw(texts()),
        published=draw(dates),
        url=draw(urls),
        authors=draw(st.lists(texts(20), max_size=3)),
        id=f"{draw(st.integers(0, 2**64 - 1)):016x}",
    )


@PROPERTY
@given(answers())
def test_answers_and_their_quotes_fit(answer: Answer) -> None:
    assert_fits(render.answer_html(answer))
    if answer.citations:
        assert_fits(render.quotes_html(answer.citations))
    keyboard = render.answer_keyboard(2**40, bool(answer.citations))
    for button in keyboard.inline_keyboard[0]:
        assert len((button.callback_data or "").encode()) <= 64  # type: ignore[union-attr]


@PROPERTY
@given(texts(), passages())
def test_search_results_fit(query: str, found: list[Passage]) -> None:
    assert_fits(render.passages_html(query, found))


@PROPERTY
@given(rows(), st.integers(-5, 10), st.booleans())
def test_sources_and_docs_pages_fit(listed: list[ArticleRow], page: int, admin: bool) -> None:
    parts, _ = render.listing_html(*page_of(listed, page), admin)
    assert_fits(parts)
    assert re.search(r"page \d+/\d+", parts[0])


def page_of(listed: list[ArticleRow], page: int) -> tuple[list[ArticleRow], int, int]:
    """What Store.visible_page gives for `listed`: that page's rows, the total, the page."""
    page = min(max(page, 0), max(0, -(-len(listed) // render.PAGE_SIZE) - 1))
    return listed[page * render.PAGE_SIZE : (page + 1) * render.PAGE_SIZE], len(listed), page


@PROPERTY
@given(articles(), rows())
def test_doc_and_remove_prompt_fit(article: Article, listed: list[ArticleRow]) -> None:
    row = listed[0] if listed else ArticleRow("0" * 16, "p", "h", "t", "", None, "", 1, "x", "")
    assert_fits(render.doc_html(row, article))
    text, _ = render.remove_prompt(row)
    assert_fits(fit([text, render.removed(article.title, article.id)]))


@PROPERTY
@given(
    st.lists(st.tuples(texts(20), st.integers(0, 2**40), texts(), texts(), texts()), max_size=15)
)
def test_audit_fits(entries: list[tuple[str, int, str, str, str]]) -> None:
    log = [AuditEntry("2026-01-01T00:00:00+00:00", u, n, a, t, r) for n, u, a, t, r in entries]
    assert_fits(render.audit_html(log))


@PROPERTY
@given(
    st.lists(articles(), max_size=20),
    st.lists(articles(), max_size=20),
    st.lists(st.tuples(texts(), texts()), max_size=20),
)
def test_ingest_summaries_and_failures_fit(
    added: list[Article], unchanged: list[Article], failed: list[tuple[str, str]]
) -> None:
    report = IngestReport(added=added, unchanged=unchanged, failed=failed)
    assert_fits(render.summary_html(report))
    for name, reason in failed[:3]:
        assert_fits(fit([render.failed_html(name, reason), render.problem(reason)]))


@PROPERTY
@given(texts(), st.integers(-(2**60), 2**60), texts())
def test_everything_else_fits(text: str, number: int, error_id: str) -> None:
    stats = {
        "articles": number, "chunks": number, "outlets": number, "first_published": text,
        "last_published": None, "last_ingest": text, "index_bytes": abs(number),
    }  # fmt: skip
    assert_fits(render.stats_html(stats))
    messages = [
        render.START, render.HELP, render.ADD_USAGE, render.NOT_ADMIN, render.CANCELLED,
        render.apology(text, error_id), render.stranger(number, -number, False),
        render.ask_example(text), render.slow_down(abs(number) % 100), render.status(text),
    ]  # fmt: skip
    assert_fits(fit(messages))  # how sending.reply sends any text
    if text.strip():
        assert_fits([render.preview_html(text)])


# -- the splitter itself ----------------------------------------------------------------------

TAGS = ["b", "i", "u", "s", "code", "blockquote", 'a href="https://e.x/?a=1&amp;b=2"']


def html_trees() -> st.SearchStrategy[str]:
    leaf = texts(300).map(render.esc)
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=4).map("\n".join),
            st.tuples(st.sampled_from(TAGS), inner).map(
                lambda t: f"<{t[0]}>{t[1]}</{t[0].split()[0]}>"
            ),
        ),
        max_leaves=12,
    )


def visible(html_text: str) -> str:
    return "".join(parse_html(html_text)[0].split())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(html_trees(), st.integers(20, 4096))
def test_split_keeps_everything_valid_within_limits_and_in_order(block: str, limit: int) -> None:
    parts = split(block, limit)
    for part in parts:
        text, _ = parse_html(part)
        assert utf16_len(text.strip()) <= limit
    assert "".join(visible(p) for p in parts) == visible(block)  # nothing lost or reordered


def test_a_title_of_6000_characters_is_shortened_in_every_answer() -> None:
    title = "Ministry of Everything announces " * 200
    cite = Citation(1, "a" * 16, title, "Outlet", None, "https://e.x/a", "A quote.", 0, 8)
    parts = render.answer_html(Answer("q", "A quote. [1]", [cite], False))
    assert_fits(parts)
    assert len(parts) == 1 and "…" in parts[0] and len(parts[0]) < 600


def test_audit_with_15_long_entries_is_split_at_lines() -> None:
    entries = [
        AuditEntry("2026-01-01T00:00:00", i, "x" * 500, "upload", "é" * 500, "failed: " + "ü" * 990)
        for i in range(15)
    ]
    parts = render.audit_html(entries)
    assert_fits(parts)
    lines = [line for part in parts for line in parse_html(part)[0].split("\n")]
    assert len(lines) == 16  # the heading and every entry, none cut in half


def test_long_listing_pages_fit() -> None:
    listed = [
        ArticleRow(
            f"{i:016x}",
            "p",
            "h",
            "🇺🇦 " * 3000,
            "<Outlet> " * 500,
            None,
            "https://e.x/" + "a" * 5000,
            3,
            "ready",
            "",
        )
        for i in range(44)
    ]
    for admin in (False, True):
        parts, _ = render.listing_html(*page_of(listed, 1), admin)
        assert_fits(parts)
        shown = "\n".join(parse_html(p)[0] for p in parts)
        assert re.findall(r"^(\d+)\. ", shown, re.M) == [str(i) for i in range(11, 21)]


def test_an_answer_paragraph_over_4096_is_cut_between_sentences_keeping_every_marker() -> None:
    sentences = [f"Sentence {n} says <this> & that about the harbour. [{n}]" for n in range(1, 151)]
    paragraph = " ".join(sentences)
    assert utf16_len(paragraph) > 2 * 4096
    cites = [Citation(n, "b" * 16, "T", "", None, "", "q", 0, 1) for n in range(1, 151)]
    parts = render.answer_html(Answer("q", paragraph, cites, False))
    assert_fits(parts)
    shown = "\n".join(parse_html(p)[0] for p in parts)
    assert re.findall(r"\[\d+\]", shown)[:150] == [f"[{n}]" for n in range(1, 151)]
    for part in parts[:-1]:  # each cut falls right after a sentence's marker
        assert re.search(r"\[\d+\]$", parse_html(part)[0].strip())


def test_markup_is_reopened_after_a_cut() -> None:
    block = "<blockquote>" + render.esc("word & more " * 800) + "</blockquote>"
    parts = pack([block])
    assert len(parts) == 3
    assert all(p.startswith("<blockquote>") and p.endswith("</blockquote>") for p in parts)
    assert_fits(parts)
