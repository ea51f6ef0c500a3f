"""The rerank stage, between retrieval and composition: identity, features, or a cross-encoder.

Retrieval hands over a pool of candidate passages, best first; a reranker reorders them and
the pipeline keeps the top few. Near-duplicate articles (the same story carried by several
outlets, or re-crawled) are collapsed before that, so they never crowd out the rest.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from bot.crosslingual import stand_in
from bot.errors import NewsdeskError
from bot.models import Passage
from bot.query import STOPWORDS

RERANKERS = ("identity", "features", "cross-encoder")
DUPLICATE_SHINGLES = 0.5  # Jaccard of word 4-grams above which two passages tell one story

# Fitted by bench/tune.py (logistic regression, gold article = 1) on the EARLY weeks of the
# RealTime QA dev set only (question dates before 2022-07-22); bench/results/quality.md. Its
# regularisation (C=0.01) was chosen by leaving one early week out at a time: the strongest
# one scored best on the weeks it had not seen, and small weights move retrieval's order less.
FEATURE_WEIGHTS: dict[str, float] = {
    "fused": 0.66,  # retrieval's fused score, relative to the best candidate's
    "dense": 0.25,  # cosine to the query
    "keyword": 0.66,  # BM25, relative to the best
    "title": 0.22,  # share of the question's terms in the title
    "coverage": 0.38,  # share of the question's terms in title + text
    "names": 0.28,  # share of its names and numbers
    "recency": 0.95,  # exp(-age / 30 days) before the as-of date
    "future": 0.27,  # published after the as-of date (retrieval already scaled it down)
    # A roundup (a briefing, "5 things to know", live updates), set by hand on the early weeks
    # (the fit gives -0.13, too weak to let a story's own article lead): any weight from -0.5
    # to -3 lifted their hits@1 from 67.4% to 78.3% with the previous weights.
    "roundup": -1.0,
}
# Roundups mention every story of the day in a line or two: a story's own article tells it.
ROUNDUP = re.compile(
    r"\b(?:\d+|three|four|five|six|seven|eight|nine|ten) things (?:you need )?to know\b|"
    r"\b(?:morning|evening|daily|weekly|news) (?:briefing|digest|roundup|wrap)\b|\broundup\b|"
    r"\blive updates\b|\bthe week in\b|\bnews in brief\b|\bnewsletter\b",
    re.IGNORECASE,
)


class Reranker(Protocol):
    name: str

    def rerank(self, query: str, passages: list[Passage], as_of: dt.date | None) -> list[Passage]:
        """The same passages, best first."""
        ...


class IdentityReranker:
    """Retrieval's own order."""

    name = "identity"

    def rerank(self, query: str, passages: list[Passage], as_of: dt.date | None) -> list[Passage]:
        return list(passages)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def question_terms(question: str) -> tuple[set[str], set[str]]:
    """Content-word stems of the question, and its names and numbers (what must match)."""
    terms: set[str] = set()
    heavy: set[str] = set()
    for match in re.finditer(r"\w+", question):
        word = match.group()
        low = word.lower()
        if low in STOPWORDS or (len(low) < 2 and not low.isdigit()):
            continue
        terms.add(low[:6])
        if (word[0].isupper() and match.start() > 0) or any(c.isdigit() for c in word):
            heavy.add(low[:6])
    return terms, heavy


def _share(wanted: set[str], text: str) -> float:
    if not wanted:
        return 0.0
    present = {w[:6] for w in _words(text)}
    return len(wanted & present) / len(wanted)


def features(query: str, passages: list[Passage], as_of: dt.date | None) -> list[list[float]]:
    """One row per passage, in the order of FEATURE_WEIGHTS."""
    terms, heavy = question_terms(query)
    top = max((p.score for p in passages), default=0.0) or 1.0
    top_kw = max((p.keyword for p in passages), default=0.0) or 1.0
    rows = []
    for p in passages:
        age = (as_of - p.published).days if as_of and p.published else None
        text = p.title + " " + p.chunk.text
        # Between languages the question's words are not looked for: the dense score stands in.
        lexical = p.same_language
        rows.append(
            [
                p.score / top,
                p.dense,
                p.keyword / top_kw,
                _share(terms, p.title) if lexical else stand_in(p),
                _share(terms, text) if lexical else stand_in(p),
                _share(heavy, text) if heavy and lexical else 1.0,
                math.exp(-age / 30.0) if age is not None and age >= 0 else 0.0,
                1.0 if age is not None and age < 0 else 0.0,
                1.0 if ROUNDUP.search(p.title) else 0.0,
            ]
        )
    return rows


class FeatureReranker:
    """A linear score over features retrieval already has (weights fitted on the dev set)."""

    name = "features"

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        self.weights = dict(weights or FEATURE_WEIGHTS)

    def scores(self, query: str, passages: list[Passage], as_of: dt.date | None) -> list[float]:
        w = [self.weights.get(name, 0.0) for name in FEATURE_WEIGHTS]
        return [
            sum(a * b for a, b in zip(w, row, strict=True))
            for row in features(query, passages, as_of)
        ]

    def rerank(self, query: str, passages: list[Passage], as_of: dt.date | None) -> list[Passage]:
        scores = self.scores(query, passages, as_of)
        order = sorted(range(len(passages)), key=lambda i: -scores[i])
        return [passages[i] for i in order]


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder from a local folder; never downloads."""

    name = "cross-encoder"

    def __init__(self, path: Path, device: str = "cpu") -> None:
        if not path.is_dir():
            raise NewsdeskError(f"rerank model {str(path)!r} is not a folder")
        from sentence_transformers import CrossEncoder

        try:
            self.model = CrossEncoder(str(path), device=device, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise NewsdeskError(
                f"cannot load rerank model {str(path)!r}: not a sentence-transformers "
                f"CrossEncoder folder ({exc.__class__.__name__})"
            ) from exc

    def rerank(self, query: str, passages: list[Passage], as_of: dt.date | None) -> list[Passage]:
        if not passages:
            return []
        pairs = [(query, f"{p.title}\n{p.chunk.text}") for p in passages]
        scores = [float(s) for s in self.model.predict(pairs, show_progress_bar=False)]
        order = sorted(range(len(passages)), key=lambda i: -scores[i])
        return [passages[i] for i in order]


def make_reranker(kind: str, model_path: Path | None, device: str = "cpu") -> Reranker:
    if kind == "identity":
        return IdentityReranker()
    if kind == "features":
        return FeatureReranker()
    if kind == "cross-encoder" and model_path is not None:
        return CrossEncoderReranker(model_path, device)
    raise NewsdeskError(f"unknown reranker {kind!r}: use one of {', '.join(RERANKERS)}")


def shingles(text: str, n: int = 4) -> set[tuple[str, ...]]:
    words = _words(text)
    return {tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def collapse_duplicates(passages: Sequence[Passage]) -> list[Passage]:
    """Passages best first with near-duplicate articles collapsed: a passage that tells the
    same story as a better-ranked one from another article takes that one's place if its
    article is older (the earliest report is cited) and is dropped otherwise."""
    kept: list[tuple[Passage, set[tuple[str, ...]]]] = []
    for p in passages:
        mine = shingles(p.chunk.text)
        for i, (other, theirs) in enumerate(kept):
            if other.article_id == p.article_id or not mine or not theirs:
                continue
            if len(mine & theirs) / len(mine | theirs) >= DUPLICATE_SHINGLES:
                if p.published and other.published and p.published < other.published:
                    p.score = other.score
                    kept[i] = (p, mine)
                break
        else:
            kept.append((p, mine))
    return [p for p, _ in kept]
