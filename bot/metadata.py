"""Article metadata from loosely typed fields: YAML front matter, JSONL records, captions.

Every value is checked field by field: text fields take scalars only, lengths are capped (a cut
is reported as a note), dates must be real dates. Front matter is read by a YAML loader that
refuses anchors and aliases (the "billion laughs" bomb) and deep nesting.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import yaml

from bot.errors import EmptyDocument, InputError
from bot.i18n import Said
from bot.models import Article
from bot.sentences import sentence_spans

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
# Longest value kept per descriptive field; longer is cut with "…" and a note says so.
MAX_CHARS = {
    "title": 300,
    "source": 200,
    "language": 35,
    "license": 500,
    "attribution": 500,
    "author": 200,
}
MAX_AUTHORS = 50
# Identity fields are refused when longer: a cut URL or id would name something else.
MAX_IDENTITY_CHARS = {"url": 2048, "id": 256}
MAX_YAML_DEPTH = 20
# Real front matter is a few hundred bytes; pure-Python PyYAML reads ~0.2 MB a second here.
MAX_FRONT_MATTER = 64 * 1024
NO_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class FrontMatterLoader(yaml.SafeLoader):
    """SafeLoader without anchors, aliases, deep nesting or implicit dates.

    Dates stay strings so that `published: 2025-02-30` gets a clear "unreadable date" instead
    of an exception from the date constructor.
    """

    yaml_implicit_resolvers = {  # noqa: RUF012 (PyYAML's own per-class registry)
        first: [(tag, rx) for tag, rx in resolvers if tag != NO_TIMESTAMP]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise InputError(
                Said(
                    "front matter uses a YAML anchor or alias ({syntax}): not allowed, "
                    "write the values out",
                    syntax="&name, *name",  # a value: the catalogs hold no bare "&"
                )
            )
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise InputError(
                    Said("front matter is nested more than {n} levels deep", n=MAX_YAML_DEPTH)
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_front_matter(text: str) -> dict[Any, Any]:
    """The YAML mapping of a front matter block; InputError for anything else."""
    if len(text) > MAX_FRONT_MATTER:
        raise InputError(
            Said(
                "front matter is {size} KB long: at most {limit} KB",
                size=f"{len(text) // 1024:,}",
                limit=MAX_FRONT_MATTER // 1024,
            )
        )
    try:
        loaded = yaml.load(text, Loader=FrontMatterLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        error = exc.__class__.__name__
        raise InputError(Said("front matter is not valid YAML: {error}", error=error)) from exc
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # e.g. an explicit `!!timestamp 2025-02-30`, or an integer of 5,000 digits
        error = exc.__class__.__name__
        raise InputError(
            Said("front matter holds an unreadable value ({error})", error=error)
        ) from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise InputError(Said("front matter is not a YAML mapping"))
    return loaded


def parse_date(value: Any) -> dt.date | None:
    """ISO dates, datetimes and YYYY/MM/DD; anything unreadable is None, never a guess."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, (str, int, float)):
        return None
    text = str(value).strip().replace("/", "-")
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def shown(value: Any, limit: int = 60) -> str:
    """A value as quoted in an error message, never longer than `limit`."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _kind(value: Any) -> Said:
    if isinstance(value, dict):
        return Said("a mapping")
    if isinstance(value, (list, tuple, set, frozenset)):
        return Said("a list")
    return Said("a {type} value", type=type(value).__name__)


def scalar_text(name: str, value: Any) -> str:
    """A text field's value; a list, mapping or binary value is refused with the field's name."""
    if isinstance(value, (str, int, float, bool, dt.date)):
        return str(value)
    raise InputError(Said("{field} must be text, not {kind}", field=name, kind=_kind(value)))


def capped(name: str, text: str, notes: list[str] | None) -> str:
    """`text` on one line, cut to the field's limit with "…"; the cut is noted."""
    text = " ".join(text.split())
    limit = MAX_CHARS[name]
    if len(text) <= limit:
        return text
    if notes is not None:
        notes.append(
            Said(
                "{field} cut to {limit} characters (was {length})",
                field=name,
                limit=limit,
                length=f"{len(text):,}",
            )
        )
    return text[: limit - 1].rstrip() + "…"


def identity(name: str, value: Any) -> str:
    text = scalar_text(name, value).strip()
    if len(text) > MAX_IDENTITY_CHARS[name]:
        raise InputError(
            Said(
                "{field} is {length} characters long: at most {limit}",
                field=name,
                length=f"{len(text):,}",
                limit=MAX_IDENTITY_CHARS[name],
            )
        )
    return text


