"""Fits the feature reranker's weights and scans the abstention settings, on the EARLY weeks of
the RealTime QA dev set only (the late weeks are held back for bench/quality.py).

    .venv/bin/python bench/tune.py ../shared/dev-eval [--sample 1000 | --index bench/work/ours-*]

Chooses the regularisation by leaving one early week out at a time, then prints FEATURE_WEIGHTS
fitted on all early weeks to paste into bot/rerank.py (the roundup weight is set by hand there)
and a table of answered / refused for min_relevance x stale_days; nothing is written into the
project.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np
from common import contains_answer, gold_ids, parse_day
from quality import arguments, load, open_desk, split_of

from bot.models import Filters
from bot.pipeline import Request
from bot.rerank import FEATURE_WEIGHTS, FeatureReranker, features


def labelled(desk: Any, questions: list[dict], doc_ids: set[str]) -> list[tuple]:
    """Per early answerable question: its candidate pool, features and labels."""
    out = []
    pool = desk.pipeline.params.pool
    for q in questions:
        as_of = parse_day(q["question_date"])
        _, passages = desk.retriever.retrieve(q["question"], Filters(as_of=as_of), pool)
        if not passages:
            continue
        gold = gold_ids(q, doc_ids)
        labels = [
            1
            if p.article_id in gold
            or (not gold and contains_answer(q["answers"], [p.title + " " + p.chunk.text]))
            else 0
            for p in passages
        ]
        out.append((q, passages, features(q["question"], passages, as_of), labels, gold))
    return out


def fit(data: list[tuple], c: float = 1.0) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression

    x = np.array([row for _, _, feats, _, _ in data for row in feats])
    y = np.array([label for _, _, _, labels, _ in data for label in labels])
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=1000).fit(x, y)
    return {
        name: round(float(w), 2) for name, w in zip(FEATURE_WEIGHTS, model.coef_[0], strict=True)
    }


def hits1(data: list[tuple], weights: dict[str, float] | None) -> float:
    """Share of early `gold` questions whose first candidate (after reranking) is gold."""
    hits, n = gold_first(data, weights)
    return hits / max(1, n)


def gold_first(data: list[tuple], weights: dict[str, float] | None) -> tuple[int, int]:
    """`gold` questions whose first candidate (after reranking) is gold, and `gold` questions."""
    hits = n = 0
    for q, passages, _, _, gold in data:
        if q["support"] != "gold":
            continue
        as_of = parse_day(q["question_date"])
        ranked = (
            FeatureReranker(weights).rerank(q["question"], passages, as_of) if weights else passages
        )
        n += 1
        hits += ranked[0].article_id in gold
    return hits, n


def crossval(data: list[tuple], strengths: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)) -> float:
    """Leave one early week out: fit on the other early weeks, score the week left out, for
    each regularisation strength C. A fit's figure on its own weeks is in-sample; this one says
    what it gains on weeks it has not seen, without touching the late weeks. Returns the best
    C (ties go to the stronger regularisation, which moves retrieval's order less)."""
    weeks = sorted({q["question_date"] for q, *_ in data})
    print(f"leave-one-week-out over {len(weeks)} early weeks, hits@1 of the pool's first:")
    print(f"  retrieval's order {hits1(data, None):.1%}")
    best, best_hits = strengths[0], -1
    for c in strengths:
        hits = n = 0
        for week in weeks:
            weights = fit([row for row in data if row[0]["question_date"] != week], c)
            h, g = gold_first([row for row in data if row[0]["question_date"] == week], weights)
            hits, n = hits + h, n + g
        print(f"  fitted with C={c}: {hits / max(1, n):.1%} ({hits} of {n})")
        if hits > best_hits:
            best, best_hits = c, hits
    return best


def abstention(desk: Any, questions: list[dict]) -> None:
    """answered (gold+silver) / refused (none) for min_relevance x stale_days."""
    evidence = []
    for q in questions:
        request = Request(q["question"], parse_day(q["question_date"]) or dt_today())
        evidence.append((q, desk.pipeline.evidence.invoke(request)))
    composer = desk.composer
    print("min_relevance stale_days answered refused")
    for rel, stale in itertools.product((0.40, 0.45, 0.50, 0.55), (7, 10, 14, 21, 60)):
        composer.min_relevance = rel
        desk.pipeline.params = dataclasses.replace(desk.pipeline.params, stale_days=stale)
        answered = refused = n_ans = n_none = 0
        for q, ev in evidence:
            as_of = ev.request.as_of
            out = desk.pipeline.refusal(ev) is not None or not composer.answers(
                q["question"], ev.vector, ev.passages, as_of
            )
            if q["support"] in ("gold", "silver"):
                n_ans += 1
                answered += not out
            elif q["support"] == "none":
                n_none += 1
                refused += out
        print(f"{rel:.2f} {stale:3d} {answered / n_ans:.1%} {refused / max(1, n_none):.1%}")


def dt_today() -> Any:
    import datetime as dt

    return dt.date.today()


def main() -> None:
    args = arguments().parse_args()
    corpus, _, questions, doc_ids = load(args)
    early = [q for q in questions if split_of(q) == "early"]
    print(f"{len(early)} early questions of {len(questions)}", flush=True)
    desk = open_desk(args, corpus)
    data = labelled(desk, [q for q in early if q["support"] in ("gold", "silver")], doc_ids)
    c = crossval(data)
    weights = fit(data, c)
    print(f"FEATURE_WEIGHTS (C={c}) =", weights)
    print(
        f"early hits@1 of the pool's first: retrieval {hits1(data, None):.1%}, "
        f"current weights {hits1(data, FEATURE_WEIGHTS):.1%}, fitted {hits1(data, weights):.1%}"
    )
    abstention(desk, early)


if __name__ == "__main__":
    main()
