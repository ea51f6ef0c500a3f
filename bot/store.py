"""The index: Chroma for vectors, SQLite for the manifest and the FTS5 keyword index.

The only module that talks to the vector collection (opened by bot/chroma.py) and to the
SQLite side indexes. Everything in it can be
rebuilt from corpus/ (`newsdesk reindex`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot import fts, private, sentence_store
from bot.chroma import open_collection
from bot.errors import IndexUnavailable, StorageError, storage_problem
from bot.keyword import BM25_WEIGHTS, POSTINGS_BUDGET, TermCounts, bounded, top_chunks
from bot.models import Article, Chunk, Filters, Passage
from bot.query import chroma_where, date_key, keyword_query, sql_filters
from bot.sentence_store import ChunkSentences

log = logging.getLogger(__name__)
SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    title TEXT NOT NULL,
    source TEXT NOT NULL,
    published TEXT,
    url TEXT NOT NULL,
    language TEXT NOT NULL,
    n_chunks INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,               -- 'indexing' until every chunk is stored, then 'ready'
    ingested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY,
    article_id TEXT NOT NULL REFERENCES articles(id),
    ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
CREATE INDEX IF NOT EXISTS articles_path ON articles(path);
CREATE INDEX IF NOT EXISTS articles_ingested ON articles(ingested_at);
CREATE INDEX IF NOT EXISTS articles_state ON articles(state);
CREATE INDEX IF NOT EXISTS articles_listing
    ON articles(published IS NULL, published DESC, title, id, state);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
    + fts.SCHEMA  # the keyword index: one FTS5 table for English, one for other languages
    + sentence_store.SCHEMA  # each chunk's sentence vectors, for the answer composer
)
# Article states: 'indexing' (being written; repair redoes it), 'ready', 'removing' (a takedown
# in progress: hidden from answers; repair finishes it, never brings it back).
HEX_PREFIX = re.compile(r"^[0-9a-f]{1,16}$")
HORIZON_SLACK = dt.timedelta(minutes=1)


# Newest first, undated last; the id keeps pages stable among equal dates and titles.
LISTING_ORDER = "ORDER BY published IS NULL, published DESC, title, id"


@dataclass
class ArticleRow:
    """An article as the manifest knows it."""

    id: str
    path: str
    content_hash: str
    title: str
    source: str
    published: dt.date | None
    url: str
    n_chunks: int
    state: str
    ingested_at: str
    language: str = ""  # ISO 639-1 code, declared or detected; "" when unknown


class Store:
    """Chroma collection + SQLite manifest and keyword index under one folder."""

    def __init__(
        self,
        index_dir: Path,
        chroma_url: str = "",
        chroma_retries: int = 4,
        chroma_timeout: float = 30.0,
        postings_budget: int = POSTINGS_BUDGET,
    ) -> None:
        self.index_dir = index_dir
        self.postings_budget = postings_budget  # 0: every term of the question, unbounded
        self._counts = TermCounts()
        private.private_dir(index_dir)
        self._lock = threading.RLock()
        try:
            self.db = private.connect(index_dir / "newsdesk.db")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
            fts.upgrade(self.db)
        except sqlite3.DatabaseError as exc:
            problem = storage_problem(exc) or (
                "" if os.access(index_dir, os.W_OK) else "the folder is read-only"
            )
            if problem:  # not a broken index: reindex would not help
                raise StorageError(
                    f"cannot open the index in {index_dir}: {problem} (newsdesk writes there "
                    "even to answer); make it writable"
                ) from exc
            raise IndexUnavailable(
                f"the index database in {index_dir} is unreadable ({exc}); "
                "run `newsdesk reindex` to rebuild it from corpus/"
            ) from exc
        self.collection = open_collection(index_dir, chroma_url, chroma_retries, chroma_timeout)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self.db:
            yield self.db

    # -- writing ---------------------------------------------------------------------------

    def begin_article(self, article: Article, content_hash: str) -> None:
        """Mark an article as being indexed: if we crash now, repair will redo it."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO articles (id, path, content_hash, title, source, published, url, "
                "language, n_chunks, state, ingested_at) VALUES (?,?,?,?,?,?,?,?,0,'indexing',?) "
                "ON CONFLICT(id) DO UPDATE SET path=excluded.path,"
                " content_hash=excluded.content_hash,"
                " title=excluded.title, source=excluded.source, published=excluded.published,"
                " url=excluded.url, language=excluded.language, state='indexing',"
                " ingested_at=excluded.ingested_at",
                (
                    article.id,
                    str(article.path or ""),
                    content_hash,
                    article.title,
                    article.source,
                    article.published.isoformat() if article.published else None,
                    article.url,
                    article.language,
                    _now(),
                ),
            )

    def put_chunks(
        self,
        article: Article,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        new: bool = False,
        sentences: Sequence[ChunkSentences] = (),
        encoder: str = "",
    ) -> None:
        """Replace the article's chunks everywhere, then mark it ready.

        `new`: the article had no manifest row before this ingest, so nothing of it can be
        stored yet and the (costly, filtered) delete in Chroma is skipped. `sentences`: the
        chunks' sentence vectors (made by `encoder`), committed with the chunk rows.
        """
        if not new:
            self._delete_chunks(article.id)
        if chunks:
            self.collection.upsert(
                ids=[c.id for c in chunks],
                embeddings=vectors.tolist(),
                metadatas=[
                    {
                        "article_id": article.id,
                        "ordinal": c.ordinal,
                        "published": date_key(article.published),
                        "source": article.source.lower(),
                    }
                    for c in chunks
                ],
            )
        with self._tx() as db:
            db.executemany(
                'INSERT INTO chunks (id, article_id, ordinal, start, "end", text) '
                "VALUES (?,?,?,?,?,?)",
                [(c.id, c.article_id, c.ordinal, c.start, c.end, c.text) for c in chunks],
            )
            db.executemany(
                *fts.rows_for(article.language, [(c.id, article.title, c.text) for c in chunks])
            )
            if sentences:
                sentence_store.write(db, encoder, sentences)
            db.execute(
                "UPDATE articles SET state='ready', n_chunks=? WHERE id=?",
                (len(chunks), article.id),
            )

    def _delete_chunks(self, article_id: str) -> None:
        self.collection.delete(where={"article_id": article_id})
        with self._tx() as db:
            for table in fts.TABLES:
                db.execute(
                    f"DELETE FROM {table} WHERE chunk_id IN "
                    "(SELECT id FROM chunks WHERE article_id=?)",
                    (article_id,),
                )
            db.execute(
                "DELETE FROM sentence_vectors WHERE chunk_id IN "
                "(SELECT id FROM chunks WHERE article_id=?)",
                (article_id,),
            )
            db.execute("DELETE FROM chunks WHERE article_id=?", (article_id,))

    def delete_article(self, article_id: str) -> None:
        self._delete_chunks(article_id)
        with self._tx() as db:
            db.execute("DELETE FROM articles WHERE id=?", (article_id,))

    def mark(self, article_ids: Sequence[str], state: str) -> None:
        """'removing' hides an article at once (a takedown); 'indexing' makes repair redo it."""
        with self._tx() as db:
            db.executemany(
                "UPDATE articles SET state=? WHERE id=?", [(state, i) for i in article_ids]
            )

    def delete_vectors(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 5000):
            self.collection.delete(ids=list(ids[start : start + 5000]))

    def reset_vectors(self) -> None:
        """Empty the vector collection and the sentence vectors (they came from another model:
        useless now)."""
        self.collection.recreate()
        with self._tx() as db:
            db.execute("DELETE FROM sentence_vectors")

    def optimize_keywords(self) -> None:
        """Merge the keyword index after a bulk load (bot/fts.py: `optimize`)."""
        with self._tx() as db:
            fts.optimize(db)

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    # -- reading ---------------------------------------------------------------------------

    def article(self, article_id: str) -> ArticleRow | None:
        rows = self._articles("WHERE id=?", (article_id,))
        return rows[0] if rows else None

    def articles(self, state: str | None = None) -> list[ArticleRow]:
        """All articles, newest first (undated last)."""
        where, args = ("WHERE state=?", (state,)) if state else ("", ())
        return self._articles(where + " ORDER BY published IS NULL, published DESC, title", args)

    def visible_articles(self) -> list[ArticleRow]:
        """What listings show: every article but those a takedown is hiding ('removing')."""
        return self._articles(f"WHERE state != 'removing' {LISTING_ORDER}", ())

    def visible_page(self, page: int, size: int) -> tuple[list[ArticleRow], int, int]:
        """One page of the listing (`/sources`, `/docs`), read in SQL: its rows, the number of
        articles, and the page number, clamped to the pages there are. Reading every row on
        each press took 0.6 s at 100,000 articles (bench/listing.py)."""
        with self._lock:
            row = self.db.execute("SELECT count(*) FROM articles WHERE state != 'removing'")
            total = int(row.fetchone()[0])
        page = min(max(page, 0), max(0, -(-total // size) - 1))
        clause = f"WHERE state != 'removing' {LISTING_ORDER} LIMIT ? OFFSET ?"
        return self._articles(clause, (size, page * size)), total, page

    def ready_since(self, horizon: str) -> list[ArticleRow]:
        """Ready articles whose indexing started at or after an ingest_horizon() ("" for all),
        less a minute: a clock stepped back by NTP must not hide an article."""
        if horizon:
            slack = dt.datetime.fromisoformat(horizon) - HORIZON_SLACK
            horizon = slack.isoformat(timespec="seconds")
        return self._articles("WHERE state='ready' AND ingested_at >= ?", (horizon,))

    def ingest_horizon(self) -> str:
        """No article that becomes ready from now on started indexing before this stamp: the
        oldest start still being indexed, else the newest start of any article."""
        with self._lock:
            row = self.db.execute(
                "SELECT coalesce((SELECT min(ingested_at) FROM articles WHERE state='indexing'),"
                " (SELECT max(ingested_at) FROM articles), '')"
            ).fetchone()
        return str(row[0])

    def articles_at(self, path: Path) -> list[ArticleRow]:
        return self._articles("WHERE path=?", (str(path),))

    def find_articles(self, prefix: str) -> list[ArticleRow]:
        """Articles whose id starts with `prefix`, taken literally (hex digits only)."""
        prefix = prefix.strip().lower()
        if not HEX_PREFIX.match(prefix):
            return []
        return self._articles("WHERE substr(id, 1, ?) = ? ORDER BY id", (len(prefix), prefix))

    def languages(self, article_ids: Sequence[str]) -> dict[str, str]:
        """Article id -> the language stored for it ("" when unknown), for source lines."""
        ids = list(dict.fromkeys(article_ids))[:100]
        marks = ",".join("?" * len(ids))
        with self._lock:
            rows = self.db.execute(
                f"SELECT id, language FROM articles WHERE id IN ({marks})", ids
            ).fetchall()
        return {r[0]: r[1] or "" for r in rows}

    def _articles(self, clause: str, args: tuple[Any, ...]) -> list[ArticleRow]:
        with self._lock:
            rows = self.db.execute(
                "SELECT id, path, content_hash, title, source, published, url, n_chunks, state, "
                f"ingested_at, language FROM articles {clause}",
                args,
            ).fetchall()
        return [
            ArticleRow(r[0], r[1], r[2], r[3], r[4], _date(r[5]), r[6], r[7], r[8], r[9], r[10])
            for r in rows
        ]

    def chunk_ids(self, article_id: str) -> list[str]:
        with self._lock:
            rows = self.db.execute(
                "SELECT id FROM chunks WHERE article_id=? ORDER BY ordinal", (article_id,)
            ).fetchall()
        return [r[0] for r in rows]

    def all_chunk_ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self.db.execute("SELECT id FROM chunks")}

    def chunk_owners(self) -> dict[str, str]:
        """Chunk id -> article id, for every chunk the manifest lists."""
        with self._lock:
            return dict(self.db.execute("SELECT id, article_id FROM chunks").fetchall())

    def vectors(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of these chunks; a chunk whose vector is missing is left out.

        An embedded Chroma opened by this process does not see vectors another process added
        ("Error finding id"): such chunks simply get no cosine, the answer still comes.
        """
        if not chunk_ids:
            return {}
        try:
            return self.vectors_strict(chunk_ids)
        except IndexUnavailable:
            raise
        except Exception as exc:  # chromadb raises bare errors for ids its segment lacks
            log.warning("%d vectors could not be read (%s): one by one", len(chunk_ids), exc)
        found: dict[str, np.ndarray] = {}
        for chunk_id in chunk_ids:
            try:
                found |= self.vectors_strict([chunk_id])
            except IndexUnavailable:
                raise
            except Exception:  # that one vector is missing
                continue
        return found

    def vectors_strict(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        got = self.collection.get(ids=list(chunk_ids), include=["embeddings"])
        return {
            i: np.asarray(v, dtype=np.float32)
            for i, v in zip(got["ids"], got["embeddings"], strict=True)
        }

    def sentence_vectors(
        self, chunk_ids: Sequence[str], encoder: str, dimension: int
    ) -> dict[str, ChunkSentences]:
        """The stored sentence vectors of these chunks, made by `encoder` (others are left out)."""
        with self._lock:
            return sentence_store.read(self.db, list(dict.fromkeys(chunk_ids)), encoder, dimension)

    def chunks_without_sentences(self, encoder: str, limit: int) -> list[tuple[str, str, str]]:
        """(chunk id, text, language) of ready chunks with no sentence vectors by `encoder`."""
        with self._lock:
            rows = self.db.execute(
                "SELECT c.id, c.text, a.language FROM chunks c CROSS JOIN articles a "
                "ON a.id = c.article_id WHERE a.state = 'ready' AND NOT EXISTS (SELECT 1 FROM "
                "sentence_vectors s WHERE s.chunk_id = c.id AND s.encoder = ?) LIMIT ?",
                (encoder, limit),
            ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def add_sentences(self, encoder: str, rows: Sequence[ChunkSentences]) -> None:
        """Sentence vectors for chunks stored earlier; a chunk deleted meanwhile gets none."""
        if not rows:
            return
        with self._tx() as db:
            present = {
                r[0]
                for r in db.execute(
                    f"SELECT id FROM chunks WHERE id IN ({','.join('?' * len(rows))})",
                    [r.chunk_id for r in rows],
                )
            }
            sentence_store.write(db, encoder, [r for r in rows if r.chunk_id in present])

    def vector_ids(self) -> set[str]:
        return set(self.collection.get(include=[])["ids"])

    def count_chunks(self) -> int:
        with self._lock:
            return int(self.db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    def dense_search(self, vector: np.ndarray, k: int, filters: Filters) -> list[Passage]:
        # No count() first: it cost 60 ms at 100k chunks, and an empty collection answers [].
        result = self.collection.query(
            query_embeddings=[vector.tolist()],
            n_results=k,
            where=chroma_where(filters),
            include=["distances"],
        )
        ids, distances = result["ids"][0], result["distances"][0]
        passages = {p.chunk.id: p for p in self._passages(ids)}
        found = []
        for chunk_id, distance in zip(ids, distances, strict=True):
            if chunk_id in passages:
                passages[chunk_id].dense = 1.0 - float(distance)
                found.append(passages[chunk_id])
        return found

    def keyword_search(self, text: str, k: int, filters: Filters) -> list[Passage]:
        """The k best chunks by BM25 over both keyword tables (English with its stemmer, the
        other languages matched by word prefix: bot/fts.py).

        Each table's query is bounded (bot/keyword.py) and ranked on the FTS table alone, a few
        more than k, then joined and filtered; only when filters (or hidden articles) leave
        fewer than k does the joined, filtered query run.
        """
        conditions, args = sql_filters(filters)
        scores: dict[str, float] = {}
        found: dict[str, Passage] = {}
        for table in fts.TABLES:
            terms = keyword_query(text, prefixes=table != fts.ENGLISH)
            with self._lock:
                query = bounded(self.db, table, terms, self.postings_budget, self._counts)
            if not query:
                continue
            with self._lock:
                rows = top_chunks(self.db, table, query, 2 * k)
            passages = self._passages([r[0] for r in rows], conditions, args)
            if len(passages) < k and len(rows) == 2 * k:
                sql = (
                    f"SELECT f.chunk_id, -bm25({table}, {BM25_WEIGHTS}) AS score "
                    f"FROM {table} f "
                    "JOIN chunks c ON c.id = f.chunk_id JOIN articles a ON a.id = c.article_id "
                    f"WHERE {table} MATCH ? {conditions} AND a.state = 'ready' "
                    "ORDER BY score DESC LIMIT ?"
                )
                with self._lock:
                    rows = self.db.execute(sql, (query, *args, k)).fetchall()
                passages = self._passages([r[0] for r in rows])
            found.update((p.chunk.id, p) for p in passages)
            for chunk_id, score in rows:
                if chunk_id in found:
                    scores[chunk_id] = max(float(score), scores.get(chunk_id, float("-inf")))
        best = sorted(scores, key=lambda chunk_id: -scores[chunk_id])[:k]
        for chunk_id in best:
            found[chunk_id].keyword = scores[chunk_id]
        return [found[chunk_id] for chunk_id in best]

    def passages_of(self, article_id: str) -> list[Passage]:
        """Every chunk of one ready article as a passage (unscored), in reading order."""
        return sorted(self._passages(self.chunk_ids(article_id)), key=lambda p: p.chunk.ordinal)

    def _passages(
        self, chunk_ids: Sequence[str], conditions: str = "", args: Sequence[Any] = ()
    ) -> list[Passage]:
        """Passages of these chunks whose article is ready (and meets `sql_filters`)."""
        if not chunk_ids:
            return []
        marks = ",".join("?" * len(chunk_ids))
        # CROSS JOIN fixes the loop order: chunks by id, then their articles. With a plain JOIN
        # SQLite drove the query from the index on articles(state), which every article matches,
        # and scanned every chunk of the index for the few asked for (230 ms at 100k chunks).
        with self._lock:
            rows = self.db.execute(
                'SELECT c.id, c.article_id, c.ordinal, c.start, c."end", c.text, a.title, '
                "a.source, a.published, a.url, a.language "
                "FROM chunks c CROSS JOIN articles a ON a.id = c.article_id "
                f"WHERE c.id IN ({marks}) AND a.state = 'ready' {conditions}",
                (*chunk_ids, *args),
            ).fetchall()
        return [
            Passage(
                chunk=Chunk(r[0], r[1], r[2], r[3], r[4], r[5]),
                title=r[6],
                source=r[7],
                published=_date(r[8]),
                url=r[9],
                language=r[10],
            )
            for r in rows
        ]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            articles, outlets, first, last, latest = self.db.execute(
                "SELECT count(*), count(DISTINCT NULLIF(source, '')), min(published), "
                "max(published), max(ingested_at) FROM articles"
            ).fetchone()
        size = sum(p.stat().st_size for p in self.index_dir.rglob("*") if p.is_file())
        return {
            "articles": articles,
            "chunks": self.count_chunks(),
            "outlets": outlets,
            "first_published": first,
            "last_published": last,
            "last_ingest": latest,
            "index_bytes": size,
        }

    def close(self) -> None:
        with self._lock:
            self.db.close()


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
