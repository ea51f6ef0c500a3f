"""The corpus folder, the source of truth: one Markdown file with YAML front matter per article."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import yaml

from bot.models import Article

ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")
FRONT_KEYS = (
    "id",
    "title",
    "source",
    "published",
    "url",
    "language",
    "authors",
    "license",
    "attribution",
)
NOT_ARTICLES = {"license.md", "readme.md"}


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def assign_id(article: Article) -> str:
    """A stable id: kept if already ours, else from an explicit id, the URL, or the content.

    Content-derived ids make re-ingesting the same article a no-op; URL and explicit ids let a
    changed version of the same story replace the old one.
    """
    if ID_PATTERN.match(article.id):
        return article.id
    if article.id:
        return _hash("id", article.id)[:16]
    if article.url:
        return _hash("url", article.url.strip().rstrip("/"))[:16]
    return _hash("text", article.title, article.text)[:16]


def content_hash(article: Article) -> str:
    """Changes whenever anything that is indexed or shown changes."""
    fields = {k: v for k, v in front_matter(article).items() if k != "id"}
    return _hash(json.dumps(fields, sort_keys=True, default=str), article.text)


def front_matter(article: Article) -> dict[str, object]:
    return {
        "id": article.id,
        "title": article.title,
        "source": article.source,
        "published": article.published.isoformat() if article.published else "",
        "url": article.url,
        "language": article.language,
        "authors": list(article.authors),
        "license": article.license,
        "attribution": article.attribution,
    }


def slugify(title: str, limit: int = 60) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:limit].rstrip("-") or "article"


def render(article: Article) -> str:
    """The file text: front matter, a blank line, then the article body verbatim."""
    meta = yaml.safe_dump(front_matter(article), sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{meta}---\n\n{article.text}\n"


class Corpus:
    """Reads and writes article files under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def contains(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.root.resolve())

    def path_for(self, article: Article) -> Path:
        year = str(article.published.year) if article.published else "undated"
        return self.root / year / f"{slugify(article.title)}-{article.id[:8]}.md"

    def write(self, article: Article) -> Path:
        """Save atomically (temp file + rename) so a crash never leaves half a file."""
        path = article.path if article.path and self.contains(article.path) else None
        path = path or self.path_for(article)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".md")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(render(article))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        article.path = path
        return path

    def read(self, path: Path) -> Article:
        # The parsers (and the fetcher behind them) load with the first read: a question
        # reads no article file.
        from bot.parse import parse_markdown
        from bot.sources import Source

        data = path.read_bytes()
        article = parse_markdown(Source(name=path.name, kind="markdown", data=data)).articles[0]
        article.path = path
        if not article.id:
            # A file dropped in by hand: its place in the corpus is its identity.
            article.id = _hash("path", str(path.relative_to(self.root)))[:16]
        article.id = assign_id(article)
        return article

    def paths(self) -> Iterator[Path]:
        if not self.root.exists():
            return
        for path in sorted(self.root.rglob("*.md")):
            if path.name.lower() not in NOT_ARTICLES and not path.name.startswith("."):
                yield path

    def delete(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        parent = path.parent
        if parent != self.root and parent.exists() and not any(parent.iterdir()):
            parent.rmdir()
