"""Orchestration: source -> parse -> corpus -> chunk -> embed -> store. Idempotent, resumable.

Order of writes for each article, so that a crash at any point is repaired on the next run:
corpus file (atomic) -> manifest row 'indexing' -> chunks and vectors -> manifest 'ready'.
`repair()` redoes 'indexing' rows, indexes corpus files the manifest lacks, and drops index
entries whose file is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from bot import sources
from bot.chunk import Chunker, embed_text
from bot.corpus import Corpus, assign_id, content_hash
from bot.embed import Embedder
from bot.errors import InputError, NotFound
from bot.fetch import Fetcher
from bot.models import Article, Chunk, IngestReport
from bot.parse import Item, apply_metadata, iter_parse
from bot.store import ArticleRow, Store

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
SourceOrError = sources.Source | InputError
# Embed this many chunks at once: full batches keep the encoder at its raw throughput.
FLUSH_CHUNKS = 512


@dataclass
class _Pending:
    article: Article
    status: str  # "added" or "updated"
    chunks: list[Chunk] = field(default_factory=list)


class Ingestor:
    def __init__(
        self,
        corpus: Corpus,
        store: Store,
        embedder: Embedder,
        chunker: Chunker,
        max_bytes: int,
        fetch_timeout: float = 20.0,
        fetcher: Fetcher | None = None,
    ) -> None:
        self.corpus = corpus
        self.store = store
        self.embedder = embedder
        self.chunker = chunker
        self.max_bytes = max_bytes
        self.fetch_timeout = fetch_timeout
        # Without one given: public addresses only, nothing on the local network.
        self.fetcher = fetcher or Fetcher(timeout=fetch_timeout, max_bytes=max_bytes)

    # -- entry points ----------------------------------------------------------------------

    def ingest(
        self, items: Iterable[str | Path], progress: Progress | None = None, bar: bool = False
    ) -> IngestReport:
        """Ingest files, folders and URLs; each failure is reported and the rest proceeds."""
        return self.ingest_sources(self._sources(items), progress=progress, bar=bar)

    def ingest_articles(
        self, articles: Iterable[Article], progress: Progress | None = None
    ) -> IngestReport:
        """Ingest articles built elsewhere (pasted text, a forwarded message)."""
        report = IngestReport()
        run = _Run(self, report, progress, bar=False)
        for article in articles:
            run.add(article, origin=None)
        run.finish()
        return report

    def ingest_sources(
        self,
        items: Iterable[tuple[str, SourceOrError]],
        progress: Progress | None = None,
        bar: bool = False,
        metadata: dict[str, str] | None = None,
    ) -> IngestReport:
        """Parse and ingest sources; `metadata` (an admin's caption) overrides what was parsed.

        Each failure (a whole document, or one JSONL line with its number) is reported and the
        rest goes on. A JSONL is streamed: its articles are indexed as they are read.
        """
        report = IngestReport()
        run = _Run(self, report, progress, bar)
        for name, source in items:
            if isinstance(source, InputError):
                report.failed.append((name, str(source)))
                continue
            lines = source.kind == "jsonl"
            first_seen: dict[str, int] = {}  # article id -> the JSONL line that had it
            try:
                if lines:
                    run.expect(source.count_lines())
                for item in iter_parse(source):
                    article = self._checked(name, item, metadata, first_seen, report)
                    if article is not None:
                        run.expect(0 if lines else 1)
                        run.add(article, origin=source.path)
                    elif lines:
                        run.expect(-1)  # a failed line is no article to wait for
            except InputError as exc:
                report.failed.append((name, str(exc)))
        run.finish()
        return report

    def _checked(
        self,
        name: str,
        item: Item,
        metadata: dict[str, str] | None,
        first_seen: dict[str, int],
        report: IngestReport,
    ) -> Article | None:
        """The item's article with the caption applied, or None after reporting why not."""
        name = item.where if item.line else name  # "archive.jsonl:12", or the document
        if item.article is None:
            report.failed.append((name, item.error))
            return None
        try:
            article = apply_metadata(item.article, metadata or {}, item.notes)
        except InputError as exc:
            report.failed.append((name, str(exc)))
            return None
        report.notes += [(name, note) for note in item.notes]
        if item.line:  # a JSONL line: one version of an article per file
            key = assign_id(article)
            if key in first_seen:
                basis = "id" if article.id else "url" if article.url else "title and text"
                report.failed.append(
                    (
                        name,
                        f"duplicate of line {first_seen[key]} (same {basis}): "
                        "this line was not ingested",
                    )
                )
                return None
            first_seen[key] = item.line
        return article

    def reindex(self, bar: bool = False) -> IngestReport:
        """Rebuild the whole index from corpus/."""
        self.store.clear()
        return self.ingest([self.corpus.root], bar=bar)

    def remove(self, article_id: str) -> Article:
        """Delete an article from the index and from corpus/; accepts a unique id prefix."""
        row = self.resolve(article_id)
        path = Path(row.path)
        self.store.delete_article(row.id)
        if path.exists() and self.corpus.contains(path):
            self.corpus.delete(path)
        return Article(
            title=row.title,
            text="",
            source=row.source,
            published=row.published,
            url=row.url,
            id=row.id,
            path=path,
        )

    def resolve(self, article_id: str) -> ArticleRow:
        matches = self.store.find_articles(article_id.strip()) if article_id.strip() else []
        if len(matches) != 1:
            reason = "no article" if not matches else f"{len(matches)} articles"
            raise NotFound(f"{reason} with id {article_id!r}: see `newsdesk docs`")
        return matches[0]

    def repair(self, bar: bool = False) -> IngestReport:
        """Make index and corpus agree after a crash: finish or roll back half-done work."""
        known = {row.path: row for row in self.store.articles()}
        todo: list[Path] = []
        for row in known.values():
            path = Path(row.path)
            if not path.exists():
                log.warning("article %s lost its file %s: removing it from the index", row.id, path)
                self.store.delete_article(row.id)
            elif row.state != "ready":
                todo.append(path)
        todo += [p for p in self.corpus.paths() if str(p) not in known]
        # Vectors whose chunk row was never committed (a crash between the two stores).
        orphans = self.store.vector_ids() - self.store.all_chunk_ids()
        if orphans:
            self.store.collection.delete(ids=sorted(orphans))
        return self.ingest(todo, bar=bar) if todo else IngestReport()

    # -- helpers ---------------------------------------------------------------------------

    def _sources(
        self, items: Iterable[str | Path]
    ) -> Iterator[tuple[str, sources.Source | InputError]]:
        for item in items:
            text = str(item)
            if text.startswith(("http://", "https://")):
                try:
                    yield text, sources.from_url(text, self.fetcher)
                except InputError as exc:
                    yield text, exc
                continue
            path = Path(item)
            if path.is_dir():
                files = sorted(p for p in path.rglob("*") if p.is_file() and _wanted(p, path))
            elif path.exists():
                files = [path]
            else:
                yield text, InputError("no such file or folder")
                continue
            for file in files:
                try:
                    yield str(file), sources.from_path(file, self.max_bytes)
                except InputError as exc:
                    yield str(file), exc


def _wanted(path: Path, root: Path) -> bool:
    """In a folder: every file but hidden ones and the corpus licence/readme.

    Unsupported types are kept so that the summary names them instead of skipping silently.
    """
    if any(p.startswith(".") for p in path.relative_to(root).parts):
        return False
    return path.name.lower() not in {"license.md", "readme.md"}


class _Run:
    """One ingest run: decides added/updated/unchanged and embeds in full batches."""

    def __init__(
        self, ingestor: Ingestor, report: IngestReport, progress: Progress | None, bar: bool
    ) -> None:
        self.ing = ingestor
        self.report = report
        self.progress = progress
        self.pending: list[_Pending] = []
        self.seen: set[str] = set()
        self.done = 0
        self.total = 0
        self.bar = tqdm(total=0, unit=" articles", disable=not bar, dynamic_ncols=True)

    def expect(self, n: int) -> None:
        self.total += n
        self.bar.total = self.total
        self.bar.refresh()

    def add(self, article: Article, origin: Path | None) -> None:
        ing = self.ing
        if origin is not None and ing.corpus.contains(origin):
            article.path = origin  # already in corpus/: index it where it is
        if not article.id and article.path is not None:
            article = ing.corpus.read(article.path)  # a hand-made file gets its path-based id
        article.id = assign_id(article)
        digest = content_hash(article)
        row = ing.store.article(article.id)
        if article.id in self.seen or (
            row and row.content_hash == digest and row.state == "ready" and Path(row.path).exists()
        ):
            self.report.unchanged.append(article)
            self._tick()
            return
        self.seen.add(article.id)
        status = "updated" if row else "added"
        if article.path is None:  # from outside corpus/: save it there first
            if row and ing.corpus.contains(Path(row.path)):
                article.path = Path(row.path)  # an update overwrites the same corpus file
            ing.corpus.write(article)
        path = article.path
        assert path is not None
        # A corpus file whose id changed (edited by hand, no id): drop the old entry.
        for other in ing.store.articles_at(path):
            if other.id != article.id:
                ing.store.delete_article(other.id)
        ing.store.begin_article(article, digest)
        item = _Pending(article, status, ing.chunker.chunk(article))
        self.pending.append(item)
        if sum(len(p.chunks) for p in self.pending) >= FLUSH_CHUNKS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        texts = [embed_text(p.article.title, c.text) for p in self.pending for c in p.chunks]
        vectors = self.ing.embedder.encode(texts)
        offset = 0
        for item in self.pending:
            n = len(item.chunks)
            self.ing.store.put_chunks(
                item.article, item.chunks, vectors[offset : offset + n], new=item.status == "added"
            )
            offset += n
            getattr(self.report, item.status).append(item.article)
            self.report.chunks[item.article.id] = n
            self._tick()
        self.pending = []

    def _tick(self) -> None:
        self.done += 1
        self.bar.update(1)
        if self.progress:
            self.progress(self.done, max(self.total, self.done))

    def finish(self) -> None:
        self.flush()
        self.bar.close()
