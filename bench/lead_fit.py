"""Offline study of the answer's sentences on a dump made by bench/lead_dump.py: the oracle
ceiling (is the answer string in any sentence at all?), where the answer-bearing sentence ranks
in the composer's order, and the composer's figures with a sentence scorer fitted on the EARLY
weeks only (late weeks are printed for the record, never used to choose).

    .venv/bin/python bench/lead_fit.py DIR/lead-dump-index.pkl [--fit]

`--fit` prints LEAD_WEIGHTS to paste into bot/lead.py (logistic regression on the sentences
of the early answerable questions, answer string in the sentence = 1). `--crossval` first
leaves one early week out at a time, fits on the others and composes the week left out, for
each regularisation strength: the out-of-fold figures choose C without the late weeks.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import contains_answer

from bot.answer import ExtractiveComposer, split_sentences
from bot.lead import LEAD_WEIGHTS, lead_features

BUDGET = 1000


class CachedEmbedder:
    """Serves the dumped sentence vectors: the composer runs offline, without the model."""

    name = "cached"
    backend = "cached"
    dtype = "float32"
    dimension = 384
    cosine_floor = 0.0

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.array([self.vectors[t] for t in texts])


def has(q: dict[str, Any], text: str) -> bool:
    return contains_answer(q["answers"], [text])


def composed(q: dict[str, Any], composer: ExtractiveComposer) -> dict[str, Any]:
    composer.embedder = CachedEmbedder(q["vectors"])  # type: ignore[assignment]
    if q["refused_before"] or not q["passages"]:
        return {"abstained": True, "first": False, "in": False, "hit1": False, "chars": 0}
    answer = composer.compose(q["question"], q["vector"], q["passages"], q["as_of"])
    quotes = [c.quote for c in answer.citations]
    joined = " ".join(quotes)
    return {
        "abstained": answer.abstained,
        "first": bool(quotes) and has(q, quotes[0]),
        "in": has(q, joined[:BUDGET]),
        "hit1": bool(answer.citations) and answer.citations[0].article_id in q["gold"],
        "chars": len(joined),
    }


def tally(qs: list[dict[str, Any]], composer: ExtractiveComposer) -> tuple[int, int, int]:
    """Answerable questions, and how many have the answer in the first quote, in the quotes."""
    ans = [q for q in qs if q["support"] in ("gold", "silver")]
    out = [composed(q, composer) for q in ans]
    return len(ans), sum(o["first"] for o in out), sum(o["in"] for o in out)


def report(rows: list[dict[str, Any]], composer: ExtractiveComposer, label: str) -> None:
    for split in ("early", "late"):
        qs = [q for q in rows if q["split"] == split]
        ans = [q for q in qs if q["support"] in ("gold", "silver")]
        none = [q for q in qs if q["support"] == "none"]
        gold = [q for q in ans if q["support"] == "gold"]
        out = {id(q): composed(q, composer) for q in ans + none}
        n = len(ans)
        answered = [q for q in ans if not out[id(q)]["abstained"]]
        chars = np.mean([out[id(q)]["chars"] for q in answered]) if answered else 0
        print(
            f"{label:28s} {split:5s} first {sum(out[id(q)]['first'] for q in ans) / n:6.1%} "
            f"in1000 {sum(out[id(q)]['in'] for q in ans) / n:6.1%} "
            f"hits@1 {sum(out[id(q)]['hit1'] for q in gold) / max(1, len(gold)):6.1%} "
            f"answered {len(answered) / n:6.1%} "
            f"refused {sum(out[id(q)]['abstained'] for q in none) / max(1, len(none)):6.1%} "
            f"chars {chars:4.0f}"
        )


def ceilings(rows: list[dict[str, Any]]) -> None:
    """How often the answer string is in any sentence of the first article's passages, of all
    passages; and the rank of the first answer-bearing sentence in the composer's order."""
    composer = ExtractiveComposer(CachedEmbedder({}), max_sentences=5, min_relevance=0.5)  # type: ignore[arg-type]
    for split in ("early", "late"):
        ans = [q for q in rows if q["split"] == split and q["support"] in ("gold", "silver")]
        first_art = any_sent = ranks = 0
        rank_hist: dict[str, int] = {}
        for q in ans:
            ps = q["passages"]
            if not ps:
                rank_hist["no passages"] = rank_hist.get("no passages", 0) + 1
                continue
            top = ps[0].article_id
            sents = [s for p in ps for s in split_sentences(p)]
            first_art += any(has(q, s.text) for s in sents if s.passage.article_id == top)
            any_sent += any(has(q, s.text) for s in sents)
            composer.embedder = CachedEmbedder(q["vectors"])  # type: ignore[assignment]
            vectors = composer.embedder.encode([s.text for s in sents])
            composer.score(q["question"], ps, sents, [float(v @ q["vector"]) for v in vectors])
            order = sorted(sents, key=lambda s: -s.score)
            where = next((i for i, s in enumerate(order) if has(q, s.text)), None)
            key = "absent" if where is None else str(min(where + 1, 6)).replace("6", "6+")
            rank_hist[key] = rank_hist.get(key, 0) + 1
            ranks += where is not None
        n = len(ans)
        print(
            f"{split}: n={n} answer in a sentence of the first article {first_art / n:.1%}, "
            f"of any passage {any_sent / n:.1%}; rank of the first answer-bearing sentence "
            f"in the composer's order: {dict(sorted(rank_hist.items()))}"
        )


