"""Questions in one language, passages in another (the multilingual backend only).

The pipeline's lexical signals (question terms in a passage or sentence, names and numbers,
the title) mean nothing between languages: a Russian question shares no words with an English
article that answers it. With a multilingual embedder, each passage is marked with whether it
is written in the question's language; where it is not, those signals neither reward nor veto,
and the dense score (put on MiniLM's scale by `relevance`) stands in for them.

With the default (English) model nothing here runs: English behaviour does not move.
"""

from __future__ import annotations

from functools import lru_cache

from bot.embed import relevance
from bot.language import SUPPORTED, language_of
from bot.models import Passage

# Enough of a passage to tell its language; more only costs time.
SAMPLE_CHARS = 600


def multilingual(embedder: object) -> bool:
    """Whether the model puts questions and passages of different languages in one space."""
    return float(getattr(embedder, "cosine_floor", 0.0)) > 0


@lru_cache(maxsize=4096)
def _language(text: str) -> str:
    return language_of(text, default="")


def passage_language(passage: Passage) -> str:
    """The article's language: the stored one when the article declares it, else detected."""
    declared = str(getattr(passage, "language", "") or "")
    return declared or _language(f"{passage.title}\n{passage.chunk.text}"[:SAMPLE_CHARS])


def question_language(question: str) -> str:
    """One of the supported languages ('' when too short or unsure to tell)."""
    return language_of(question, among=SUPPORTED, default="")


def mark(
    question: str, passages: list[Passage], embedder: object, keyword_weight: float
) -> list[Passage]:
    """The pool again, best first: dense scores on MiniLM's scale, each passage marked with
    whether it shares the question's language, and the keyword side's vote imputed where the
    question's words could not have found it.

    A passage in another language can have no keyword hit, so fusion (dense rank + keyword
    rank) would rank it below any same-language passage that shares a few common words. Such a
    passage is given the keyword rank its dense rank has (its fused share times
    1 + keyword_weight): the keyword side neither rewards nor vetoes it.
    """
    if not multilingual(embedder):
        return passages
    asked = question_language(question)
    for passage in passages:
        passage.dense = relevance(embedder, passage.dense)
        written = passage_language(passage) if asked else ""
        passage.same_language = not written or written == asked
        if not passage.same_language and passage.keyword == 0:
            passage.score *= 1.0 + keyword_weight
    return sorted(passages, key=lambda p: -p.score)


def stand_in(passage: Passage) -> float:
    """What a lexical share is taken to be between languages: the (scaled) dense score."""
    return min(1.0, max(0.0, passage.dense))
