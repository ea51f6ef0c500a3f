"""Abstention: the fitted score (bot/abstain.py) refuses what the archive only brushes against."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.abstain import ABSTAIN_WEIGHTS, abstain_features, answer_score
from bot.answer import ExtractiveComposer, split_sentences
from bot.desk import Desk
from bot.models import Chunk, Passage
from bot.pipeline import Request

# The seed article is about the EU and Turkey's S-400s; it gives Turkey's price, not Europe's.
BRUSHES = "What will the S-400 deal cost European taxpayers?"
COVERED = "How did NATO react to the EU buying S-400 systems?"


def test_a_question_the_article_only_brushes_against_is_refused(seeded: Desk) -> None:
    answered = seeded.ask(COVERED)
    assert not answered.abstained and answered.citations
    refused = seeded.ask(BRUSHES)
    assert refused.abstained and not refused.citations
    # The former rule (one cosine threshold) quotes the article for it.
    cosine = Desk(seeded.settings.model_copy(update={"abstain": "cosine"}), seeded.embedder)
    assert not cosine.ask(BRUSHES).abstained


def test_raising_min_relevance_refuses_more(seeded: Desk) -> None:
    """NEWSDESK_MIN_RELEVANCE keeps its meaning: the fitted score counts cosines from it."""
    evidence = seeded.pipeline.evidence.invoke(Request(COVERED, dt.date.today()))
    assert evidence.vector is not None
    sentences = [s for p in evidence.passages for s in split_sentences(p)]
    vectors = seeded.embedder.encode([s.text for s in sentences])
    cosines = [float(v @ evidence.vector) for v in vectors]
    scores = [
        answer_score(abstain_features(COVERED, evidence.passages, cosines, None, threshold))
        for threshold in (0.3, 0.5, 0.7, 0.9)
    ]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0 > scores[-1]
    strict = ExtractiveComposer(seeded.embedder, min_relevance=0.9, abstain="fitted")
    assert strict.compose(COVERED, evidence.vector, evidence.passages).abstained


def test_a_passage_in_another_language_is_not_taken_for_missing_terms(seeded: Desk) -> None:
    """Between languages no word matches: the passage's closeness stands in for coverage."""
    evidence = seeded.pipeline.evidence.invoke(Request(COVERED, dt.date.today()))
    foreign = [dataclasses.replace(p, same_language=False) for p in evidence.passages]
    cosines = [0.6]
    same = abstain_features(COVERED, evidence.passages, cosines, None)
    other = abstain_features(COVERED, foreign, cosines, None)
    coverage = list(ABSTAIN_WEIGHTS).index("coverage")
    assert other[coverage] == min(1.0, max(p.dense for p in foreign)) != same[coverage]
    assert answer_score(other) > 0


@settings(max_examples=200, deadline=None)
@given(
    question=st.text(max_size=200),
    texts=st.lists(st.text(max_size=300), min_size=1, max_size=6),
    dense=st.floats(-1, 1),
    days=st.one_of(st.none(), st.integers(-4000, 4000)),
    as_of=st.one_of(st.none(), st.dates(dt.date(1990, 1, 1), dt.date(2040, 1, 1))),
)
def test_any_question_and_evidence_give_a_finite_score(
    question: str, texts: list[str], dense: float, days: int | None, as_of: dt.date | None
) -> None:
    """Hostile or empty text, undated or future articles: a decision, never an exception."""
    published = None if days is None else dt.date(2015, 1, 1) + dt.timedelta(days=days)
    passages = [
        Passage(
            Chunk(f"a{i}:0", f"a{i}", 0, 0, len(t), t),
            t[:20],
            "Outlet",
            published,
            "",
            dense=dense,
            keyword=float(i % 2),
        )
        for i, t in enumerate(texts)
    ]
    row = abstain_features(question, passages, [dense] * len(texts), as_of)
    assert row.shape == (len(ABSTAIN_WEIGHTS),) and np.isfinite(row).all()
    assert np.isfinite(answer_score(row))
