"""Bytes -> Articles: Markdown with front matter, plain text, HTML, PDF, DOCX and JSONL."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

import yaml

from bot.errors import EmptyDocument, InputError
from bot.models import Article
from bot.sources import Source

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
# Metadata keys accepted from front matter, JSONL and captions, mapped to Article fields.
ALIASES = {
    "title": "title",
    "headline": "title",
    "text": "text",
    "body": "text",
    "source": "source",
    "outlet": "source",
    "publisher": "source",
    "sitename": "source",
    "published": "published",
    "date": "published",
    "publish_date": "published",
    "url": "url",
    "link": "url",
    "language": "language",
    "lang": "language",
    "authors": "authors",
    "author": "authors",
    "license": "license",
    "attribution": "attribution",
    "id": "id",
    "doc_id": "id",
}


@dataclass
class Parsed:
    """The articles a document held, and the parts of it that failed (JSONL lines)."""

    articles: list[Article] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def parse(source: Source) -> Parsed:
    """Parse a document into articles; raise InputError when none can be read."""
    parser = PARSERS[source.kind]
    parsed = parser(source)
    for article in parsed.articles:
        if not article.url and source.url:
            article.url = source.url
    if not parsed.articles and not parsed.failures:
        raise EmptyDocument("no article text found")
    return parsed


def decode(data: bytes) -> str:
    """UTF-8 text with newlines normalised; other encodings are refused, not guessed."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 text (bad byte at offset {exc.start})") from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


def clean_text(text: str) -> str:
    """The article body as stored: normalised newlines, no outer blank space."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def parse_date(value: Any) -> dt.date | None:
    """ISO dates, datetimes and YYYY/MM/DD; anything unreadable is None, never a guess."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip().replace("/", "-")
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def article_from_fields(fields: dict[str, Any], text: str | None = None) -> Article:
    """Build an Article from loosely named metadata (front matter, a JSONL record, a caption)."""
    meta: dict[str, Any] = {}
    for key, value in fields.items():
        target = ALIASES.get(str(key).lower())
        if target and target not in meta and value not in (None, ""):
            meta[target] = value
    body = clean_text(str(text if text is not None else meta.get("text", "")))
    title = " ".join(str(meta.get("title", "")).split())
    authors = meta.get("authors", [])
    if isinstance(authors, str):
        authors = [a.strip() for a in re.split(r"[,;]| and ", authors) if a.strip()]
    published = parse_date(meta.get("published"))
    if meta.get("published") and published is None:
        raise InputError(f"unreadable date {meta['published']!r}: use YYYY-MM-DD")
    if not body:
        raise EmptyDocument("no article text")
    if not title:
        title, body = split_title(body)
    return Article(
        title=title,
        text=body,
        source=str(meta.get("source", "")).strip(),
        published=published,
        url=str(meta.get("url", "")).strip(),
        language=str(meta.get("language", "")).strip(),
        authors=[str(a) for a in authors],
        license=str(meta.get("license", "")).strip(),
        attribution=str(meta.get("attribution", "")).strip(),
        id=str(meta.get("id", "")).strip(),
    )


def metadata_lines(text: str) -> dict[str, str]:
    """`source: Reuters` / `date: 2025-11-20` / `url: https://…` lines (a Telegram caption)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ALIASES and value.strip():
            fields[ALIASES[key.strip().lower()]] = value.strip()
    return fields


def apply_metadata(article: Article, fields: dict[str, str]) -> Article:
    """Override an article's metadata with what an admin stated (dates are checked)."""
    for key, value in fields.items():
        if key == "published":
            day = parse_date(value)
            if day is None:
                raise InputError(f"unreadable date {value!r}: use YYYY-MM-DD")
            article.published = day
        elif key == "authors":
            article.authors = [a.strip() for a in value.split(",") if a.strip()]
        elif key in ("title", "source", "url", "language", "license", "attribution"):
            setattr(article, key, value)
    return article


