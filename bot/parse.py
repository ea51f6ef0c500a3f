"""Bytes -> Articles: Markdown with front matter, plain text, HTML, PDF, DOCX and JSONL.

Every parser either returns valid articles or raises InputError with a reason: hostile or
broken input (bombs, deep nesting, impossible dates, junk bytes) never escapes as another
exception. A JSONL document is parsed line by line; a bad line is one failure with its number.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from bot.docx_reader import read_docx
from bot.errors import EmptyDocument, InputError
from bot.i18n import Said, message_of
from bot.metadata import (
    ALIASES,
    apply_metadata,
    article_from_fields,
    clean_text,
    load_front_matter,
    metadata_lines,
    parse_date,
    split_title,
)
from bot.models import Article
from bot.sources import Source, mb

__all__ = [
    "ALIASES",
    "Item",
    "Parsed",
    "apply_metadata",
    "article_from_fields",
    "clean_text",
    "iter_parse",
    "metadata_lines",
    "parse",
    "parse_date",
    "split_title",
]
log = logging.getLogger(__name__)

# A web page is taken for an article only with this much running text (see check_article_text).
MIN_ARTICLE_CHARS = 150
SENTENCE_ENDS = (".", "!", "?", "…", "。", "！", "？")
CLOSING = "\"'”’»)] "
PAYWALLED = re.compile(rb'"isAccessibleForFree"\s*:\s*"?false', re.IGNORECASE)
PAYWALL_TEXT = re.compile(
    r"subscribe to (continue|read|keep)|already a subscriber|subscribers? only|"
    r"to continue reading|to read (the full|this) (article|story)",
    re.IGNORECASE,
)
HTML_LANG = re.compile(rb"<html[^>]*?\slang=[\"']?([a-zA-Z]{2,3})", re.IGNORECASE)
FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*\n?", re.DOTALL)
# Inline styles that hide an element from readers: its text is not part of the article.
HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


@dataclass
class Item:
    """One article of a document, or why one part of it (a JSONL line) failed."""

    where: str  # the document's name, or "name:line" for a JSONL line
    article: Article | None = None
    error: str = ""
    notes: list[str] = field(default_factory=list)  # what was cut, e.g. an over-long title
    line: int = 0  # its line number in a JSONL, else 0


@dataclass
class Parsed:
    """The articles a document held, the parts that failed and the notes (JSONL lines)."""

    articles: list[Article] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)


def parse(source: Source) -> Parsed:
    """Parse a whole document into articles; raise InputError when none can be read."""
    parsed = Parsed()
    for item in iter_parse(source):
        if item.article is not None:
            parsed.articles.append(item.article)
        else:
            parsed.failures.append((item.where, item.error))
        parsed.notes += [(item.where, note) for note in item.notes]
    return parsed


def iter_parse(source: Source) -> Iterator[Item]:
    """The document's articles one by one (a JSONL is never held whole in memory)."""
    if source.kind == "jsonl":
        empty = True
        for item in iter_jsonl(source):
            empty = False
            yield item
        if empty:
            raise EmptyDocument(Said("no article text found"))
        return
    notes: list[str] = []
    article = PARSERS[source.kind](source, notes)
    if not article.url and source.url:
        article.url = source.url
    yield Item(source.name, article, notes=notes)


