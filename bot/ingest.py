"""Orchestration: source -> parse -> corpus -> chunk -> embed -> store. Idempotent, resumable.

Order of writes for each article, so that a crash at any point is repaired on the next run:
corpus file (atomic) -> manifest row 'indexing' -> chunks and vectors -> manifest 'ready'.
A removal runs the other way: manifest 'removing' (hidden) -> corpus file deleted -> entry gone.
`repair()` redoes 'indexing' rows, finishes 'removing' ones, indexes corpus files the manifest
lacks, re-embeds articles whose vectors are missing, and drops index entries whose file is gone
(unless most files vanished at once: a missing volume is not a mass deletion).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from bot import manifest, sources
from bot.batch import INTERNAL, Batch, Progress
from bot.chunk import Chunker
from bot.corpus import Corpus, assign_id
from bot.embed import Embedder
from bot.errors import InputError, NewsdeskError, NotFound, StorageError, storage_problem
from bot.fetch import Fetcher
from bot.i18n import Said, message_of
from bot.models import Article, IngestReport
from bot.parse import Item, apply_metadata, iter_parse
from bot.store import HEX_PREFIX, ArticleRow, Store

log = logging.getLogger(__name__)
SourceOrError = sources.Source | InputError
# Repair keeps index entries whose files vanished when more than this share of them (and more
# than PRUNE_MIN_FILES) went at once: an unmounted volume, not an editor's deletions.
PRUNE_MAX_SHARE = 0.5
PRUNE_MIN_FILES = 5


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
        sentence_vectors: bool = True,
    ) -> None:
        self.corpus = corpus
        self.store = store
        self.embedder = embedder
        self.chunker = chunker
        self.max_bytes = max_bytes
        self.fetch_timeout = fetch_timeout
        # Without one given: public addresses only, nothing on the local network.
        self.fetcher = fetcher or Fetcher(timeout=fetch_timeout, max_bytes=max_bytes)
        self.sentence_vectors = sentence_vectors  # store them with the chunks (README "Speed")

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
        self._check_built_with()
        report = IngestReport()
        run = Batch(self, report, progress, bar=False)
        for article in articles:
            run.guarded_add(article.title or "article", article, origin=None)
        run.finish()
        return report

    def ingest_sources(
        self,
        items: Iterable[tuple[str, SourceOrError]],
        progress: Progress | None = None,
        bar: bool = False,
        metadata: dict[str, str] | None = None,
        force: bool = False,
    ) -> IngestReport:
        """Parse and ingest sources; `metadata` (an admin's caption) overrides what was parsed.

        Each failure (a whole document, or one JSONL line with its number) is reported and the
        rest goes on. A JSONL is streamed: its articles are indexed as they are read.
        `force` re-embeds articles even when unchanged (reindex).
        """
        if not force:
            self._check_built_with()
        report = IngestReport()
        run = Batch(self, report, progress, bar, force=force)
        for name, source in items:
            if isinstance(source, InputError):
                report.failed.append((name, message_of(source)))
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
                        run.guarded_add(item.where if item.line else name, article, source.path)
                    elif lines:
                        run.expect(-1)  # a failed line is no article to wait for
            except InputError as exc:
                report.failed.append((name, message_of(exc)))
            except (OSError, sqlite3.Error, NewsdeskError):
                raise  # the disk or the index, not this document: every later one would fail
            except Exception:  # a parser bug must not cost the rest of the batch
                log.exception("parsing %s failed", name)
                report.failed.append((name, INTERNAL))
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
            report.failed.append((name, message_of(exc)))
            return None
        report.notes += [(name, note) for note in item.notes]
        if item.line:  # a JSONL line: one version of an article per file
            key = assign_id(article)
            if key in first_seen:
                basis = "id" if article.id else "url" if article.url else "title and text"
                duplicate = Said(
                    "duplicate of line {line} (same {basis}): this line was not ingested",
                    line=first_seen[key],
                    basis=basis,
                )
                report.failed.append((name, duplicate))
                return None
            first_seen[key] = item.line
        return article

    def reindex(self, bar: bool = False) -> IngestReport:
        """Rebuild the index from corpus/, article by article, without emptying it first.

        Every corpus file is parsed again and its article's chunks are replaced once the new
        ones are embedded; a file that fails keeps its old chunks (and is reported). Articles
        whose file is gone are dropped at the end. Vectors of another embedding model cannot
        be mixed with the new ones, so after a model change the vectors are dropped first
        (keyword search keeps working meanwhile).
        """
        if not any(True for _ in self.corpus.paths()):
            raise NewsdeskError(
                f"{self.corpus.root} is missing or holds no articles: reindex would empty the "
                "index. Check NEWSDESK_CORPUS_DIR (an unmounted volume?); to drop every article "
                "on purpose, run `newsdesk repair --prune`"
            )
        before = manifest.recorded(self.store)
        if before and before.vectors() != self.built_with.vectors():
            log.warning("dropping the vectors of %s before re-embedding", before.model)
            self.store.reset_vectors()
        report = self.ingest_sources(self._sources([self.corpus.root]), bar=bar, force=True)
        parsed = {str(a.path) for a in report.added + report.updated + report.unchanged}
        failed = {name for name, _ in report.failed}
        for row in self.store.articles():
            if row.path not in parsed and row.path not in failed and not Path(row.path).exists():
                log.info("article %s has no file any more: dropping it", row.id)
                self.store.delete_article(row.id)
        self._drop_orphans()
        manifest.record(self.store, self.built_with)
        return report

    def remove(self, article_id: str) -> Article:
        """Delete an article from corpus/ and then from the index; a unique id prefix will do.

        The manifest first marks it 'removing' (hidden from answers at once), then its file
        goes, then its index entry: a crash or a read-only corpus at any step never brings a
        takedown back, and the next remove or repair finishes it.
        """
        row = self.resolve(article_id)
        path = Path(row.path)
        self.store.collection.count()  # a vector store that is down fails here, before any step
        self.store.mark([row.id], "removing")
        self._delete_file(path)
        self.store.delete_article(row.id)
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
        """The one article whose id starts with these hex digits (taken literally)."""
        prefix = article_id.strip().lower()
        if not HEX_PREFIX.match(prefix):
            raise NotFound(
                f"{article_id!r} is not an article id: give its first hex digits (0-9, a-f), "
                "as `newsdesk docs` shows them"
            )
        matches = self.store.find_articles(prefix)
        if not matches:
            raise NotFound(f"no article with id {prefix!r}: see `newsdesk docs`")
        if len(matches) > 1:
            listed = "; ".join(f"{r.id} {r.title[:50]}" for r in matches[:10])
            more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
            raise NotFound(
                f"{len(matches)} articles start with {prefix!r}: {listed}{more}. "
                "Nothing was changed: give more of the id"
            )
        return matches[0]

    def repair(self, bar: bool = False, prune: bool = False) -> IngestReport:
        """Make index and corpus agree after a crash: finish or roll back half-done work.

        Entries whose file is gone are dropped, unless the corpus folder is missing or empty
        or most files vanished at once (then they are kept, and the report says why);
        `prune=True` drops them anyway.
        """
        self._check_built_with()
        report = IngestReport()
        rows = self.store.articles()
        for row in rows:
            if row.state == "removing":  # a takedown a crash interrupted: finish it
                try:
                    self._delete_file(Path(row.path))
                except StorageError as exc:
                    report.notes.append((row.id, f"stays hidden, not yet removed: {exc}"))
                    continue
                self.store.delete_article(row.id)
        rows = [r for r in rows if r.state != "removing"]
        known = {row.path for row in rows}
        gone = [row for row in rows if not Path(row.path).exists()]
        if gone and (prune or self._safe_to_prune(len(gone), len(rows))):
            for row in gone:
                log.warning(
                    "article %s lost its file %s: removing it from the index", row.id, row.path
                )
                self.store.delete_article(row.id)
        elif gone:
            note = (
                f"{len(gone)} of {len(rows)} indexed articles have no file in "
                f"{self.corpus.root} (the folder is missing, empty, or most files vanished at "
                "once): kept them in the index. Check NEWSDESK_CORPUS_DIR; if the files were "
                "deleted on purpose, run `newsdesk repair --prune`"
            )
            log.warning("%s", note)
            report.notes.append((str(self.corpus.root), note))
        lost = {str(r.path) for r in gone}
        todo = [Path(r.path) for r in rows if r.state != "ready" and r.path not in lost]
        todo += [p for p in self.corpus.paths() if str(p) not in known]
        todo += self._missing_vectors(lost)
        self._drop_orphans()
        if todo:
            report.merge(self.ingest(list(dict.fromkeys(todo)), bar=bar))
        manifest.record(self.store, self.built_with)
        return report

    # -- integrity -------------------------------------------------------------------------

    @property
    def built_with(self) -> manifest.BuiltWith:
        return manifest.BuiltWith.of(self.embedder, self.chunker)

    def _check_built_with(self) -> None:
        manifest.check(self.store, self.built_with)

    def _safe_to_prune(self, gone: int, indexed: int) -> bool:
        if not any(True for _ in self.corpus.paths()):
            return False
        return not (gone > PRUNE_MIN_FILES and gone > PRUNE_MAX_SHARE * indexed)

    def _missing_vectors(self, skip: set[str]) -> list[Path]:
        """Articles whose vectors the vector store lacks (a new server, a lost folder)."""
        have = self.store.vector_ids()
        short = {owner for chunk, owner in self.store.chunk_owners().items() if chunk not in have}
        rows = [
            r
            for r in self.store.articles()
            if r.id in short and r.path not in skip and r.state != "removing"
        ]
        if rows:
            log.warning(
                "%d articles have chunks without vectors in %s: re-embedding them",
                len(rows),
                self.store.collection.where,
            )
            self.store.mark([r.id for r in rows], "indexing")
        return [Path(r.path) for r in rows]

    def _drop_orphans(self) -> None:
        """Vectors whose chunk row was never committed (a crash between the two stores)."""
        orphans = self.store.vector_ids() - self.store.all_chunk_ids()
        if orphans:
            self.store.delete_vectors(sorted(orphans))

    def _delete_file(self, path: Path) -> None:
        if not (path.exists() and self.corpus.contains(path)):
            return
        try:
            self.corpus.delete(path)
        except OSError as exc:
            raise StorageError(
                f"cannot delete {path} ({storage_problem(exc) or exc.strerror}): the article "
                "is hidden from answers; fix the corpus folder and run the remove again"
            ) from exc

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
