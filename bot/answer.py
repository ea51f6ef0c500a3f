"""Answer composers: the `Composer` protocol and the extractive composer (the default).

The extractive composer needs no language model: it picks the sentences of the retrieved
passages that best answer the question, the lead one of the kind the question asks for (a
name, a date, a place, a number, a reason), and cites each one by its exact offsets.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bot.conversation import TURNS_KEPT, Conversation
from bot.crosslingual import multilingual
from bot.embed import Embedder, relevance
from bot.i18n import N_
from bot.models import Answer, Citation, Passage
from bot.query import STOPWORDS
from bot.sentence_store import ChunkSentences, SentenceSource, cuts, encoder_key

log = logging.getLogger(__name__)
# Writes the sentence vectors an answer had to encode (filled as you go), off the answer's path.
_KEEPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sentence-vectors")

ABSTAIN_TEXT = N_("The corpus does not answer this question.")  # translated where shown


class Composer(Protocol):
    """Writes the cited answer from the reranked passages; `vector` is the query's embedding."""

    def compose(self, question: str, vector: np.ndarray, passages: list[Passage]) -> Answer: ...

    def astream(
        self, question: str, vector: np.ndarray, passages: list[Passage]
    ) -> AsyncIterator[str | Answer]:
        """Growing text while it is written (if ever), then the final `Answer`."""
        ...

    def rewrite(self, history: list[str], question: str) -> str:
        """A follow-up as a standalone retrieval query (`history`: earlier queries)."""
        ...


def rule_based_rewrite(history: list[str], question: str) -> str:
    return Conversation(deque(history[-TURNS_KEPT:], maxlen=TURNS_KEPT)).standalone(question)


# What a question asks for, and what a sentence that answers it contains.
MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozen|dozens|hundreds?|"
    "thousands?|millions?|billions?|trillions?|half|percent"
)
ANSWER_SHAPES = {
    "when": re.compile(
        rf"\b(?:{MONTHS}|monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
        r"yesterday|today|tomorrow|(?:19|20)\d\d|last (?:week|month|year))\b",
        re.IGNORECASE,
    ),
    "number": re.compile(rf"\d|\b(?:{NUMBER_WORDS})\b", re.IGNORECASE),
    "where": re.compile(r"\b(?:in|at|from|near|to)\s+(?:the\s+)?[A-Z][a-z]+"),
    "why": re.compile(
        r"\b(?:because|due to|after|as a result|so that|in order to|reason|amid|caused|"
        r"following|since)\b",
        re.IGNORECASE,
    ),
    "outcome": re.compile(
        r"\b(?:will|would|could|plans? to|expected to|set to|agreed|announced|decided)\b",
        re.IGNORECASE,
    ),
}


def question_type(question: str) -> str:
    """entity (who/which/what), when, where, number (how many/much), why, outcome, or other."""
    q = question.lower().strip()
    if re.search(r"\bhow (?:many|much|long|old|far|often)\b|\bwhat (?:percent|share|number)", q):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (?:year|day|date|month|time)\b", q):
        return "when"
    if re.search(r"\bwhere\b|\bwhich (?:country|city|state|nation|region|place)\b", q):
        return "where"
    if re.search(r"\bwhy\b", q):
        return "why"
    if re.search(r"\bwhat (?:will|would|could|happens?|happened)\b", q):
        return "outcome"
    if re.search(r"\b(?:who|whom|whose|which|what)\b", q):
        return "entity"
    return "other"


# Question words of the other supported languages, in question_type's order of precedence.
# Used with the multilingual backend only (English questions never reach them): the answer's
# shape (a number, a date, a name) is looked for in the article, whatever its language.
OTHER_QUESTION_WORDS = [
    ("number", r"wie viele?|сколько|скільки|kaç|ne kadar"),
    ("when", r"wann|когда|коли|ne zaman|hangi (?:tarih|yıl|gün|ay)"),
    ("where", r"wo|wohin|woher|где|куда|откуда|де|куди|звідки|nerede|nereye|nereden"),
    ("why", r"warum|weshalb|wieso|почему|зачем|чому|навіщо|neden|niçin|niye"),
    ("entity", r"wer|wen|wem|welche[rsmn]?|кто|кого|какой|какая|какие|хто|який|яка|які|kim|hangi"),
]


def other_language_type(question: str) -> str:
    """question_type for a question in German, Russian, Ukrainian or Turkish."""
    q = question.lower()
    for kind, words in OTHER_QUESTION_WORDS:
        if re.search(rf"(?<!\w)(?:{words})(?!\w)", q):
            return kind
    return "other"


