"""What built index/: the embedding model and its dimension, the chunker, the vector store.

Recorded in the index database (table `meta`) after every write. Vectors of two models can
not be compared, so a different model or chunker is refused with the command that fixes it
(`newsdesk reindex`); a different vector store (a new, empty Chroma server) is caught by
repair, which re-embeds every article whose vectors are missing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from bot.chunk import Chunker
from bot.embed import Embedder
from bot.errors import IndexUnavailable
from bot.store import Store

# Bump when bot/chunk.py changes where text is cut: chunks made before no longer match.
CHUNKER_VERSION = 1
KEY = "built_with"


# Backends whose vectors of one model agree within cosine 0.99 (checked when a model is exported
# to ONNX, and by tests/test_speed_embed.py): an index built on one is queried on the other.
# A backend outside this set (say, an int8-quantised one) has its own vectors and is refused.
SAME_VECTORS = {"", "torch", "onnx"}


@dataclass(frozen=True)
class BuiltWith:
    model: str
    dimension: int
    chunker: str
    backend: str = ""  # "" in manifests written before backends were recorded: torch

    @classmethod
    def of(cls, embedder: Embedder, chunker: Chunker) -> BuiltWith:
        cut = f"v{CHUNKER_VERSION}, {chunker.chunk_tokens} tokens, {chunker.overlap_tokens} overlap"
        return cls(embedder.name, embedder.dimension, cut, embedder.backend)

    def vectors(self) -> tuple[str, int, str]:
        """What must match for two sets of vectors to be compared."""
        family = "exact" if self.backend in SAME_VECTORS else self.backend
        return self.model, self.dimension, family


def recorded(store: Store) -> BuiltWith | None:
    value = store.get_meta(KEY)
    if not value:
        return None
    try:
        return BuiltWith(**json.loads(value))
    except (ValueError, TypeError):
        return None


def mismatch(store: Store, current: BuiltWith) -> str:
    """Why the stored chunks cannot be used with the current settings ('' when they can)."""
    before = recorded(store)
    if before is None or before == current or store.count_chunks() == 0:
        return ""
    if before.vectors() != current.vectors():
        was = f"{before.model} ({before.dimension} dims) on {before.backend or 'torch'}"
        now = f"{current.model} ({current.dimension} dims) on {current.backend or 'torch'}"
        return (
            f"index/ was built with the embedding model {was}; NEWSDESK_EMBEDDING_MODEL and "
            f"NEWSDESK_EMBEDDING_BACKEND now give {now}: "
            "run `newsdesk reindex` to embed the corpus with it"
        )
    if before.chunker == current.chunker:
        return ""
    return (
        f"index/ was cut into chunks by chunker {before.chunker}; the settings now give "
        f"{current.chunker}: run `newsdesk reindex`"
    )


def check(store: Store, current: BuiltWith) -> None:
    if reason := mismatch(store, current):
        raise IndexUnavailable(reason)


def record(store: Store, current: BuiltWith) -> None:
    """Note what built the index (and where its vectors are) once something is in it."""
    if store.count_chunks() == 0:
        return
    store.set_meta(KEY, json.dumps(asdict(current)))
    store.set_meta("vector_store", store.collection.identity())


def vector_gap(store: Store) -> str:
    """Why questions would find nothing: the vector store lacks the manifest's vectors."""
    chunks = store.count_chunks()
    vectors = store.collection.count()
    if chunks == 0 or vectors >= chunks:
        return ""
    built_on = store.get_meta("vector_store") or "another vector store"
    return (
        f"the vector store at {store.collection.where} holds {vectors} of the {chunks} vectors "
        f"index/ lists (it was built on {built_on}): run `newsdesk repair` to re-embed them"
    )
