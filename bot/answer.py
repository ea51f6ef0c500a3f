"""The answer chain (LangChain LCEL): retrieve -> compose -> Answer with verbatim citations.

The default composer is extractive and needs no language model: it picks the sentences of the
retrieved passages that best answer the question and cites each one by its exact offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict

import numpy as np
from langchain_core.runnables import Runnable, RunnableLambda

from bot.embed import Embedder
from bot.models import Answer, Citation, Filters, Passage
from bot.query import STOPWORDS
from bot.retrieve import Retriever

ABSTAIN_TEXT = "The corpus does not answer this question."
MIN_SENTENCE_CHARS = 25


class Query(TypedDict, total=False):
    question: str  # as the user asked it
    query: str  # standalone form used for retrieval (defaults to the question)
    filters: Filters


class Composer(Protocol):
    def compose(self, question: str, vector: np.ndarray, passages: list[Passage]) -> Answer: ...


@dataclass
class Sentence:
    passage: Passage
    start: int  # offsets into the article text
    end: int
    text: str
    score: float = 0.0


def split_sentences(passage: Passage) -> list[Sentence]:
    """Sentences of a passage with article offsets (pysbd keeps exact character spans)."""
    import pysbd

    chunk = passage.chunk
    segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
    found = []
    for span in segmenter.segment(chunk.text):
        raw = chunk.text[span.start : span.end]
        text = raw.strip()
        if len(text) < MIN_SENTENCE_CHARS:
            continue
        start = chunk.start + span.start + (len(raw) - len(raw.lstrip()))
        found.append(Sentence(passage, start, start + len(text), text))
    return found


def query_terms(question: str) -> dict[str, float]:
    """Content words of the question, weighted: names and numbers count double."""
    terms: dict[str, float] = {}
    for match in re.finditer(r"\w+", question):
        word = match.group()
        if word.lower() in STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        heavy = (word[0].isupper() and match.start() > 0) or any(ch.isdigit() for ch in word)
        terms[word.lower()] = max(terms.get(word.lower(), 0.0), 2.0 if heavy else 1.0)
    return terms


def coverage(terms: dict[str, float], text: str) -> float:
    """Share of the question's term weight present in the text (prefix match ~ stemming)."""
    if not terms:
        return 0.0
    words = {w[:6] for w in re.findall(r"\w+", text.lower())}
    hit = sum(weight for term, weight in terms.items() if term[:6] in words)
    return hit / sum(terms.values())


class ExtractiveComposer:
    """Chooses and cites sentences; abstains when the evidence is weak."""

    # A sentence's score: cosine to the question, share of the question's terms it names, and
    # its passage's retrieval score relative to the best passage.
    dense_weight = 0.6
    terms_weight = 0.4
    rank_weight = 0.6
    keep_ratio = 0.4  # cite sentences scoring at least this share of the best one
    # Answer when the best passage's cosine reaches min_relevance, or min_relevance - near
    # when a passage (with its title) names at least `min_coverage` of the question's terms.
    near = 0.2
    min_coverage = 0.8

    def __init__(self, embedder: Embedder, max_sentences: int = 3, min_relevance: float = 0.3):
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.min_relevance = min_relevance

    def compose(self, question: str, vector: np.ndarray, passages: list[Passage]) -> Answer:
        terms = query_terms(question)
        if not passages or not self.relevant(terms, passages):
            return Answer(question, ABSTAIN_TEXT, [], abstained=True, passages=passages)
        sentences = [s for p in passages for s in split_sentences(p)]
        if not sentences:
            return Answer(question, ABSTAIN_TEXT, [], abstained=True, passages=passages)
        vectors = self.embedder.encode([s.text for s in sentences])
        top = max(p.score for p in passages) or 1.0
        for sentence, sv in zip(sentences, vectors, strict=True):
            sentence.score = (
                self.dense_weight * float(sv @ vector)
                + self.terms_weight * coverage(terms, sentence.text)
                + self.rank_weight * sentence.passage.score / top
            )
        chosen = self.arrange(self.select(sentences, vectors), passages)
        citations = [
            Citation(
                n=i,
                article_id=s.passage.article_id,
                title=s.passage.title,
                source=s.passage.source,
                published=s.passage.published,
                url=s.passage.url,
                quote=s.text,
                start=s.start,
                end=s.end,
            )
            for i, s in enumerate(chosen, start=1)
        ]
        text = " ".join(f"{c.quote} [{c.n}]" for c in citations)
        return Answer(question, text, citations, abstained=False, passages=passages)

    def relevant(self, terms: dict[str, float], passages: list[Passage]) -> bool:
        """Strong enough evidence: a close passage, or a fairly close one naming the terms."""
        best = max(p.dense for p in passages)
        texts = [p.title + " " + p.chunk.text for p in passages]
        # Numbers and years in a question are hard constraints: when no passage has them
        # ("the 2030 World Cup"), only much closer evidence counts.
        numbers = [t for t in terms if any(ch.isdigit() for ch in t)]
        if numbers and not any(n in text for n in numbers for text in texts):
            return best >= self.min_relevance + 0.15
        covered = max(coverage(terms, text) for text in texts)
        return best >= self.min_relevance or (
            best >= self.min_relevance - self.near and covered >= self.min_coverage
        )

    @staticmethod
    def arrange(chosen: list[Sentence], passages: list[Passage]) -> list[Sentence]:
        """The order a reader wants: the best source's best sentence leads (the direct answer),
        then the rest of that article as it reads, then the other articles by retrieval rank."""
        if not chosen:
            return chosen
        rank: dict[str, int] = {}
        for i, p in enumerate(passages):
            rank.setdefault(p.article_id, i)
        first_article = min(rank[s.passage.article_id] for s in chosen)
        lead = max(
            (s for s in chosen if rank[s.passage.article_id] == first_article),
            key=lambda s: s.score,
        )
        rest = sorted(
            (s for s in chosen if s is not lead),
            key=lambda s: (rank[s.passage.article_id], s.start),
        )
        return [lead, *rest]

    def select(self, sentences: list[Sentence], vectors: np.ndarray) -> list[Sentence]:
        """Best sentences first; no repeats (overlapping chunks) and no near-duplicates."""
        order = sorted(range(len(sentences)), key=lambda i: -sentences[i].score)
        best = sentences[order[0]].score
        chosen: list[int] = []
        spans: set[tuple[str, int]] = set()
        for i in order:
            s = sentences[i]
            if len(chosen) == self.max_sentences or s.score < self.keep_ratio * best:
                break
            if (s.passage.article_id, s.start) in spans:
                continue
            if any(float(vectors[i] @ vectors[j]) > 0.9 for j in chosen):
                continue
            chosen.append(i)
            spans.add((s.passage.article_id, s.start))
        return [sentences[i] for i in chosen]


def build_chain(retriever: Retriever, composer: Composer) -> Runnable[Query, Answer]:
    """question (+ standalone query, filters) -> retrieved passages -> composed Answer."""

    def retrieve(q: Query) -> dict[str, Any]:
        vector, passages = retriever.retrieve(q.get("query") or q["question"], q.get("filters"))
        return {"question": q["question"], "vector": vector, "passages": passages}

    def compose(x: dict[str, Any]) -> Answer:
        return composer.compose(x["question"], x["vector"], x["passages"])

    return RunnableLambda(retrieve) | RunnableLambda(compose)
