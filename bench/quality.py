"""Answer quality on real news questions, split by time: tuned on early weeks, reported on late.

    .venv/bin/python bench/quality.py ../shared/dev-eval [--sample 1000] [--limit N]

RealTime QA: the articles are ingested into bench/work/ (reused while complete); each question
is asked open-ended through the answer pipeline (`Desk.ask`) with its question date as the
as-of date. Questions dated before SPLIT are the EARLY weeks, the only ones bench/tune.py,
bench/lead_fit.py and bench/abstain_fit.py fit on; the LATE weeks are held back. Plain
baselines run in the same process over the same index and the same quoted-character budget:
BM25 (the SQLite FTS5 index alone) and dense (the vector index alone). Writes
bench/results/quality.md; per-question rows go to bench/results/quality-*.jsonl (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    ROOT,
    article_id,
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

from bot.answer import question_type, split_sentences
from bot.config import Settings
from bot.desk import Desk
from bot.embed import Embedder, TorchEmbedder
from bot.models import Filters, Passage

SPLIT = dt.date(2022, 7, 22)  # early weeks: question dates before this; late: from it on
BUDGET = 1000  # quoted characters at which "answer string in the quotes" is measured
ANSWERABLE = ("gold", "silver")
TRIED_FILE = ROOT / "results" / "quality-tried.md"  # the hand-kept log, appended to the report


def split_of(q: dict[str, Any]) -> str:
    day = parse_day(q["question_date"])
    return "early" if day and day < SPLIT else "late"


def row(
    q: dict[str, Any],
    doc_ids: set[str],
    cited: list[str],
    quotes: list[str],
    abstained: bool,
    latency: float,
) -> dict[str, Any]:
    gold = gold_ids(q, doc_ids)
    joined = " ".join(quotes)
    return {
        "question_id": q["question_id"],
        "split": split_of(q),
        "type": question_type(q["question"]),
        "support": q["support"],
        "rank": rank_of(cited, gold),
        "abstained": abstained,
        "first_quote": bool(quotes) and contains_answer(q["answers"], quotes[:1]),
        "in_quotes": contains_answer(q["answers"], [joined[:BUDGET]]),
        "quote_chars": len(joined),
        "first_chars": len(quotes[0]) if quotes else 0,
        "latency": latency,
    }


def ask_pipeline(desk: Desk, questions: list[dict[str, Any]], doc_ids: set[str]) -> list[dict]:
    desk.ask("warm up", Filters())
    rows = []
    for q in questions:
        start = time.perf_counter()
        answer = desk.ask(q["question"], Filters(), as_of=parse_day(q["question_date"]))
        latency = time.perf_counter() - start
        quotes = [c.quote for c in answer.citations]
        cited = distinct(c.article_id for c in answer.citations)
        rows.append(row(q, doc_ids, cited, quotes, answer.abstained, latency))
    return rows


def first_sentence(p: Passage) -> str:
    sentences = split_sentences(p)
    return sentences[0].text if sentences else p.chunk.text.strip()


def ask_plain(
    search: Callable[[str], list[Passage]],
    questions: list[dict[str, Any]],
    doc_ids: set[str],
    first_chars: int,
) -> list[dict]:
    """A baseline that never abstains: its passages in order, quoted up to the budget; its
    "first quote" is the top passage's opening cut to the pipeline's mean first-quote length."""
    rows = []
    for q in questions:
        start = time.perf_counter()
        passages = search(q["question"])
        latency = time.perf_counter() - start
        quotes = [p.chunk.text.strip() for p in passages]
        if quotes:
            quotes[0] = quotes[0][:first_chars]
            rest = " ".join(quotes[1:])
            quotes = [quotes[0], rest[: max(0, BUDGET - first_chars)]] if rest else quotes[:1]
        cited = distinct(p.article_id for p in passages)
        rows.append(row(q, doc_ids, cited, quotes, False, latency))
    return rows


# Per measure: the questions it is a share of, and what counts as a success.
OUTCOMES: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any]], bool]]] = {
    "hits@1": (("gold",), lambda r: r["rank"] == 1),
    "first_quote": (ANSWERABLE, lambda r: bool(r["first_quote"])),
    "in_quotes": (ANSWERABLE, lambda r: bool(r["in_quotes"])),
    "answered": (ANSWERABLE, lambda r: not r["abstained"]),
    # `silver` only says some article holds the answer string (noisy): `gold` is the sure label.
    "answered_gold": (("gold",), lambda r: not r["abstained"]),
    "refused": (("none",), lambda r: bool(r["abstained"])),
}
Z95 = 1.959964  # the normal quantile of a two-sided 95% interval


def interval(successes: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a share. With a few dozen questions one question moves
    a figure by several points; the interval says how far the figure could be from the truth."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    scale = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / scale
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / scale
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    answered = [r for r in rows if not r["abstained"]]
    latencies = [r["latency"] for r in rows]
    out: dict[str, float] = {
        "n": len(rows),
        "n_gold": sum(1 for r in rows if r["support"] == "gold"),
        "n_answerable": sum(1 for r in rows if r["support"] in ANSWERABLE),
        "n_none": sum(1 for r in rows if r["support"] == "none"),
        "quote_chars": statistics.mean(r["quote_chars"] for r in answered) if answered else 0,
        "first_chars": statistics.mean(r["first_chars"] for r in answered) if answered else 0,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
    }
    for key, (supports, success) in OUTCOMES.items():
        items = [r for r in rows if r["support"] in supports]
        wins = sum(1 for r in items if success(r))
        out[key] = wins / len(items) if items else float("nan")
        out[f"lo_{key}"], out[f"hi_{key}"] = interval(wins, len(items))
    return out


def paired(ours: list[dict[str, Any]], other: list[dict[str, Any]], key: str) -> tuple[int, int]:
    """Questions where ours succeeds and the other fails, and the reverse: the difference
    between two systems on the same questions is these counts, not the gap of two shares."""
    supports, success = OUTCOMES[key]
    theirs = {r["question_id"]: r for r in other}
    better = worse = 0
    for r in ours:
        o = theirs.get(r["question_id"])
        if o is None or r["support"] not in supports:
            continue
        better += success(r) and not success(o)
        worse += success(o) and not success(r)
    return better, worse


TARGETS = {
    "hits@1": 0.70,
    "first_quote": 0.45,
    "in_quotes": 0.65,
    "answered": 0.90,
    "refused": 0.70,
}
MEASURES = [
    ("hits@1: gold article cited first (`gold`, n={n_gold})", "hits@1"),
    ("answer string in the first quote (`gold`+`silver`, n={n_answerable})", "first_quote"),
    (f"answer string in the quotes, first {BUDGET:,} characters", "in_quotes"),
    ("answerable questions answered", "answered"),
    ("… of them `gold` (the reliable label: the quiz's article has the answer)", "answered_gold"),
    ("unanswerable (`none`) questions refused (n={n_none})", "refused"),
    ("quoted characters per answer (mean)", "quote_chars"),
    ("first quote, characters (mean)", "first_chars"),
    ("latency p50 / p95, s", "latency"),
]


def cell(s: dict[str, float], key: str, spread: bool = False) -> str:
    if key == "latency":
        return f"{s['p50']:.2f} / {s['p95']:.2f}"
    if key in ("quote_chars", "first_chars"):
        return f"{s[key]:.0f}"
    value = s[key]
    if value != value:
        return "–"
    if spread and f"lo_{key}" in s:
        return f"{value:.1%} ({s[f'lo_{key}']:.0%}–{s[f'hi_{key}']:.0%})"
    return f"{value:.1%}"


def table(summaries: dict[str, dict[str, float]], first: str) -> list[str]:
    """Measures by system; the first system's shares carry their 95% interval."""
    names = list(summaries)
    lines = ["| measure | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, key in MEASURES:
        label = label.format(**{k: int(v) for k, v in summaries[first].items() if k[:2] == "n_"})
        if key in TARGETS:
            label += f" (target ≥ {TARGETS[key]:.0%})"
        cells = [cell(s, key, spread=name == first) for name, s in summaries.items()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def paired_table(runs: dict[str, list[dict[str, Any]]], split: str) -> list[str]:
    """Per measure: on how many of the split's questions the first system wins (+) or loses (−)
    against each other one."""
    ours, *others = runs
    rows = {name: [r for r in runs[name] if r["split"] == split] for name in runs}
    lines = [
        "| measure | " + " | ".join(f"vs {name}" for name in others) + " |",
        "|---" * (len(others) + 1) + "|",
    ]
    for key in OUTCOMES:
        counts = [paired(rows[ours], rows[name], key) for name in others]
        lines.append(f"| {key} | " + " | ".join(f"+{b} / −{w}" for b, w in counts) + " |")
    return lines


def by_type(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| question type | n | hits@1 (n gold) | first quote | quotes ≤ 1,000 | answered "
        "| refused |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in sorted({r["type"] for r in rows}):
        s = summarize([r for r in rows if r["type"] == kind])
        lines.append(
            f"| {kind} | {s['n']:.0f} | {cell(s, 'hits@1')} ({s['n_gold']:.0f}) | "
            f"{cell(s, 'first_quote')} | {cell(s, 'in_quotes')} | {cell(s, 'answered')} | "
            f"{cell(s, 'refused')} |"
        )
    return lines


def render(
    runs: dict[str, list[dict[str, Any]]],
    settings: Settings,
    embedder: Embedder,
    n_articles: int,
    seconds: float,
) -> str:
    lines = [
        "# Answer quality: held-back weeks, early weeks, whole dev set",
        "",
        "Generated by `bench/quality.py` (`make bench`); do not edit by hand (the log of what "
        "was tried is bench/results/quality-tried.md, appended below).",
        "",
        f"Machine: {machine()}. Whole run: {seconds / 60:.1f} min.",
        "",
        f"Data: RealTime QA dev set, questions asked open-ended (no choices) with the question "
        f"date as the as-of date, against {n_articles} articles."
        + (
            ""
            if n_articles >= 3833  # the whole file: 3 of its 3,836 records have no text
            else " A SAMPLE of the corpus: its first articles (the file is ordered by hashed doc "
            "id) plus the gold articles of the `gold` questions; a `silver` question becomes "
            "`none` when no article containing the answer string is in it."
        ),
        f"Early weeks: question dates before {SPLIT.isoformat()} (the only questions "
        "bench/tune.py, bench/lead_fit.py and bench/abstain_fit.py fitted or chose anything "
        "on). Late weeks: from it on, never tuned on.",
        f"Embedding model: {embedder.name} ({embedder.dtype}). Newsdesk: reranker "
        f"`{settings.reranker}`, top_k={settings.top_k}, per_article={settings.per_article}, "
        f"abstain={settings.abstain}, min_relevance={settings.min_relevance}, "
        f"answer_sentences={settings.answer_sentences}, "
        f"stale_days={settings.stale_days}.",
    ]
    for split in ("late", "early", "whole"):
        title = {
            "late": "Held-back (late) weeks",
            "early": "Early weeks (tuned on)",
            "whole": "Whole dev set",
        }[split]
        chosen = {
            name: summarize([r for r in rows if split == "whole" or r["split"] == split])
            for name, rows in runs.items()
        }
        lines += ["", f"## {title}", "", *table(chosen, next(iter(runs)))]
    ours = next(iter(runs))
    late = summarize([r for r in runs[ours] if r["split"] == "late"])
    lines += [
        "",
        f"## Question by question, held-back weeks ({ours} against the others)",
        "",
        f"+a / −b: on a questions {ours} succeeds where the other fails, on b the reverse; "
        "the rest agree.",
        "",
        *paired_table(runs, "late"),
    ]
    lines += ["", f"## Per question type, held-back weeks ({ours})", ""]
    lines += by_type([r for r in runs[ours] if r["split"] == "late"])
    lines += [
        "",
        "Definitions:",
        "- hits@1: the first cited article is the gold one (a `-v2` re-crawl counts); for the "
        "baselines, their top passage's article. Abstentions cite nothing: a miss.",
        "- answer string: any of the question's answers, lower-cased without punctuation, as "
        f"whole words. In the quotes: within the first {BUDGET:,} characters of the joined "
        "quotes (equal budget for every system). First quote: ours is the lead citation; a "
        "baseline's is its top passage cut to our mean first-quote length.",
        "- answered: `gold`+`silver` questions not refused; refused: `none` questions refused. "
        "The baselines never refuse.",
        "- question type: bot.answer.question_type (entity = who/which/what).",
        f"- (a–b) after a {ours} share: its 95% Wilson score interval. On the held-back weeks "
        f"one question is {1 / max(1, late['n_gold']):.1%} of hits@1 ({late['n_gold']:.0f} "
        f"`gold` questions) and {1 / max(1, late['n_none']):.1%} of refusals "
        f"({late['n_none']:.0f} `none`).",
    ]
    if TRIED_FILE.exists():
        lines += ["", TRIED_FILE.read_text().strip()]
    return "\n".join(lines) + "\n"


def load(args: argparse.Namespace) -> tuple[Path, list[dict], list[dict], set[str]]:
    rtqa = args.dev_eval / "realtimeqa"
    corpus = rtqa / "corpus.jsonl"
    records = read_jsonl(corpus)
    doc_ids = {r["doc_id"] for r in records}
    questions = read_jsonl(rtqa / "questions.jsonl")
    if args.sample:
        records = sample(records, questions, args.sample, args.work)
        corpus = args.work / f"sample-{args.sample}.jsonl"
        questions = relabel(questions, {r["doc_id"] for r in records})
    if args.index:  # an ingested folder as is: its articles are the corpus
        stored = {r.id for r in Desk(settings_for(args.index)).store.articles(state="ready")}
        records = [r for r in records if article_id(r["doc_id"]) in stored]
        questions = relabel(questions, {r["doc_id"] for r in records})
    if args.limit:
        questions = questions[: args.limit]
    return corpus, records, questions, doc_ids


def open_desk(args: argparse.Namespace, corpus: Path, **overrides: Any) -> Desk:
    settings = Settings()
    embedder = TorchEmbedder(
        settings.embedding_model, settings.embedding_device, dtype=settings.embedding_dtype
    )
    if args.index:
        return Desk(settings_for(args.index, **overrides), embedder=embedder)
    key = index_key(settings_for(args.work), embedder, corpus)
    folder = args.work / f"ours-{key}"
    desk, stats = build_ours(corpus, folder, embedder)
    print(f"ours: {folder} {stats}", flush=True)
    if overrides:
        desk = Desk(settings_for(folder, **overrides), embedder=embedder)
    return desk


def arguments() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dev_eval", type=Path, help="the dev-eval folder (../shared/dev-eval)")
    ap.add_argument("--limit", type=int, default=0, help="ask only the first N questions")
    ap.add_argument("--sample", type=int, default=0, help="only the first N articles (+ gold)")
    ap.add_argument("--work", type=Path, default=ROOT / "work", help="indexes (git-ignored)")
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    ap.add_argument("--index", type=Path, help="use this ingested folder (bench/work/ours-*) as is")
    ap.add_argument("--tag", default="", help="write quality-<tag>.* instead of quality.*")
    return ap


def main() -> None:
    args = arguments().parse_args()
    started = time.perf_counter()
    corpus, records, questions, doc_ids = load(args)
    desk = open_desk(args, corpus)
    runs: dict[str, list[dict[str, Any]]] = {}
    runs["Newsdesk"] = ask_pipeline(desk, questions, doc_ids)
    for label, update in (
        ("Newsdesk, identity rerank", {"reranker": "identity"}),
        ("Newsdesk, cosine abstention", {"abstain": "cosine"}),
    ):
        other = Desk(desk.settings.model_copy(update=update), desk.embedder)
        runs[label] = ask_pipeline(other, questions, doc_ids)
    first = int(summarize(runs["Newsdesk"])["first_chars"]) or 200
    k = desk.settings.top_k
    runs["BM25"] = ask_plain(
        lambda q: desk.store.keyword_search(q, k, Filters()), questions, doc_ids, first
    )
    runs["dense"] = ask_plain(
        lambda q: desk.store.dense_search(desk.embedder.encode([q])[0], k, Filters()),
        questions,
        doc_ids,
        first,
    )
    suffix = f"-{args.tag}" if args.tag else ""
    for name, rows in runs.items():
        slug = "-".join(name.lower().replace(",", "").split())
        write_jsonl(args.results / f"quality{suffix}-{slug}.jsonl", rows)
    text = render(runs, desk.settings, desk.embedder, len(records), time.perf_counter() - started)
    (args.results / f"quality{suffix}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