def author_list(value: Any, notes: list[str] | None) -> list[str]:
    """Names from "A, B and C", a list of names, or a single scalar (`authors: 5` -> ["5"])."""
    if isinstance(value, str):
        names = re.split(r"[,;]| and ", value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            if not isinstance(item, (str, int, float)):
                raise InputError(
                    Said("authors must be names, not a list holding {kind}", kind=_kind(item))
                )
        names = [str(item) for item in value]
    else:
        names = [scalar_text("authors", value)]
    names = [n for n in (" ".join(str(n).split()) for n in names) if n]
    if len(names) > MAX_AUTHORS:
        if notes is not None:
            notes.append(
                Said("authors cut to the first {n} of {total}", n=MAX_AUTHORS, total=len(names))
            )
        names = names[:MAX_AUTHORS]
    return [capped("author", n, notes) for n in names]


def published_date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    day = parse_date(value)
    if day is None:
        if isinstance(value, (dict, list, tuple, set, bytes)):
            raise InputError(
                Said("published must be a date (YYYY-MM-DD), not {kind}", kind=_kind(value))
            )
        raise InputError(Said("unreadable date {value}: use YYYY-MM-DD", value=shown(str(value))))
    return day


def article_from_fields(
    fields: dict[Any, Any], text: str | None = None, notes: list[str] | None = None
) -> Article:
    """Build an Article from loosely named metadata (front matter, a JSONL record, a caption).

    Raises InputError naming the field at fault; appends to `notes` what was cut.
    """
    meta: dict[str, Any] = {}
    for key, value in fields.items():
        target = ALIASES.get(str(key).lower())
        if target and target not in meta and value is not None and not _blank(value):
            meta[target] = value
    record = text is None  # the body is one of the fields (a JSONL record)
    body = clean_text(scalar_text("text", meta.get("text", "")) if text is None else text)
    if record and not body:
        raise EmptyDocument(Said('no text: the article body goes in "text"'))
    title = capped("title", scalar_text("title", meta.get("title", "")), notes)
    published = published_date(meta.get("published"))
    if not body:
        raise EmptyDocument(Said("no article text"))
    if not title:
        first, body = split_title(body)
        # A first line of only "#" marks: the marks are the title rather than none at all.
        title = capped("title", first or body.partition("\n")[0], notes)
    return Article(
        title=title,
        text=body,
        source=capped("source", scalar_text("source", meta.get("source", "")), notes),
        published=published,
        url=identity("url", meta.get("url", "")),
        language=capped("language", scalar_text("language", meta.get("language", "")), notes),
        authors=author_list(meta.get("authors", []), notes),
        license=capped("license", scalar_text("license", meta.get("license", "")), notes),
        attribution=capped(
            "attribution", scalar_text("attribution", meta.get("attribution", "")), notes
        ),
        id=identity("id", meta.get("id", "")),
    )


def _blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


def clean_text(text: str) -> str:
    """The article body as stored: normalised newlines, no outer blank space."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


# A wire dateline standing alone on the first line ("WASHINGTON (AP) —", "New York CNN
# Business —", "LONDON, June 5 (Reuters) -"): where, and who, not what. Short, ending in a dash.
DATELINE = re.compile(r"^[^.!?:\n]{1,60}?\s*(?:—|–|--|\s-)$")
HEADLINE_CHARS = 100  # a title made from the lede is cut to this, at a word


def split_title(text: str) -> tuple[str, str]:
    """First non-empty line is the title; the rest is the body (or the whole if one line).

    A first line that is only a dateline is no headline: a title like "CNN —" tells a reader
    nothing in a citation. The lede's first sentence is the title then, and the dateline
    stays in the body, so nothing of the text is lost."""
    first, _, rest = text.strip().partition("\n")
    title = first.strip().lstrip("#").strip()
    rest = clean_text(rest)
    if rest and len(title.split()) <= 8 and DATELINE.match(title):
        return headline(rest), clean_text(text)
    return title, rest or text.strip()


def headline(lede: str) -> str:
    """The first sentence of `lede` on one line, cut at a word to HEADLINE_CHARS with "…"."""
    line = " ".join(lede.split())
    start, end = sentence_spans(line[: HEADLINE_CHARS * 4])[0]
    sentence = line[start:end].strip()
    if len(sentence) <= HEADLINE_CHARS:
        return sentence
    cut = sentence[: HEADLINE_CHARS - 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:—–-") + "…"


def metadata_lines(text: str) -> dict[str, str]:
    """`source: Reuters` / `date: 2025-11-20` / `url: https://…` lines (a Telegram caption)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ALIASES and value.strip():
            fields[ALIASES[key.strip().lower()]] = value.strip()
    return fields


def apply_metadata(
    article: Article, fields: dict[str, str], notes: list[str] | None = None
) -> Article:
    """Override an article's metadata with what an admin stated (checked like any field)."""
    for key, value in fields.items():
        if key == "published":
            article.published = published_date(value)
        elif key == "authors":
            article.authors = author_list(value.split(","), notes)
        elif key == "url":
            article.url = identity("url", value)
        elif key in ("title", "source", "language", "license", "attribution"):
            setattr(article, key, capped(key, value, notes))
    return article
