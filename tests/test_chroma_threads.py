"""Questions keep working while an ingest writes: the embedded Chroma is called in turns.

chromadb's embedded Rust bindings race when one thread queries while another writes (a
filtered query fails with "Error finding id"; segfaults are reported upstream). The bot queries
from its retrieval pool while its writer thread ingests, so this is what a journalist hits when
asking during an upload.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from bot.chroma import open_collection

DIM = 384
SEEDED = 500
QUESTIONS = 250  # per asking thread; without turns the first failure came after 150-330


def _rows(start: int, n: int, rng: np.random.Generator, source: str = "") -> dict[str, object]:
    ids = [f"c{i}" for i in range(start, start + n)]
    return {
        "ids": ids,
        "embeddings": rng.standard_normal((n, DIM)).astype(np.float32).tolist(),
        "metadatas": [{"source": source or f"s{i % 50}"} for i in range(start, start + n)],
    }


@pytest.mark.slow
def test_questions_asked_during_an_ingest_never_fail(tmp_path: Path) -> None:
    collection = open_collection(tmp_path, "", 1, 5.0)
    collection.upsert(**_rows(0, SEEDED, np.random.default_rng(0)))
    writing = threading.Event()
    writing.set()
    errors: list[BaseException] = []

    def ask(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(QUESTIONS):
            if errors:
                return
            try:
                got = collection.query(
                    query_embeddings=[rng.standard_normal(DIM).tolist()],
                    n_results=20,
                    where={"source": {"$in": ["s1", "s2", "s3"]}},
                    include=["distances"],
                )
                assert got["ids"][0], "a filtered question over a full index found nothing"
            except BaseException as exc:  # reported by the assertion below, from the main thread
                errors.append(exc)

    def ingest() -> None:  # re-ingests: new chunks in, half of them out again
        rng, start = np.random.default_rng(1), SEEDED
        while writing.is_set():
            rows = _rows(start, 32, rng, "s1")  # the outlet being asked about
            collection.upsert(**rows)
            collection.delete(ids=rows["ids"][:16])  # type: ignore[index]
            start += 32

    writer = threading.Thread(target=ingest)
    askers = [threading.Thread(target=ask, args=(seed,)) for seed in (2, 3)]
    writer.start()
    for t in askers:
        t.start()
    for t in askers:
        t.join()
    writing.clear()
    writer.join()
    assert not errors, f"a question failed during the ingest: {errors[0]!r}"
