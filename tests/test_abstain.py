"""Abstention: the fitted score (bot/abstain.py) refuses what the archive only brushes against."""

from __future__ import annotations

import dataclasses
import datetime as dt

from bot.abstain import ABSTAIN_WEIGHTS, abstain_features, answer_score
from bot.answer import ExtractiveComposer, split_sentences
from bot.desk import Desk
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
