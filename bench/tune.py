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
    settings_for,
)

from bot.answer import coverage, query_terms
from bot.config import Settings
from bot.embed import Embedder
from bot.models import Filters
from bot.retrieve import RetrievalParams


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dev_eval", type=Path)
    ap.add_argument("variants", nargs="*", default=["{}"])
    ap.add_argument("--work", type=Path, default=ROOT / "work")
    ap.add_argument("--dump", type=Path, help="write per-question signals (jsonl)")
    ap.add_argument("--corpus", type=Path, help="another corpus JSONL (a subset)")
    args = ap.parse_intermixed_args()
    rtqa = args.dev_eval / "realtimeqa"
    corpus = args.corpus or rtqa / "corpus.jsonl"
    doc_ids = {json.loads(line)["doc_id"] for line in (rtqa / "corpus.jsonl").open()}
    questions = read_jsonl(rtqa / "questions.jsonl")
    settings = Settings()
    embedder = Embedder(settings.embedding_model, settings.embedding_device)
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
        n = len(ranks)
        figures = {
            "h1": sum(r == 1 for r in ranks) / n,
            "h3": sum(0 < r <= 3 for r in ranks) / n,
            "h5": sum(0 < r <= 5 for r in ranks) / n,
            "any": sum(r > 0 for r in ranks) / n,
            "ans_in_passages": sum(in_passages) / len(in_passages),
        }
        print(variant, {k: round(v, 3) for k, v in figures.items()}, flush=True)
        if args.dump:
            args.dump.write_text("\n".join(json.dumps(d) for d in dump) + "\n")


if __name__ == "__main__":
    main()