def answers_type(kind: str, question: str, sentence: str) -> bool:
    """Whether the sentence holds something of the kind asked for, not already in the question."""
    if kind == "entity":
        asked = {w.lower() for w in re.findall(r"\w+", question)}
        names = re.findall(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w'-]+", sentence)
        return any(n.lower() not in asked and n.lower() not in STOPWORDS for n in names)
    shape = ANSWER_SHAPES.get(kind)
    if shape is None:
        return False
    asked = {m.group().lower() for m in shape.finditer(question)}
    return any(m.group().lower() not in asked for m in shape.finditer(sentence))


@dataclass
class Sentence:
    passage: Passage
    start: int  # offsets into the article text
    end: int
    text: str
    score: float = 0.0


def split_sentences(passage: Passage) -> list[Sentence]:
    """Sentences of a passage, split by its article's language, with article offsets."""
    return _at(passage, cuts(passage.chunk.text, passage.language))


def _at(passage: Passage, spans: list[tuple[int, int]]) -> list[Sentence]:
    """Sentences of a passage from (start, end) offsets into its chunk's text."""
    chunk = passage.chunk
    return [Sentence(passage, chunk.start + a, chunk.start + b, chunk.text[a:b]) for a, b in spans]


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
    type_weight = 0.15  # the sentence holds what the question asks for (a name, a date, ...)
    keep_ratio = 0.4  # cite sentences scoring at least this share of the best one
    # Answer when the best passage's cosine reaches min_relevance, or min_relevance - near
    # when a passage (with its title) names at least `min_coverage` of the question's terms.
    near = 0.2
    min_coverage = 0.8

    def __init__(
        self,
        embedder: Embedder,
        max_sentences: int = 3,
        min_relevance: float = 0.3,
        stored: SentenceSource | None = None,
    ):
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.min_relevance = min_relevance
        self.stored = stored  # sentence vectors made at ingest; None: encode every sentence
        self.encoder = encoder_key(embedder)
        self.last_kept: Future[None] | None = None  # the latest write of encoded vectors

    def compose(self, question: str, vector: np.ndarray, passages: list[Passage]) -> Answer:
        terms = query_terms(question)
        if not passages or not self.relevant(terms, passages):
            return Answer(question, ABSTAIN_TEXT, [], abstained=True, passages=passages)
        sentences, vectors = self.sentences(passages)
        if not sentences:
            return Answer(question, ABSTAIN_TEXT, [], abstained=True, passages=passages)
        kind = question_type(question)
        if kind == "other" and multilingual(self.embedder):
            kind = other_language_type(question)
        # Passages arrive reranked, best first: their rank, not their retrieval score, counts.
        rank = {id(p): 1.0 / (1.0 + i) for i, p in enumerate(passages)}
        for sentence, sv in zip(sentences, vectors, strict=True):
            dense = relevance(self.embedder, float(sv @ vector))
            # Between languages the question's words are not looked for: the cosine stands in.
            if sentence.passage.same_language:
                lexical = coverage(terms, sentence.text)
            else:
                lexical = min(1.0, max(0.0, dense))
            sentence.score = (
                self.dense_weight * dense
                + self.terms_weight * lexical
                + self.rank_weight * rank[id(sentence.passage)]
                + self.type_weight * answers_type(kind, question, sentence.text)
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

    async def astream(
        self, question: str, vector: np.ndarray, passages: list[Passage]
    ) -> AsyncIterator[str | Answer]:
        """No text to stream: the answer arrives whole (composed in a thread)."""
        yield await asyncio.to_thread(self.compose, question, vector, passages)

    def rewrite(self, history: list[str], question: str) -> str:
        return rule_based_rewrite(history, question)

    def sentences(self, passages: list[Passage]) -> tuple[list[Sentence], np.ndarray]:
        """Every sentence of the passages, in order, with its vector: the stored one when the
        chunk has it (same encoder, cut by the same language), else encoded now."""
        found = {}
        if self.stored is not None:
            ids = [p.chunk.id for p in passages]
            found = self.stored.sentence_vectors(ids, self.encoder, self.embedder.dimension)
        parts: list[tuple[list[Sentence], np.ndarray | None]] = []
        for p in passages:
            row = found.get(p.chunk.id)
            if (
                row
                and row.language == p.language
                and all(b <= len(p.chunk.text) for _, b in row.spans)
            ):
                parts.append((_at(p, row.spans), row.vectors))
            else:
                parts.append((split_sentences(p), None))
        missing = [s.text for part, vectors in parts if vectors is None for s in part]
        fresh = iter(self.embedder.encode(missing) if missing else [])
        sentences: list[Sentence] = []
        rows: list[np.ndarray] = []
        computed: dict[str, ChunkSentences] = {}
        for p, (part, vectors) in zip(passages, parts, strict=True):
            sentences += part
            if vectors is None:
                vectors = np.array([next(fresh) for _ in part], dtype=np.float32)
                vectors = vectors.reshape(len(part), self.embedder.dimension)
                spans = [(s.start - p.chunk.start, s.end - p.chunk.start) for s in part]
                computed[p.chunk.id] = ChunkSentences(p.chunk.id, p.language, spans, vectors)
            rows += list(vectors)
        if computed and self.stored is not None:
            self.last_kept = _KEEPER.submit(self._keep, list(computed.values()))
        if not rows:
            return [], np.zeros((0, self.embedder.dimension), dtype=np.float32)
        return sentences, np.vstack(rows)

    def _keep(self, rows: list[ChunkSentences]) -> None:
        """Store what this answer encoded, so the next one reads it (an index from before
        sentence vectors, or ingested without them). Best effort: a busy index skips it."""
        assert self.stored is not None
        try:
            self.stored.add_sentences(self.encoder, rows)
        except Exception as exc:  # a locked or read-only index: the next answer encodes again
            log.info("sentence vectors not stored (%s)", exc)

    def relevant(self, terms: dict[str, float], passages: list[Passage]) -> bool:
        """Strong enough evidence: a close passage, or a fairly close one naming the terms."""
        best = max(p.dense for p in passages)
        texts = [p.title + " " + p.chunk.text for p in passages]
        # Numbers and years in a question are hard constraints: when no passage has them
        # ("the 2030 World Cup"), only much closer evidence counts.
        numbers = [t for t in terms if any(ch.isdigit() for ch in t)]
        if numbers and not any(n in text for n in numbers for text in texts):
            return best >= self.min_relevance + 0.15
        # Only passages in the question's language can name its terms.
        same = [t for t, p in zip(texts, passages, strict=True) if p.same_language]
        covered = max((coverage(terms, text) for text in same), default=0.0)
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