def split_title(text: str) -> tuple[str, str]:
    """First non-empty line is the title; the rest is the body (or the whole if one line)."""
    first, _, rest = text.strip().partition("\n")
    title = first.strip().lstrip("#").strip()
    rest = clean_text(rest)
    return title[:300], rest or text.strip()


def parse_markdown(source: Source) -> Parsed:
    text = decode(source.data)
    fields: dict[str, Any] = {}
    match = FRONT_MATTER.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1))
        except yaml.YAMLError as exc:
            raise InputError(f"front matter is not valid YAML: {exc.__class__.__name__}") from exc
        if not isinstance(loaded, dict):
            raise InputError("front matter is not a YAML mapping")
        fields = loaded
        text = text[match.end() :]
    return Parsed([article_from_fields(fields, text)])


def parse_text(source: Source) -> Parsed:
    title, body = split_title(decode(source.data))
    return Parsed([article_from_fields({"title": title}, body)])


def parse_html(source: Source) -> Parsed:
    import trafilatura  # slow import: only when HTML arrives

    extracted = trafilatura.bare_extraction(
        source.data,
        url=source.url or None,
        with_metadata=True,
        include_comments=False,
        include_tables=False,
    )
    # A trafilatura Document (a dict in older releases), or None when nothing was found.
    doc: dict[str, Any] = {}
    if isinstance(extracted, dict):
        doc = extracted
    elif extracted is not None:
        doc = extracted.as_dict()
    text = str(doc.get("text") or "").strip()
    if not text:
        raise EmptyDocument("no article text found in the page (not an article, or paywalled)")
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
    return Parsed([article_from_fields(fields, text)])


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
            f"the page is paywalled: only {words} words of the article are visible; "
            "save the full text and send it as a file"
        )
    raise EmptyDocument(
        f"no article text found in the page (only {words} words of running text): "
        "not a news article?"
    )


def page_language(page: bytes) -> str:
    """The primary language of `<html lang="en-GB">` ("en"), or ""."""
    match = HTML_LANG.search(page[:4096])
    return match.group(1).decode("ascii").lower() if match else ""


def parse_pdf(source: Source) -> Parsed:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(BytesIO(source.data))
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"corrupt or unreadable PDF ({exc.__class__.__name__})") from exc
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise EmptyDocument("PDF has no text layer (a scan?): run OCR first")
    return Parsed([article_from_fields({"title": str(meta_title)}, text)])


def parse_docx(source: Source) -> Parsed:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(BytesIO(source.data))
    except (PackageNotFoundError, KeyError, ValueError) as exc:
        raise InputError(f"corrupt or unreadable DOCX ({exc.__class__.__name__})") from exc
    except Exception as exc:  # lxml raises its own tree errors on damaged XML
        raise InputError(f"corrupt or unreadable DOCX ({exc.__class__.__name__})") from exc
    props = document.core_properties
    paragraphs = [p.text.strip() for p in document.paragraphs if p.text.strip()]
    # The core "created" property is when the file was made, not a publication date: unused.
    fields: dict[str, Any] = {"title": props.title or "", "author": props.author or ""}
    return Parsed([article_from_fields(fields, "\n\n".join(paragraphs))])


def parse_jsonl(source: Source) -> Parsed:
    parsed = Parsed()
    for number, line in enumerate(decode(source.data).split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{source.name}:{number}"
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise InputError("line is not a JSON object")
            if not str(record.get("text", "")).strip():
                raise EmptyDocument("no text")
            parsed.articles.append(article_from_fields(record))
        except json.JSONDecodeError as exc:
            parsed.failures.append((where, f"invalid JSON ({exc.msg})"))
        except InputError as exc:
            parsed.failures.append((where, str(exc)))
    return parsed


PARSERS: dict[str, Callable[[Source], Parsed]] = {
    "markdown": parse_markdown,
    "text": parse_text,
    "html": parse_html,
    "pdf": parse_pdf,
    "docx": parse_docx,
    "jsonl": parse_jsonl,
}
