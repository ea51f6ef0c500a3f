"""Offline study of abstention on a dump made by bench/lead_dump.py: how well each signal, and a
logistic score over all of them, tells answerable questions (`gold`, `silver`) from ones the
archive does not answer (`none`). Fitted on the EARLY weeks only; late weeks are printed for the
record, never used to choose.

    .venv/bin/python bench/abstain_fit.py DIR/lead-dump-index.pkl [--C 0.3]

Prints each signal's AUC, the fitted weights (to paste into bot/abstain.py; the bias holds the
threshold that answers --answer-share of the early answerable questions) and, for the shipped
and the fitted weights, the share of answerable questions answered and of `none` questions
refused in either split (before the composer's numbers rule).
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.abstain import ABSTAIN_WEIGHTS, abstain_features
from bot.lead import split_sentences


def features(q: dict[str, Any]) -> np.ndarray:
    sents = [s for p in q["passages"] for s in split_sentences(p)]
    cosines = [float(q["vectors"][s.text] @ q["vector"]) for s in sents]
    return abstain_features(q["question"], q["passages"], cosines, q["as_of"])


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """The chance that a random answerable question scores above a random `none` one."""
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return float("nan")
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def table(rows: list[dict[str, Any]], split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    qs = [
        q
        for q in rows
        if q["split"] == split and q["support"] in ("gold", "silver", "none") and q["passages"]
    ]
    x = np.vstack([features(q) for q in qs])
    y = np.array([q["support"] != "none" for q in qs])
    before = np.array([q["refused_before"] for q in qs])
    return x, y, before


def rates(score: np.ndarray, y: np.ndarray, before: np.ndarray, t: float) -> tuple[float, float]:
    answer = (score >= t) & ~before
    return float(answer[y].mean()), float((~answer[~y]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump", type=Path)
    ap.add_argument("--C", type=float, default=0.3, help="inverse regularisation strength")
    ap.add_argument("--features", default="", help="comma-separated; default: the shipped ones")
    ap.add_argument("--answer-share", type=float, default=0.85, help="of early answerable")
    args = ap.parse_args()
    rows = pickle.loads(args.dump.read_bytes())
    names = list(ABSTAIN_WEIGHTS)
    data = {split: table(rows, split) for split in ("early", "late")}
    for split, (_, y, _) in data.items():
        print(f"{split}: {int(y.sum())} answerable, {int((~y).sum())} none")
    for i, name in enumerate(names[1:], start=1):
        aucs = " ".join(f"{s} {auc(x[:, i], y):.3f}" for s, (x, y, _) in data.items())
        print(f"  AUC {name:12s} {aucs}")
    from sklearn.linear_model import LogisticRegression

    chosen = (
        args.features.split(",") if args.features else [n for n, w in ABSTAIN_WEIGHTS.items() if w]
    )
    cols = [names.index(n) for n in chosen]
    x, y, _ = data["early"]
    model = LogisticRegression(
        C=args.C, class_weight="balanced", fit_intercept=False, max_iter=5000
    ).fit(x[:, cols], y)
    fitted = np.zeros(len(names))
    fitted[cols] = model.coef_[0]
    # The threshold that answers --answer-share of the early answerable questions, in the bias.
    early = np.sort(x[y] @ fitted)
    fitted[0] -= float(early[int((1 - args.answer_share) * len(early))])
    print("ABSTAIN_WEIGHTS =", {n: round(float(w), 2) for n, w in zip(names, fitted, strict=True)})
    shipped = np.array([ABSTAIN_WEIGHTS[n] for n in names])
    for label, w in (("shipped", shipped), ("fitted now", fitted)):
        cells = []
        for s, (xs, ys, before) in data.items():
            score = xs @ w
            answered, refused = rates(score, ys, before, 0.0)
            cells.append(
                f"{s} AUC {auc(score, ys):.3f} answered {answered:6.1%} refused {refused:6.1%}"
            )
        print(f"{label:10s} " + " | ".join(cells))


if __name__ == "__main__":
    main()
