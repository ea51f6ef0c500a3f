"""Hybrid retrieval: dense (Chroma) + keyword (FTS5), fused by reciprocal rank, then
recency towards an as-of date and at most a few passages per article."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from bot.embed import Embedder
from bot.models import Filters, Passage
from bot.store import Store

RRF_K = 60  # the constant from Cormack et al. (2009); damps the head of each list
# The keyword side runs in one of these while the question is encoded and the vectors searched:
# SQLite, ONNX Runtime and Chroma all release the GIL, so a question costs the slower side, not
# both. Shared by every retriever of the process (a few threads, started on first use).
_KEYWORD_SIDE = ThreadPoolExecutor(max_workers=4, thread_name_prefix="keyword")


@dataclass
class RetrievalParams:
    top_k: int = 6
    per_article: int = 2
    candidates: int = 80
    keyword_weight: float = 0.7
    recency_weight: float = 1.0  # boost for articles published just before the as-of date
    recency_days: float = 30.0
    future_factor: float = 0.75  # score multiplier for articles published after the as-of date


class Retriever:
    def __init__(self, store: Store, embedder: Embedder, params: RetrievalParams) -> None:
        self.store = store
        self.embedder = embedder
        self.params = params

    def retrieve(
        self, query: str, filters: Filters | None = None, k: int | None = None
    ) -> tuple[np.ndarray, list[Passage]]:
        """The question's vector and its best passages, best first."""
        filters = filters or Filters()
        p = self.params
        pending = _KEYWORD_SIDE.submit(self.store.keyword_search, query, p.candidates, filters)
        vector = self.embedder.encode_queries([query])[0]
        dense = self.store.dense_search(vector, p.candidates, filters)
        keyword = pending.result()
        fused: dict[str, Passage] = {}
        for rank, passage in enumerate(dense):
            passage.score = 1.0 / (RRF_K + rank + 1)
            fused[passage.chunk.id] = passage
        for rank, passage in enumerate(keyword):
            share = p.keyword_weight / (RRF_K + rank + 1)
            if passage.chunk.id in fused:
                fused[passage.chunk.id].keyword = passage.keyword
                fused[passage.chunk.id].score += share
            else:
                passage.score = share
                fused[passage.chunk.id] = passage
        for passage in fused.values():
            passage.score *= self._recency(passage, filters)
        ranked = sorted(fused.values(), key=lambda x: -x.score)
        chosen = diversify(ranked, k or p.top_k, p.per_article)
        self._fill_dense(vector, [x for x in chosen if x.chunk.id not in _ids(dense)])
        return vector, chosen

    def _fill_dense(self, vector: np.ndarray, passages: list[Passage]) -> None:
        """Keyword-only hits get their cosine too: the reranker, abstention and sentence choice
        use it. Only the passages returned: fusion ranks by rank, not by cosine, and at 1M
        chunks every vector fetched is a Chroma lookup (80 of them a question, before)."""
        stored = self.store.vectors([x.chunk.id for x in passages])
        for passage in passages:
            if passage.chunk.id in stored:
                passage.dense = float(stored[passage.chunk.id] @ vector)

    def _recency(self, passage: Passage, filters: Filters) -> float:
        if not filters.as_of or not passage.published:
            return 1.0
        age = (filters.as_of - passage.published).days
        if age < 0:  # published after the question was asked: unlikely to be what was meant
            return self.params.future_factor
        return 1.0 + self.params.recency_weight * math.exp(-age / self.params.recency_days)


def _ids(passages: list[Passage]) -> set[str]:
    return {p.chunk.id for p in passages}


def diversify(ranked: list[Passage], k: int, per_article: int) -> list[Passage]:
    """The top k, with no more than `per_article` passages from any one article."""
    counts: dict[str, int] = {}
    chosen: list[Passage] = []
    for passage in ranked:
        if counts.get(passage.article_id, 0) >= per_article:
            continue
        counts[passage.article_id] = counts.get(passage.article_id, 0) + 1
        chosen.append(passage)
        if len(chosen) == k:
            break
    return chosen