def decode(data: bytes) -> str:
    """UTF-8 text with newlines normalised; other encodings are refused, not guessed."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            Said("not valid UTF-8 text (bad byte at offset {offset})", offset=exc.start)
        ) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


def markdown_article(source: Source, notes: list[str]) -> Article:
    text = decode(source.data)
    fields: dict[Any, Any] = {}
    match = FRONT_MATTER.match(text)
    if match:
        fields = load_front_matter(match.group(1))
        text = text[match.end() :]
    return article_from_fields(fields, text, notes)


def parse_markdown(source: Source) -> Parsed:
    """A Markdown document (corpus files are read back with this)."""
    return Parsed([markdown_article(source, [])])


def text_article(source: Source, notes: list[str]) -> Article:
    title, body = split_title(decode(source.data))
    return article_from_fields({"title": title}, body, notes)


def html_article(source: Source, notes: list[str]) -> Article:
    import trafilatura  # slow import: only when HTML arrives

    try:
        tree = trafilatura.load_html(source.data)
        if tree is not None:
            drop_hidden(tree)
        extracted = (
            trafilatura.bare_extraction(
                tree,
                url=source.url or None,
                with_metadata=True,
                include_comments=False,
                include_tables=False,
            )
            if tree is not None
            else None
        )
    except Exception as exc:  # trafilatura, htmldate and lxml fail in their own ways on junk
        log.debug("HTML extraction failed", exc_info=True)
        raise InputError(
            Said("unreadable HTML page ({error})", error=exc.__class__.__name__)
        ) from exc
    # A trafilatura Document (a dict in older releases), or None when nothing was found.
    doc: dict[str, Any] = {}
    if isinstance(extracted, dict):
        doc = extracted
    elif extracted is not None:
        doc = extracted.as_dict()
    text = str(doc.get("text") or "").strip()
    if not text:
        raise EmptyDocument(
            Said("no article text found in the page (not an article, or paywalled)")
        )
    check_article_text(text, source.data)
    title = " ".join(str(doc.get("title") or "").split())
    first, _, rest = text.partition("\n")
    if title and rest.strip() and " ".join(first.split()) == title:
        text = rest  # the headline is the title, not the first line of the body
    fields = {
        "title": title,
        "source": doc.get("sitename") or doc.get("hostname") or "",
        "published": doc.get("date") or "",
        "url": doc.get("url") or source.url,
        "author": doc.get("author") or "",
        "language": doc.get("language") or page_language(source.data),
    }
    return article_from_fields(fields, text, notes)


def drop_hidden(tree: Any) -> None:
    """Remove what a reader never sees, so it cannot be indexed or quoted: elements with the
    `hidden` attribute, `<template>` contents, and inline `display:none`/`visibility:hidden`.

    `hidden="until-found"` stays: the browser shows it to a reader who searches the page.
    (`aria-hidden="true"` and `display:none` are also dropped by trafilatura itself.)
    """
    doomed = [
        el
        for el in tree.iter()
        if isinstance(el.tag, str)
        and (
            el.tag.lower() == "template"
            or ("hidden" in el.attrib and el.get("hidden", "").lower() != "until-found")
            or HIDDEN_STYLE.search(el.get("style") or "")
        )
    ]
    for el in doomed:
        parent = el.getparent()
        if parent is not None:
            el.drop_tree()  # keeps the text that follows the element


def check_article_text(text: str, page: bytes) -> None:
    """Refuse what an extractor pulls from a page that is not an article.

    Login forms, section fronts and paywall teasers yield menus and labels but hardly any
    running text: lines that are long enough and end like a sentence.
    """
    prose = [
        line
        for line in (raw.strip() for raw in text.split("\n"))
        if len(line) >= 40 and line.rstrip(CLOSING).endswith(SENTENCE_ENDS)
    ]
    if sum(len(line) for line in prose) >= MIN_ARTICLE_CHARS:
        return
    words = sum(len(line.split()) for line in prose)
    if PAYWALLED.search(page) or PAYWALL_TEXT.search(text):
        raise EmptyDocument(
            Said(
                "the page is paywalled: only {words} words of the article are visible; "
                "save the full text and send it as a file",
                words=words,
            )
        )
    raise EmptyDocument(
        Said(
            "no article text found in the page (only {words} words of running text): "
            "not a news article?",
            words=words,
        )
    )


def page_language(page: bytes) -> str:
    """The primary language of `<html lang="en-GB">` ("en"), or ""."""
    match = HTML_LANG.search(page[:4096])
    return match.group(1).decode("ascii").lower() if match else ""


def pdf_article(source: Source, notes: list[str]) -> Article:
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError

    try:
        reader = PdfReader(BytesIO(source.data))
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except LimitReachedError as exc:
        raise InputError(
            Said("PDF refused: a part inflates past pypdf's limits ({error})", error=exc)
        ) from exc
    except Exception as exc:  # pypdf raises many kinds of errors on damaged or hostile files
        log.debug("PDF parsing failed", exc_info=True)
        raise InputError(
            Said("corrupt or unreadable PDF ({error})", error=exc.__class__.__name__)
        ) from exc
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise EmptyDocument(Said("PDF has no text layer (a scan?): run OCR first"))
    return article_from_fields({"title": str(meta_title)}, text, notes)


def docx_article(source: Source, notes: list[str]) -> Article:
    try:
        title, author, paragraphs = read_docx(source.data)
    except Exception as exc:  # zipfile and lxml raise their own errors on damaged files
        log.debug("DOCX parsing failed", exc_info=True)
        raise InputError(
            Said("corrupt or unreadable DOCX ({error})", error=exc.__class__.__name__)
        ) from exc
    # The core "created" property is when the file was made, not a publication date: unused.
    fields: dict[str, Any] = {"title": title, "author": author}
    return article_from_fields(fields, "\n\n".join(paragraphs), notes)


def iter_jsonl(source: Source) -> Iterator[Item]:
    """One Item per non-blank line: its article, or why it failed (with the line number)."""
    for number, line, size in source.lines():
        where = f"{source.name}:{number}"
        if line is None:
            limit = mb(source.max_line_bytes)
            reason = Said(
                "line is {size} MB, over the {limit} MB limit per article",
                size=mb(size),
                limit=limit,
            )
            yield Item(where, error=reason, line=number)
            continue
        if number == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")
        if not line.strip():
            continue
        notes: list[str] = []
        try:
            article = jsonl_article(line, notes)
        except InputError as exc:
            yield Item(where, error=message_of(exc), line=number)
        else:
            yield Item(where, article, notes=notes, line=number)


def jsonl_article(line: bytes, notes: list[str]) -> Article:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            Said("not valid UTF-8 text (bad byte at column {column})", column=exc.start + 1)
        ) from exc
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(Said("invalid JSON ({error})", error=exc.msg)) from exc
    except RecursionError as exc:
        raise InputError(Said("invalid JSON (nested too deeply)")) from exc
    except ValueError as exc:  # Python reads integers of at most 4,300 digits
        raise InputError(Said("invalid JSON (a number too long to read)")) from exc
    if not isinstance(record, dict):
        raise InputError(Said("line is not a JSON object"))
    return article_from_fields(record, notes=notes)


PARSERS: dict[str, Callable[[Source, list[str]], Article]] = {
    "markdown": markdown_article,
    "text": text_article,
    "html": html_article,
    "pdf": pdf_article,
    "docx": docx_article,
}
