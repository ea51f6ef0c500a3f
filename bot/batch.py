"""One ingest run over a batch of articles: decides added / updated / unchanged, writes each
new article to corpus/ and the manifest, and embeds the chunks of many articles at once.

Per article, in this order (so that repair can finish any of it after a crash): corpus file
(atomic) -> manifest row 'indexing' -> chunks and vectors -> manifest 'ready'.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from bot import manifest, sentence_store
from bot.chunk import embed_text
from bot.corpus import assign_id, content_hash
from bot.errors import InputError, NewsdeskError
from bot.i18n import message_of
from bot.language import article_language
from bot.models import Article, Chunk, IngestReport

if TYPE_CHECKING:
    from bot.ingest import Ingestor

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
# Embed this many chunks at once: full batches keep the encoder at its raw throughput.
FLUSH_CHUNKS = 512
INTERNAL = "internal error, see the log"
# Vectors of texts already embedded in this run, kept to embed a repeated text only once
# (20,000 x 384 float32 = 30 MB).
KNOWN_TEXTS = 20_000
# A run that wrote at least this many chunks, and this share of the index, is a bulk load:
# the keyword index is merged after it (a reindex always is).
OPTIMIZE_CHUNKS = 1_000
OPTIMIZE_SHARE = 0.1


@dataclass
class Pending:
    article: Article
    status: str  # "added" or "updated"
    chunks: list[Chunk] = field(default_factory=list)


class Batch:
    """One ingest run: decides added/updated/unchanged and embeds in full batches."""

    def __init__(
        self,
        ingestor: Ingestor,
        report: IngestReport,
        progress: Progress | None,
        bar: bool,
        force: bool = False,
    ) -> None:
        self.ing = ingestor
        self.force = force
        self.report = report
        self.progress = progress
        self.pending: list[Pending] = []
        self.seen: set[str] = set()
        self.known: dict[str, np.ndarray] = {}
        self.known_sentences: dict[str, np.ndarray] = {}
        self.done = 0
        self.written = 0  # chunks stored by this run
        self.total = 0
        self.bar = tqdm(total=0, unit=" articles", disable=not bar, dynamic_ncols=True)

    def expect(self, n: int) -> None:
        self.total += n
        self.bar.total = self.total
        self.bar.refresh()

    def guarded_add(self, name: str, article: Article, origin: Path | None) -> None:
        """Add one article; a failure of this one document is reported, the batch goes on.

        Storage and index errors (a full disk, an unreachable server) stop the run: every
        later article would fail the same way.
        """
        try:
            self.add(article, origin)
        except InputError as exc:
            self.report.failed.append((name, message_of(exc)))
            return
        except (OSError, sqlite3.Error, NewsdeskError):
            raise
        except Exception:
            log.exception("ingesting %s failed", name)
            self.report.failed.append((name, INTERNAL))
            return
        if sum(len(p.chunks) for p in self.pending) >= FLUSH_CHUNKS:
            self.flush()

    def add(self, article: Article, origin: Path | None) -> None:
        ing = self.ing
        if origin is not None and ing.corpus.contains(origin):
            article.path = origin  # already in corpus/: index it where it is
        if not article.id and article.path is not None:
            article = ing.corpus.read(article.path)  # a hand-made file gets its path-based id
        article.id = assign_id(article)
        # A new article is saved with its language; a file already in corpus/ is not rewritten,
        # so its hash is taken as written and its language only goes to the manifest.
        saved = article.path is None
        if saved:
            article.language = article_language(article.language, article.title, article.text)
        digest = content_hash(article)
        if not saved:
            article.language = article_language(article.language, article.title, article.text)
        row = ing.store.article(article.id)
        if row and row.state == "removing" and origin is not None and ing.corpus.contains(origin):
            raise InputError(
                f"article {row.id} is being removed (its file could not be deleted yet): "
                "not indexed again"
            )
        if article.id in self.seen or (
            not self.force
            and row
            and row.content_hash == digest
            and row.state == "ready"
            and Path(row.path).exists()
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
        chunks = ing.chunker.chunk(article)
        ing.store.begin_article(article, digest)
        self.pending.append(Pending(article, status, chunks))

    def flush(self) -> None:
        if not self.pending:
            return
        texts = [embed_text(p.article.title, c.text) for p in self.pending for c in p.chunks]
        vectors = self._vectors(texts)
        sentences = self._sentences()
        encoder = sentence_store.encoder_key(self.ing.embedder)
        offset = 0
        for item in self.pending:
            n = len(item.chunks)
            self.ing.store.put_chunks(
                item.article,
                item.chunks,
                vectors[offset : offset + n],
                new=item.status == "added",
                sentences=sentences[offset : offset + n],
                encoder=encoder,
            )
            offset += n
            self.written += n
            getattr(self.report, item.status).append(item.article)
            self.report.chunks[item.article.id] = n
            self._tick()
        self.pending = []

    def _vectors(self, texts: list[str]) -> np.ndarray:
        """Each distinct text embedded once per run: wire copy republished by many outlets
        (same headline, same paragraphs) costs one encode, indexed for every article."""
        new = [t for t in dict.fromkeys(texts) if t not in self.known]
        if new:
            for text, vector in zip(new, self.ing.embedder.encode_passages(new), strict=True):
                if len(self.known) >= KNOWN_TEXTS:
                    del self.known[next(iter(self.known))]  # oldest first
                self.known[text] = vector
        return np.vstack([self.known[t] for t in texts])

    def _sentences(self) -> list[sentence_store.ChunkSentences]:
        """The pending chunks' sentence vectors, by the answer composer's own encoder; none
        when they are not kept (NEWSDESK_SENTENCE_VECTORS=false)."""
        if not self.ing.sentence_vectors:
            return []
        if len(self.known_sentences) > KNOWN_TEXTS:
            self.known_sentences.clear()
        rows = [(c.id, c.text, p.article.language) for p in self.pending for c in p.chunks]
        return sentence_store.compute(self.ing.embedder, rows, self.known_sentences)

    def _tick(self) -> None:
        self.done += 1
        self.bar.update(1)
        if self.progress:
            self.progress(self.done, max(self.total, self.done))

    def finish(self) -> None:
        self.flush()
        self.bar.close()
        bulk = self.written >= OPTIMIZE_CHUNKS
        if bulk and self.written >= OPTIMIZE_SHARE * self.ing.store.count_chunks():
            self.ing.store.optimize_keywords()
        if self.report.added or self.report.updated:
            manifest.record(self.ing.store, self.ing.built_with)
