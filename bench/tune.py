"""Retrieval tuning helper: the RealTime QA questions against an index quality.py built.

    .venv/bin/python bench/tune.py ../shared/dev-eval '{"keyword_weight": 1.5}' '{...}'

Each argument after the dev-eval path is a JSON object of RetrievalParams fields; one line of
retrieval figures per variant (hits@k of the gold article among the retrieved articles, answer
string in the retrieved passages, and how well the abstention signals separate questions).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    ROOT,
    build_ours,
    contains_answer,
    distinct,
    gold_ids,
    index_key,
    parse_day,
    rank_of,
    read_jsonl,
    relabel,
    sample,
    settings_for,
)

from bot.answer import ExtractiveComposer, coverage, query_terms
from bot.config import Settings
from bot.embed import Embedder, TorchEmbedder
from bot.models import Filters
from bot.retrieve import RetrievalParams


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dev_eval", type=Path)
    ap.add_argument("variants", nargs="*", default=["{}"])
    ap.add_argument("--work", type=Path, default=ROOT / "work")
    ap.add_argument("--dump", type=Path, help="write per-question signals (jsonl)")
    ap.add_argument("--corpus", type=Path, help="another corpus JSONL (a subset)")
    ap.add_argument("--limit", type=int, default=0, help="first N questions only")
    ap.add_argument("--sample", type=int, default=0, help="first N articles (as quality.py)")
    ap.add_argument(
        "--compose",
        action="append",
        default=[],
        help="JSON of ExtractiveComposer attributes (max_sentences, min_relevance, "
        "dense_weight, ...); run on the passages of the last retrieval variant",
    )
    args = ap.parse_intermixed_args()
    rtqa = args.dev_eval / "realtimeqa"
    corpus = args.corpus or rtqa / "corpus.jsonl"
    doc_ids = {json.loads(line)["doc_id"] for line in (rtqa / "corpus.jsonl").open()}
    questions = read_jsonl(rtqa / "questions.jsonl")[: args.limit or None]
    if args.sample:
        records = sample(read_jsonl(rtqa / "corpus.jsonl"), questions, args.sample, args.work)
        corpus = args.work / f"sample-{args.sample}.jsonl"
        questions = relabel(questions, {r["doc_id"] for r in records})
    settings = Settings()
    embedder = TorchEmbedder(
        settings.embedding_model, settings.embedding_device, dtype=settings.embedding_dtype
    )
    key = index_key(settings_for(args.work), embedder, corpus)
    desk, stats = build_ours(corpus, args.work / f"ours-{key}", embedder)
    print(stats, flush=True)
    base = RetrievalParams(top_k=settings.top_k, per_article=settings.per_article)
    for variant in args.variants:
        params = RetrievalParams(**{**base.__dict__, **json.loads(variant)})
        desk.retriever.params = params
        ranks: list[int] = []
        in_passages: list[bool] = []
        dump: list[dict[str, Any]] = []
        for q in questions:
            filters = Filters(as_of=parse_day(q["question_date"]))
            _, passages = desk.retriever.retrieve(q["question"], filters)
            ranked = distinct(p.article_id for p in passages)
            rank = rank_of(ranked, gold_ids(q, doc_ids))
            terms = query_terms(q["question"])
            if q["support"] == "gold":
                ranks.append(rank)
            if q["support"] in ("gold", "silver"):
                in_passages.append(contains_answer(q["answers"], [p.chunk.text for p in passages]))
            dump.append(
                {
                    "support": q["support"],
                    "rank": rank,
                    "dense": max((p.dense for p in passages), default=0.0),
                    "cover": max(
                        (coverage(terms, p.title + " " + p.chunk.text) for p in passages),
                        default=0.0,
                    ),
                    "keyword": max((p.keyword for p in passages), default=0.0),
                }
            )
        n = max(1, len(ranks))
        figures = {
            "h1": sum(r == 1 for r in ranks) / n,
            "h3": sum(0 < r <= 3 for r in ranks) / n,
            "h5": sum(0 < r <= 5 for r in ranks) / n,
            "any": sum(r > 0 for r in ranks) / n,
            "ans_in_passages": sum(in_passages) / max(1, len(in_passages)),
        }
        print(variant, {k: round(v, 3) for k, v in figures.items()}, flush=True)
        if args.dump:
            args.dump.write_text("\n".join(json.dumps(d) for d in dump) + "\n")
    if args.compose:
        compose(desk, embedder, questions, doc_ids, settings, args.compose)


class CachedEmbedder:
    """Sentence vectors computed once, shared by every composer variant."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.cache: dict[str, np.ndarray] = {}

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            for text, vector in zip(missing, self.embedder.encode(missing), strict=True):
                self.cache[text] = vector
        return np.stack([self.cache[t] for t in texts])


def compose(
    desk: Any,
    embedder: Embedder,
    questions: list[dict[str, Any]],
    doc_ids: set[str],
    settings: Settings,
    variants: list[str],
) -> None:
    cached = CachedEmbedder(embedder)
    retrieved = []
    for q in questions:
        filters = Filters(as_of=parse_day(q["question_date"]))
        vector, passages = desk.retriever.retrieve(q["question"], filters)
        retrieved.append((q, vector, passages))
    for variant in variants:
        attrs = json.loads(variant)
        composer = ExtractiveComposer(
            cached,  # type: ignore[arg-type]
            attrs.pop("max_sentences", settings.answer_sentences),
            attrs.pop("min_relevance", settings.min_relevance),
        )
        for name, value in attrs.items():
            setattr(composer, name, value)
        h1 = n_gold = answered = n_ans = in_quotes = refused = n_none = chars = 0
        for q, vector, passages in retrieved:
            answer = composer.compose(q["question"], vector, passages)
            quotes = [c.quote for c in answer.citations]
            cited = distinct(c.article_id for c in answer.citations)
            ranked = distinct(cited + [p.article_id for p in passages])
            if q["support"] == "gold":
                n_gold += 1
                h1 += rank_of(ranked, gold_ids(q, doc_ids)) == 1
            if q["support"] in ("gold", "silver"):
                n_ans += 1
                answered += not answer.abstained
                in_quotes += contains_answer(q["answers"], quotes)
            if q["support"] == "none":
                n_none += 1
                refused += answer.abstained
            chars += sum(len(x) for x in quotes)
        print(
            variant,
            {
                "h1": round(h1 / max(1, n_gold), 3),
                "in_quotes": round(in_quotes / max(1, n_ans), 3),
                "answered": round(answered / max(1, n_ans), 3),
                "refused_none": round(refused / max(1, n_none), 3),
                "chars": round(chars / len(retrieved)),
            },
            flush=True,
        )


if __name__ == "__main__":
    main()
