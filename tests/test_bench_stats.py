"""The quality report's statistics: a published figure carries its uncertainty, and two systems
are compared question by question."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from quality import interval, paired, summarize


def test_a_share_of_few_questions_gets_a_wide_interval() -> None:
    # 24 of 38: the Wilson score interval, worked by hand.
    lo, hi = interval(24, 38)
    assert lo == pytest.approx(0.4728, abs=1e-4) and hi == pytest.approx(0.7662, abs=1e-4)
    # Five of five is not certainty, and none of five is not proof of zero.
    assert interval(5, 5)[0] == pytest.approx(0.5655, abs=1e-4) and interval(5, 5)[1] == 1.0
    assert interval(0, 5)[0] == 0.0 and interval(0, 5)[1] > 0.4
    # More questions, narrower interval.
    assert interval(240, 380)[1] - interval(240, 380)[0] < (hi - lo) / 2


def row(qid: str, support: str, rank: int = 0, abstained: bool = False) -> dict:
    return {
        "question_id": qid,
        "split": "late",
        "type": "entity",
        "support": support,
        "rank": rank,
        "abstained": abstained,
        "first_quote": False,
        "in_quotes": False,
        "quote_chars": 0,
        "first_chars": 0,
        "latency": 0.0,
    }


def test_two_systems_are_compared_on_the_same_questions() -> None:
    ours = [
        row("a", "gold", 1),
        row("b", "gold", 2),
        row("c", "gold", 1),
        row("n", "none", 0, True),
    ]
    theirs = [row("a", "gold", 2), row("b", "gold", 1), row("c", "gold", 1), row("n", "none")]
    # Both score 2 of 3 at hits@1, yet they differ on two questions: one won, one lost.
    assert paired(ours, theirs, "hits@1") == (1, 1)
    assert paired(ours, theirs, "refused") == (1, 0)
    # A question the other system never saw is not counted.
    assert paired([*ours, row("d", "gold", 1)], theirs, "hits@1") == (1, 1)
    s = summarize(ours)
    assert s["hits@1"] == pytest.approx(2 / 3) and s["lo_hits@1"] < 2 / 3 < s["hi_hits@1"]
