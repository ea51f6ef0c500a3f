"""Sentence vectors kept beside the chunks, so that an answer never encodes the sentences of
stored chunks (that encoding was most of an extractive answer's time).

The extractive composer scores every sentence of its passages by cosine to the question. At
ingest each chunk is cut into the sentences the composer would cut (same function, same
language) and each sentence is encoded by the composer's own model (`Embedder.encode`, same
text; a bulk ingest on a bfloat16 CPU uses torch, within cosine 0.999 of the composer's ONNX),
so a stored vector is the one the composer would compute, up to that rounding. They are written
in the same SQLite transaction as the chunk rows and deleted with them: a kill mid-write leaves
both or neither. Each row names its encoder and the language it was cut by; a row of another
encoder or language is ignored and the composer encodes as before (an index built before this
table existed works unchanged; `newsdesk reindex` fills it).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

from bot.embed import Embedder
from bot.sentences import sentence_spans

MIN_SENTENCE_CHARS = 25  # shorter "sentences" (datelines, bylines) are never quoted
SCHEMA = """
CREATE TABLE IF NOT EXISTS sentence_vectors (
    chunk_id TEXT PRIMARY KEY,         -- chunks.id, written and deleted with it
    encoder TEXT NOT NULL,             -- encoder_key() of the model that made the vectors
    language TEXT NOT NULL,            -- the language the chunk was cut into sentences by
    spans BLOB NOT NULL,               -- int32 (start, end) pairs, offsets into chunks.text
    vectors BLOB NOT NULL              -- float32, one row of the model's dimension per span
);
"""


@dataclass
class ChunkSentences:
    """One chunk's sentences (offsets into its text) and their vectors, in reading order."""

    chunk_id: str
    language: str
    spans: list[tuple[int, int]]
    vectors: np.ndarray


class SentenceSource(Protocol):
    """Where the composer finds stored sentence vectors (the Store)."""

    def sentence_vectors(
        self, chunk_ids: Sequence[str], encoder: str, dimension: int
    ) -> dict[str, ChunkSentences]: ...

    def add_sentences(self, encoder: str, rows: Sequence[ChunkSentences]) -> None: ...


def cuts(text: str, language: str) -> list[tuple[int, int]]:
    """The quotable sentences of a chunk's text: (start, end) of each, stripped of blank
    space, in order; the answer composer quotes exactly these."""
    found = []
    for start, end in sentence_spans(text, language):
        raw = text[start:end]
        stripped = raw.strip()
        if len(stripped) < MIN_SENTENCE_CHARS:
            continue
        at = start + len(raw) - len(raw.lstrip())
        found.append((at, at + len(stripped)))
    return found


@lru_cache(maxsize=4096)
def _cuts(text: str, language: str) -> tuple[tuple[int, int], ...]:
    """`cuts`, remembered: wire copy repeats chunk texts, and splitting is the slow part."""
    return tuple(cuts(text, language))


def encoder_key(embedder: Embedder) -> str:
    """Who made a vector: model, the backend and precision of `encode`, dimension."""
    fast = getattr(embedder, "fast", embedder)  # BulkOnTorch encodes sentences on its fast one
    who = f"{embedder.name}|{fast.backend}|{fast.dtype}|{embedder.dimension}"
    return hashlib.sha256(who.encode()).hexdigest()[:16]


def compute(
    embedder: Embedder, chunks: Sequence[tuple[str, str, str]], known: dict[str, np.ndarray]
) -> list[ChunkSentences]:
    """Sentences and vectors of (chunk id, text, language) rows; each distinct sentence is
    encoded once (`known` carries vectors across calls of one run)."""
    cut = [(chunk_id, text, language, _cuts(text, language)) for chunk_id, text, language in chunks]
    texts = [text[a:b] for _, text, _, spans in cut for a, b in spans]
    new = [t for t in dict.fromkeys(texts) if t not in known]
    if new:
        # An ingest's batch may take the bulk path (BulkOnTorch: torch bfloat16, within cosine
        # 0.999 of what the composer's ONNX encoder gives, so stored under its key).
        encode = getattr(embedder, "encode_bulk", embedder.encode)
        known.update(zip(new, encode(new), strict=True))
    out = []
    for chunk_id, text, language, spans in cut:
        rows = [known[text[a:b]] for a, b in spans]
        vectors = np.vstack(rows) if rows else np.zeros((0, embedder.dimension), np.float32)
        out.append(ChunkSentences(chunk_id, language, list(spans), vectors.astype(np.float32)))
    return out


def write(db: sqlite3.Connection, encoder: str, rows: Sequence[ChunkSentences]) -> None:
    """Store rows inside the caller's transaction (the one writing their chunks)."""
    db.executemany(
        "INSERT OR REPLACE INTO sentence_vectors (chunk_id, encoder, language, spans, vectors) "
        "VALUES (?,?,?,?,?)",
        [
            (
                r.chunk_id,
                encoder,
                r.language,
                np.asarray(r.spans, dtype=np.int32).reshape(-1, 2).tobytes(),
                np.ascontiguousarray(r.vectors, dtype=np.float32).tobytes(),
            )
            for r in rows
        ],
    )


def read(
    db: sqlite3.Connection, chunk_ids: Sequence[str], encoder: str, dimension: int
) -> dict[str, ChunkSentences]:
    """The stored rows of these chunks made by this encoder; a malformed row is left out."""
    if not chunk_ids:
        return {}
    marks = ",".join("?" * len(chunk_ids))
    rows = db.execute(
        "SELECT chunk_id, language, spans, vectors FROM sentence_vectors "
        f"WHERE chunk_id IN ({marks}) AND encoder = ?",
        (*chunk_ids, encoder),
    ).fetchall()
    found = {}
    for chunk_id, language, spans, vectors in rows:
        pairs = np.frombuffer(spans, dtype=np.int32)
        n = len(pairs) // 2
        if len(pairs) % 2 or len(vectors) != n * dimension * 4:
            continue
        matrix = np.frombuffer(vectors, dtype=np.float32).reshape(n, dimension)
        found[chunk_id] = ChunkSentences(
            chunk_id, language, [(int(a), int(b)) for a, b in pairs.reshape(n, 2)], matrix
        )
    return found
