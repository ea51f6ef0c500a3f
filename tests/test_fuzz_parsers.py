"""Fuzzing every input format (issue 10 "Also"): junk ends in InputError or valid articles.

Random and structured junk for front matter, JSONL lines, HTML and plain text, and random bytes
for the PDF and DOCX kinds. Anything else escaping (TypeError, RecursionError, a library's own
error) is a bug. A parse that hangs fails (its speed is the bench's business, not this file's);
the pure-Python parsers also have a memory bound.
Derandomized, so `make test` runs the same examples every time.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import tracemalloc
import zipfile
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot import corpus, sources
from bot.errors import InputError
from bot.metadata import ALIASES, MAX_CHARS, MAX_IDENTITY_CHARS
from bot.models import Article
from bot.parse import Parsed, parse, parse_markdown

LIMIT = 2**20
HANG = 60.0  # seconds for one parse of a few hundred bytes: only a hang takes that long


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,  # a loaded CI machine is slow at random: `parsed` catches hangs
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def check_valid(article: Article) -> None:
    assert isinstance(article.title, str) and article.title.strip()
    assert len(article.title) <= MAX_CHARS["title"] and "\n" not in article.title
    assert isinstance(article.text, str) and article.text == article.text.strip() and article.text
    assert article.published is None or isinstance(article.published, dt.date)
    assert all(isinstance(a, str) and a for a in article.authors)
    for name in ("source", "language", "license", "attribution"):
        assert len(getattr(article, name)) <= MAX_CHARS[name]
    assert len(article.url) <= MAX_IDENTITY_CHARS["url"]
    assert len(article.id) <= MAX_IDENTITY_CHARS["id"]


def round_trips(article: Article) -> None:
    """What the corpus writes for an article reads back as the same article."""
    article.id = corpus.assign_id(article)
    again = parse_markdown(
        sources.Source("a.md", "markdown", corpus.render(article).encode())
    ).articles[0]
    assert (again.title, again.text, again.published, again.authors, again.url) == (
        article.title,
        article.text,
        article.published,
        article.authors,
        article.url,
    )


def parsed_within(source: sources.Source, seconds: float = HANG) -> Parsed:
    """`parse(source)`, failing the test (instead of hanging the suite) past `seconds`."""
    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(parse, source).result(timeout=seconds)
    except FutureTimeout:
        pytest.fail(f"parsing {source.name} ({len(source.data)} bytes) hung for {seconds} s")
    finally:
        pool.shutdown(wait=False)


def outcome(name: str, data: bytes, memory: bool = False) -> list[Article]:
    """Parse; an InputError is a fine outcome, anything else escaping fails the test."""
    if memory:
        tracemalloc.start()
    try:
        parsed = parsed_within(sources.from_bytes(name, data, LIMIT))
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
        return []
    finally:
        if memory:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert peak < 50 * len(data) + 4 * 2**20, f"{peak:,} bytes for {len(data):,}"
    for article in parsed.articles:
        check_valid(article)
    for _, reason in parsed.failures:
        assert reason and "\n" not in reason
    return parsed.articles


# -- strategies -------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.dates().map(str),
    st.sampled_from(["2025-02-30", "2025-13-01", "0000-00-00", "9999-12-31", "yes", "~", ""]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from([*ALIASES, "Title", "TEXT", "other"]) | st.text(max_size=10)
records = st.dictionaries(keys, json_values, max_size=8)
yaml_junk = st.lists(
    st.sampled_from([*"abc:-[]{}&*!|>'\"#%@`,? \n\t0123456789.", "!!binary ", "<<", "title: "]),
    max_size=80,
).map("".join)


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, allow_unicode=True, default_flow_style=None)


@fuzz(100)
@given(front=st.one_of(yaml_junk, records.map(_dump)), body=st.text(max_size=300))
def test_front_matter(front: str, body: str) -> None:
    data = f"---\n{front}\n---\n{body}".encode()
    for article in outcome("doc.md", data, memory=True):
        round_trips(article)


@fuzz(80)
@given(lines=st.lists(st.one_of(records.map(json.dumps), st.text(max_size=80)), max_size=6))
def test_jsonl_lines(lines: list[str]) -> None:
    data = "\n".join(lines).encode()
    articles = outcome("wire.jsonl", data, memory=True)
    good = sum(1 for line in lines if line.strip())
    assert len(articles) <= good
    for article in articles:
        round_trips(article)


@fuzz(150)
@given(data=st.binary(max_size=400))
def test_jsonl_bytes(data: bytes) -> None:
    outcome("wire.jsonl", data, memory=True)


@fuzz(100)
@given(text=st.text(max_size=400))
def test_plain_text(text: str) -> None:
    for article in outcome("note.txt", text.encode(), memory=True):
        round_trips(article)


@fuzz(100)
@given(data=st.binary(max_size=300))
def test_text_and_markdown_bytes(data: bytes) -> None:
    outcome("note.txt", data)
    outcome("note.md", data)


tags = st.sampled_from(
    [
        "<html>",
        "</html>",
        "<body>",
        "<article>",
        "</article>",
        "<p>",
        "</p>",
        "<div hidden>",
        "</div>",
        "<template>",
        "</template>",
        "<h1>",
        "</h1>",
        '<p style="display:none">',
        "<script>",
        "</script>",
        "<!--",
        "-->",
        "<meta charset='x-unknown'>",
        "&amp;",
        "&#0;",
        "<![CDATA[",
        "]]>",
        "<title>",
        "</title>",
        '<html lang="en">',
        "<br>",
        "<svg>",
    ]
)
words = st.text(min_size=1, max_size=60)


@fuzz(60)
@example(parts=["</html>", "<svg>"])  # htmldate's AssertionError, found by this test
@given(parts=st.lists(st.one_of(tags, words), max_size=40))
def test_html(parts: list[str]) -> None:
    outcome("page.html", "".join(parts).encode())


@fuzz(10)
@given(depth=st.integers(min_value=200, max_value=5000))
def test_html_deep_nesting(depth: int) -> None:
    sentence = "The council approved the harbour budget on Tuesday after a debate. " * 4
    page = "<html><body>" + "<div>" * depth + f"<p>{sentence}</p>" + "</div>" * depth
    outcome("page.html", page.encode())


@fuzz(60)
@given(data=st.binary(max_size=600))
def test_pdf_bytes(data: bytes) -> None:
    outcome("doc.pdf", b"%PDF-1.4\n" + data)


@fuzz(60)
@given(data=st.binary(max_size=600))
def test_docx_bytes(data: bytes) -> None:
    outcome("doc.docx", data)
    outcome("doc.docx", b"PK\x03\x04" + data)


xml_junk = st.lists(
    st.sampled_from(
        [
            "<w:p>",
            "</w:p>",
            "<w:r>",
            "</w:r>",
            "<w:t>",
            "</w:t>",
            "<w:tab/>",
            "<w:br/>",
            '<!DOCTYPE d [<!ENTITY a "aaaa">]>',
            "&a;",
            "<w:tbl>",
            "</w:tbl>",
            "x",
            "Text ",
        ]
    ),
    max_size=40,
)


@fuzz(60)
@given(parts=xml_junk)
def test_docx_document_xml(parts: list[str]) -> None:
    body = "".join(parts)
    xml = (
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body>{body}</w:body></w:document>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("word/document.xml", xml)
        zf.writestr("docProps/core.xml", body)
    outcome("doc.docx", buffer.getvalue())
