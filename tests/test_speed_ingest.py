"""Ingest speed levers that must not change what is indexed: wire copy is embedded once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from conftest import settings_for

from bot.desk import Desk
from bot.embed import Embedder

WIRE = (
    "The central bank raised its benchmark interest rate by a quarter point on Thursday, "
    "citing persistent inflation in services and a tight labour market. "
)


class Counting:
    """The real model, counting the texts it is asked to encode (not a mock: it encodes)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.encoded: list[str] = []  # chunk texts
        self.sentences: list[str] = []  # sentences, for their stored vectors
        for name in ("name", "backend", "dtype", "dimension", "max_tokens", "batch_size"):
            setattr(self, name, getattr(inner, name))

    @property
    def tokenizer(self) -> object:
        return self.inner.tokenizer

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.encode_queries(texts)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.encoded += texts
        return self.inner.encode_passages(texts)

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        self.sentences += texts
        return self.inner.encode(texts)


def test_wire_copy_is_embedded_once_and_indexed_for_every_outlet(
    tmp_path: Path, embedder: Embedder
) -> None:
    outlets = ["Daily Post", "Evening Star", "Metro Wire", "Coast Herald", "Valley News"]
    rows = [
        {
            "doc_id": f"wire-{i}",
            "title": "Central bank raises rates",
            "text": WIRE * 12,
            "source": outlet,
            "published": "2024-05-02",
            "url": f"https://example.org/{i}",
        }
        for i, outlet in enumerate(outlets)
    ]
    rows.append({**rows[0], "doc_id": "own", "title": "Our own story", "source": "Daily Post"})
    feed = tmp_path / "wire.jsonl"
    feed.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    counting = Counting(embedder)
    desk = Desk(settings_for(tmp_path), embedder=counting)  # type: ignore[arg-type]
    report = desk.ingestor.ingest([feed])
    assert len(report.added) == 6 and not report.failed
    per_article = report.chunks[report.added[0].id]
    # Five copies share every chunk text; the sixth has another headline, so other texts.
    assert len(counting.encoded) == len(set(counting.encoded)) == 2 * per_article
    assert counting.sentences and len(counting.sentences) == len(set(counting.sentences))
    hits = desk.search("Which outlets reported the central bank's rate rise?", k=20)
    assert {p.source for p in hits} == set(outlets)
    vectors = desk.store.vectors([p.chunk.id for p in hits])
    assert len(vectors) == len(hits)