def training(rows: list[dict[str, Any]], lead: bool) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows and labels of the answerable questions whose passages hold the answer
    somewhere (the others teach nothing): for the lead, only the sentences it is chosen from
    (the best-ranked article's); for the quotes, every sentence."""
    xs, ys = [], []
    for q in rows:
        if q["support"] not in ("gold", "silver") or not q["passages"]:
            continue
        if q["refused_before"]:
            continue
        sents = [s for p in q["passages"] for s in split_sentences(p)]
        labels = np.array([has(q, s.text) for s in sents], dtype=bool)
        top = np.array([s.passage.article_id == q["passages"][0].article_id for s in sents])
        if not lead:
            top[:] = True
        if not labels[top].any():
            continue
        dense = [float(q["vectors"][s.text] @ q["vector"]) for s in sents]
        feats = lead_features(q["question"], q["passages"], sents, dense)
        xs.append(feats[top])
        ys.append(labels[top])
    return np.vstack(xs), np.concatenate(ys)


def fit(rows: list[dict[str, Any]], c: float, lead: bool, quiet: bool = False) -> dict[str, float]:
    """Logistic regression on the early weeks of `rows` (the `bias` feature is the intercept),
    classes balanced."""
    from sklearn.linear_model import LogisticRegression

    x, y = training([q for q in rows if q["split"] == "early"], lead)
    model = LogisticRegression(
        C=c, class_weight="balanced", fit_intercept=False, max_iter=3000
    ).fit(x, y)
    weights = {
        name: round(float(w), 2) for name, w in zip(LEAD_WEIGHTS, model.coef_[0], strict=True)
    }
    if not quiet:
        name = "LEAD_WEIGHTS" if lead else "QUOTE_WEIGHTS"
        print(f"{name}: {len(y)} early sentences, {int(y.sum())} with the answer")
        print(f"{name} =", weights)
    return weights


def crossval(
    rows: list[dict[str, Any]],
    composer: ExtractiveComposer,
    strengths: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0),
) -> None:
    """Leave one early week out: fit the lead and quote weights on the other early weeks and
    compose the week left out. Prints, per C, the early answerable questions with the answer in
    the first quote and in the quotes, out of fold; the shipped weights' figure is in-sample."""
    early = [q for q in rows if q["split"] == "early"]
    weeks = sorted({q["week"] for q in early})
    n, first, within = tally(early, composer)
    print(f"leave-one-week-out over {len(weeks)} early weeks, {n} answerable questions:")
    print(f"  shipped weights (in-sample): first quote {first / n:.1%}, quotes {within / n:.1%}")
    shipped = composer.lead_weights, composer.quote_weights
    for c in strengths:
        first = within = 0
        for week in weeks:
            rest = [q for q in early if q["week"] != week]
            composer.lead_weights = fit(rest, c, lead=True, quiet=True)
            composer.quote_weights = fit(rest, c, lead=False, quiet=True)
            _, f, w = tally([q for q in early if q["week"] == week], composer)
            first, within = first + f, within + w
        print(f"  fitted with C={c}: first quote {first / n:.1%}, quotes {within / n:.1%}")
    composer.lead_weights, composer.quote_weights = shipped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump", type=Path)
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--crossval", action="store_true", help="choose C leaving a week out")
    ap.add_argument("--sentences", type=int, default=5)
    ap.add_argument("--budget", type=int, default=1000, help="quote_budget, characters")
    ap.add_argument("--C", type=float, default=0.1, help="inverse regularisation strength")
    ap.add_argument("--abstain", default="fitted", choices=("fitted", "cosine"))
    ap.add_argument("--min-relevance", type=float, default=0.5)
    ap.add_argument("--old", type=Path, help="a former bot/answer.py, measured the same way")
    args = ap.parse_args()
    rows = pickle.loads(args.dump.read_bytes())
    ceilings(rows)
    if args.old:
        import importlib.util

        spec = importlib.util.spec_from_file_location("answer_old", args.old)
        assert spec and spec.loader
        old = importlib.util.module_from_spec(spec)
        sys.modules["answer_old"] = old
        spec.loader.exec_module(old)
        report(rows, old.ExtractiveComposer(CachedEmbedder({}), args.sentences, 0.5), "old")
    embedder = CachedEmbedder({})
    composer = ExtractiveComposer(embedder, args.sentences, args.min_relevance, None, args.abstain)  # type: ignore[arg-type]
    composer.quote_budget = args.budget
    report(rows, composer, "shipped weights")
    if args.crossval:
        crossval(rows, composer)
    if args.fit:
        composer.lead_weights = fit(rows, args.C, lead=True)
        composer.quote_weights = fit(rows, args.C, lead=False)
        report(rows, composer, "fitted now")
        for n, budget in ((5, 10**6), (6, 1000), (7, 1000), (8, 1000)):
            composer.max_sentences, composer.quote_budget = n, budget
            report(rows, composer, f"fitted, {n} sentences, {budget} chars")


if __name__ == "__main__":
    main()
