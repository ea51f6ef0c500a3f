"""Ingest speed on a RealTime QA subset: ours vs raw encode vs the naive LangChain baseline.

    .venv/bin/python bench/ingest_speed.py ../shared/dev-eval [--articles 400]

For each encoder (torch-float32, torch-bfloat16, onnx-float32, auto; a `:nosv` suffix turns
NEWSDESK_SENTENCE_VECTORS off for that row) it ingests the same subset from scratch, times the
raw encode of exactly the texts ours embedded (title + chunk), and measures retrieval on the
gold questions whose gold article is in the subset, so speed and quality are seen side by side.
Writes bench/results/ingest_speed.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from common import (
    ROOT,
    article_id,
    build_baseline,
    build_ours,
    chunk_texts,
    distinct,
    gold_ids,
    machine,
    parse_day,
    rank_of,
    read_jsonl,
    write_jsonl,
)

from bot.embed import load_embedder
from bot.models import Filters


def subset(records: list[dict[str, Any]], questions: list[dict[str, Any]], n: int) -> list[Any]:
    """Every gold article of a `gold` question first, then the corpus in file order, up to n."""
    wanted = {d for q in questions if q["support"] == "gold" for d in q["gold_doc_ids"]}
    first = [r for r in records if r["doc_id"] in wanted]
    rest = [r for r in records if r["doc_id"] not in wanted]
    return (first + rest)[:n]


def same_answers(desk: Any, probe: list[dict[str, Any]]) -> tuple[int, int]:
    """Of the probe questions, how many get the same answer (text and cited offsets) from the
    stored sentence vectors as from vectors the composer computes itself."""
    from bot.answer import ExtractiveComposer
    from bot.pipeline import AnswerPipeline, Request

    s = desk.settings

    def answers(stored: Any) -> list[tuple[str, list[tuple[int, int]]]]:
        composer = ExtractiveComposer(
            desk.embedder, s.answer_sentences, s.min_relevance, stored=stored
        )
        pipeline = AnswerPipeline(desk.retriever, desk.reranker, composer, desk.pipeline.params)
        out = []
        for q in probe:
            answer = pipeline.invoke(Request(q["question"], parse_day(q["question_date"])))
            out.append((answer.text, [(c.start, c.end) for c in answer.citations]))
        return out

    computed, stored = answers(None), answers(desk.store)
    return sum(a == b for a, b in zip(computed, stored, strict=True)), len(probe)


def chunking(desk: Any, records: list[dict[str, Any]]) -> tuple[float, float, int, int]:
    """Seconds to chunk the subset: ours, and the LangChain splitter counting tokens (before)."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from bot.chunk import SEPARATORS
    from bot.models import Article

    chunker = desk.ingestor.chunker
    articles = [Article(title=r["title"], text=r["text"], id="x") for r in records]
    start = time.perf_counter()
    n = sum(len(chunker.chunk(a)) for a in articles)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    before = 0
    for a in articles:
        size = chunker.budget(a.title)
        before += len(
            RecursiveCharacterTextSplitter(
                separators=[*SEPARATORS, ""],
                keep_separator="end",
                chunk_size=size,
                chunk_overlap=min(chunker.overlap_tokens, size // 4),
                length_function=chunker.count_tokens,
                strip_whitespace=True,
            ).split_text(a.text)
        )
    return ours, time.perf_counter() - start, n, before


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dev_eval", type=Path)
    ap.add_argument("--articles", type=int, default=200)
    ap.add_argument(
        "--dtypes",
        default="torch-float32,onnx-float32,auto:nosv,auto",
        help="encoders; NAME:nosv ingests without stored sentence vectors",
    )
    ap.add_argument(
        "--baseline-dtypes",
        default="torch-float32",
        help="baseline ingest with these encoders (naive: sentence-transformers as loaded)",
    )
    ap.add_argument("--work", type=Path, default=ROOT / "work")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "ingest_speed.md")
    args = ap.parse_args()

    rtqa = args.dev_eval / "realtimeqa"
    records = read_jsonl(rtqa / "corpus.jsonl")
    questions = read_jsonl(rtqa / "questions.jsonl")
    chosen = subset(records, questions, args.articles)
    doc_ids = {r["doc_id"] for r in chosen}
    in_subset = {article_id(d) for d in doc_ids}
    probe = [q for q in questions if q["support"] == "gold" and gold_ids(q, doc_ids) & in_subset]
    path = args.work / "speed" / "subset.jsonl"
    write_jsonl(path, chosen)
    print(f"subset: {len(chosen)} articles, {len(probe)} gold questions answerable in it")

    rows: list[dict[str, Any]] = []
    ranked_by: dict[str, list[list[str]]] = {}
    for dtype in args.dtypes.split(","):
        encoder, _, variant = dtype.partition(":")
        backend, precision = [*encoder.split("-"), "auto"][:2]
        embedder = load_embedder(dtype=precision, backend=backend)
        embedder.encode(["warm up the model"] * 8)
        folder = args.work / "speed" / f"ours-{dtype.replace(':', '-')}"
        sentences = variant != "nosv"
        desk, ours = build_ours(path, folder, embedder, fresh=True, sentence_vectors=sentences)
        texts = chunk_texts(desk)
        start = time.perf_counter()
        embedder.encode_passages(texts)
        raw = time.perf_counter() - start
        base = {"chunks": 0, "seconds": 0.0}
        same = same_answers(desk, probe) if sentences else None
        if dtype in args.baseline_dtypes.split(","):
            base_folder = args.work / "speed" / f"baseline-{dtype}"
            _, base = build_baseline(chosen, base_folder, embedder, fresh=True)
        hits1 = hits5 = 0
        ranked_by[dtype] = []
        for q in probe:
            passages = desk.search(q["question"], Filters(as_of=parse_day(q["question_date"])), 10)
            ranked = distinct(p.article_id for p in passages)
            ranked_by[dtype].append(ranked[:5])
            r = rank_of(ranked, gold_ids(q, doc_ids))
            hits1 += r == 1
            hits5 += 0 < r <= 5
        row = {
            "dtype": dtype,
            "chunks": ours["chunks"],
            "ours_s": ours["seconds"],
            "raw_s": raw,
            "base_chunks": base["chunks"],
            "base_s": base["seconds"],
            "hits1": hits1 / max(1, len(probe)),
            "hits5": hits5 / max(1, len(probe)),
            "same_answers": same,
        }
        rows.append(row)
        print(row, flush=True)
        if dtype == args.dtypes.split(",")[-1]:
            split_ours, split_before, split_n, before_n = chunking(desk, chosen)
        desk.store.close()

    lines = [
        "# Ingest speed",
        "",
        f"Machine: {machine()}.",
        "",
        f"Subset of RealTime QA: {len(chosen)} articles (the gold articles of the `gold` "
        f"questions first, then the corpus in file order); retrieval measured on the "
        f"{len(probe)} `gold` questions whose gold article is in the subset (hybrid search, "
        "as-of date, distinct articles of the top 10 passages). Every ingest starts from an "
        "empty index. Raw encode = `SentenceTransformer.encode()` of exactly the texts ours "
        "embedded (title + chunk), in one call of the same encoder. Baseline = LangChain "
        "RecursiveCharacterTextSplitter (1000/200 characters) + `langchain_chroma.Chroma."
        "add_texts` with the same model as sentence-transformers loads it (torch float32). "
        "`auto` = ONNX Runtime for small batches, torch bfloat16 for ingest batches where the "
        "CPU computes bfloat16 natively; ours also embeds each distinct chunk text once.",
        "",
        "| encoder | ours chunks | ours chunks/s | raw encode chunks/s | ours / raw | "
        "ours articles/s | baseline chunks | baseline chunks/s | baseline articles/s | "
        "hits@1 | hits@5 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ours_rate = r["chunks"] / r["ours_s"]
        raw_rate = r["chunks"] / r["raw_s"]
        lines.append(
            f"| {r['dtype']} | {r['chunks']} | {ours_rate:.1f} | {raw_rate:.1f} | "
            f"{ours_rate / raw_rate:.0%} | {len(chosen) / r['ours_s']:.2f} | "
            + (
                f"{r['base_chunks']} | {r['base_chunks'] / r['base_s']:.1f} | "
                f"{len(chosen) / r['base_s']:.2f} | "
                if r["base_s"]
                else "– | – | – | "
            )
            + f"{r['hits1']:.1%} | {r['hits5']:.1%} |"
        )
    for r in rows:
        if r["same_answers"] is not None:
            same_n, total = r["same_answers"]
            lines.append(
                f"\n{r['dtype']}: answers composed from the stored sentence vectors are identical "
                f"(text and cited offsets) to answers computed at question time by the "
                f"composer's own encoder for **{same_n} of {total}** questions."
            )
    base_row = next((r for r in rows if r["base_s"]), None)
    for r in rows if base_row else []:
        assert base_row is not None
        ratio = (base_row["base_s"] / r["ours_s"]) if r["ours_s"] else 0.0
        lines.append(
            f"\nOurs ({r['dtype']}) vs the naive baseline ({base_row['dtype']}) in this run: "
            f"**{ratio:.2f}x** the articles/s."
        )
    lines += [
        "",
        f"Chunking alone ({split_n} chunks): {split_n / split_ours:.0f} chunks/s; the LangChain "
        "RecursiveCharacterTextSplitter with the tokenizer as length function (the previous "
        f"chunker, which tokenized every piece at every level) {before_n / split_before:.0f} "
        f"chunks/s on the same articles ({before_n} chunks).",
    ]
    if len(ranked_by) >= 2:
        a, b = list(ranked_by.values())[:2]
        same = sum(x == y for x, y in zip(a, b, strict=True))
        overlap = sum(len(set(x) & set(y)) / max(1, len(x)) for x, y in zip(a, b, strict=True))
        lines += [
            "",
            f"Top-5 articles identical between the two encoders for {same} of {len(a)} questions; "
            f"mean top-5 overlap {overlap / max(1, len(a)):.0%}.",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
