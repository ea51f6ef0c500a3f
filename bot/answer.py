"""Answer composers: the `Composer` protocol and the extractive composer (the default).

The extractive composer needs no language model: it picks the sentences of the retrieved
passages that best answer the question, the lead one of the kind the question asks for (a
name, a date, a place, a number, a reason), and cites each one by its exact offsets.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import numpy as np

from bot.abstain import ABSTAIN_WEIGHTS, abstain_features, answer_score
from bot.conversation import TURNS_KEPT, Conversation
from bot.crosslingual import multilingual
from bot.embed import Embedder, relevance
from bot.i18n import N_
from bot.lead import (
    ANAPHOR,
    BOILERPLATE,
    LEAD_WEIGHTS,
    QUOTE_WEIGHTS,
    is_story_link,
    lead_features,
    lead_scores,
    sentences_at,
    share,
    stems,
)
from bot.lead import Sentence as Sentence
from bot.lead import answers_type as answers_type
from bot.lead import coverage as coverage
from bot.lead import other_language_type as other_language_type
from bot.lead import query_terms as query_terms
from bot.lead import question_type as question_type
from bot.lead import split_sentences as split_sentences
from bot.models import Answer, Citation, Passage
from bot.sentence_store import ChunkSentences, SentenceSource, encoder_key

log = logging.getLogger(__name__)
# Writes the sentence vectors an answer had to encode (filled as you go), off the answer's path.
_KEEPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sentence-vectors")

ABSTAIN_TEXT = N_("The corpus does not answer this question.")  # translated where shown


class Composer(Protocol):
    """Writes the cited answer from the reranked passages; `vector` is the query's embedding."""

    def compose(
        self,
        question: str,
        vector: np.ndarray,
        passages: list[Passage],
        as_of: dt.date | None = None,
    ) -> Answer:
        """`as_of`: the date the question is asked as of (the evidence's age counts from it)."""
        ...

    def astream(
        self,
        question: str,
        vector: np.ndarray,
        passages: list[Passage],
        as_of: dt.date | None = None,
    ) -> AsyncIterator[str | Answer]:
        """Growing text while it is written (if ever), then the final `Answer`."""
        ...

    def rewrite(self, history: list[str], question: str) -> str:
        """A follow-up as a standalone retrieval query (`history`: earlier queries)."""
        ...


def rule_based_rewrite(history: list[str], question: str) -> str:
    return Conversation(deque(history[-TURNS_KEPT:], maxlen=TURNS_KEPT)).standalone(question)


class ExtractiveComposer:
    """Chooses and cites sentences; abstains when the evidence is weak."""

    # Sentences are scored by bot/lead.py: `lead` (which of the best article's sentences
    # answers) and `score` (which sentences are worth quoting), two fitted logistic scores.
    keep_ratio = 0.4  # quote sentences scoring at least this share of the best one
    quote_budget = 1000  # characters quoted at most (the lead is always quoted)
    # A sentence whose words are mostly quoted already (another outlet's retelling: "a record
    # turnout of around 2 million, 58%") tells the reader nothing new, though the sentence
    # encoder puts such pairs far apart (cosine ~0.7). Chosen on the early weeks (quality-tried.md).
    repeated = 0.7
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
        abstain: str = "cosine",
    ):
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.min_relevance = min_relevance
        self.lead_weights = dict(LEAD_WEIGHTS)
        self.quote_weights = dict(QUOTE_WEIGHTS)
        # "fitted": bot/abstain.py's score (the bot's answers); "cosine": the best passage's
        # cosine and term coverage, the default here for watches and timelines, which match
        # an article to a topic rather than answer a question
        self.abstain_weights = dict(ABSTAIN_WEIGHTS) if abstain == "fitted" else None
        self.stored = stored  # sentence vectors made at ingest; None: encode every sentence
        self.encoder = encoder_key(embedder)
        self.last_kept: Future[None] | None = None  # the latest write of encoded vectors

    def compose(
        self,
        question: str,
        vector: np.ndarray,
        passages: list[Passage],
        as_of: dt.date | None = None,
        judged: bool = False,
    ) -> Answer:
        """`judged`: the caller already found the evidence strong enough (answers())."""
        found = self.evidence(question, vector, passages, as_of, judged)
        if found is None:
            return Answer(question, ABSTAIN_TEXT, [], abstained=True, passages=passages)
        sentences, vectors, cosines = found
        self.score(question, passages, sentences, cosines)
        chosen = self.arrange(self.select(sentences, vectors, question), passages)
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
        self,
        question: str,
        vector: np.ndarray,
        passages: list[Passage],
        as_of: dt.date | None = None,
    ) -> AsyncIterator[str | Answer]:
        """No text to stream: the answer arrives whole (composed in a thread)."""
        yield await asyncio.to_thread(self.compose, question, vector, passages, as_of)

    def rewrite(self, history: list[str], question: str) -> str:
        return rule_based_rewrite(history, question)

    def score(
        self,
        question: str,
        passages: list[Passage],
        sentences: list[Sentence],
        dense: list[float],
    ) -> None:
        """Sets each sentence's `lead` and `score` (bot/lead.py); `dense`: their cosines."""
        features = lead_features(question, passages, sentences, dense, self.kind(question))
        leads = lead_scores(features, self.lead_weights)
        quotes = lead_scores(features, self.quote_weights)
        for sentence, lead, quote in zip(sentences, leads, quotes, strict=True):
            sentence.lead, sentence.score = float(lead), float(quote)

    def kind(self, question: str) -> str:
        kind = question_type(question)
        if kind == "other" and multilingual(self.embedder):
            kind = other_language_type(question)
        return kind

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
                parts.append((sentences_at(p, row.spans), row.vectors))
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

    def answers(
        self,
        question: str,
        vector: np.ndarray,
        passages: list[Passage],
        as_of: dt.date | None = None,
    ) -> bool:
        """Whether compose() would answer rather than abstain (checked before a model writes)."""
        return self.evidence(question, vector, passages, as_of) is not None

    def evidence(
        self,
        question: str,
        vector: np.ndarray,
        passages: list[Passage],
        as_of: dt.date | None = None,
        judged: bool = False,
    ) -> tuple[list[Sentence], np.ndarray, list[float]] | None:
        """The passages' sentences, vectors and cosines; None when the evidence is too weak.
        The cosine rule needs no sentences, so it is checked before any are read (a watch
        tries every new article this way)."""
        if not passages:
            return None
        cosine_rule = self.abstain_weights is None
        if not judged and cosine_rule and not self.relevant(question, passages, [], as_of):
            return None
        sentences, vectors, cosines = self.read(vector, passages)
        if not sentences:
            return None
        if not judged and not cosine_rule and not self.relevant(question, passages, cosines, as_of):
            return None
        return sentences, vectors, cosines

    def read(
        self, vector: np.ndarray, passages: list[Passage]
    ) -> tuple[list[Sentence], np.ndarray, list[float]]:
        """The passages' sentences, their vectors and their cosines to the question."""
        sentences, vectors = self.sentences(passages)
        return sentences, vectors, [relevance(self.embedder, float(v @ vector)) for v in vectors]

    def relevant(
        self,
        question: str,
        passages: list[Passage],
        cosines: list[float],
        as_of: dt.date | None = None,
    ) -> bool:
        """Strong enough evidence to answer from (bot/abstain.py)."""
        best = max(p.dense for p in passages)
        texts = [p.title + " " + p.chunk.text for p in passages]
        # Numbers and years in a question are hard constraints: when no passage has them
        # ("the 2030 World Cup"), only much closer evidence counts.
        terms = query_terms(question)
        numbers = [t for t in terms if any(ch.isdigit() for ch in t)]
        if numbers and not any(n in text for n in numbers for text in texts):
            return best >= self.min_relevance + 0.15
        if self.abstain_weights is not None:
            row = abstain_features(question, passages, cosines, as_of, self.min_relevance)
            return answer_score(row, self.abstain_weights) >= 0.0
        # The cosine rule: a close passage, or a fairly close one naming the question's terms
        # (only passages in the question's language can name them).
        same = [t for t, p in zip(texts, passages, strict=True) if p.same_language]
        covered = max((coverage(terms, text) for text in same), default=0.0)
        return best >= self.min_relevance or (
            best >= self.min_relevance - self.near and covered >= self.min_coverage
        )

    @staticmethod
    def arrange(chosen: list[Sentence], passages: list[Passage]) -> list[Sentence]:
        """The order a reader wants: the lead (the direct answer), then the rest of its article
        as it reads, then the other articles by rank."""
        if not chosen:
            return chosen
        rank: dict[str, int] = {}
        for i, p in enumerate(passages):
            rank.setdefault(p.article_id, i)
        lead, *rest = chosen
        rest.sort(key=lambda s: (rank[s.passage.article_id], s.start))
        return [lead, *rest]

    def select(
        self, sentences: list[Sentence], vectors: np.ndarray, question: str = ""
    ) -> list[Sentence]:
        """The lead first: the likeliest answer of the best-ranked article (so the first
        source is the best one); then the best-scoring others, within max_sentences and
        quote_budget characters; no repeats (overlapping chunks), no near-duplicates and no
        retellings of what is already quoted."""
        top = sentences[0].passage.article_id  # sentences come in the passages' order
        links = {i for i, s in enumerate(sentences) if is_story_link(s.text)}
        firsts = [i for i, s in enumerate(sentences) if s.passage.article_id == top]
        lead = max([i for i in firsts if i not in links] or firsts, key=lambda i: sentences[i].lead)
        run_on = self.run_on(question, sentences, lead)
        back = self.run_back(sentences, lead)
        others = sorted(
            (i for i in range(len(sentences)) if i not in (lead, run_on, back) and i not in links),
            key=lambda i: -sentences[i].score,
        )
        best = max(s.score for s in sentences)
        chosen: list[int] = []
        spans: set[tuple[str, int]] = set()
        quoted: set[str] = set()
        chars = slots = 0
        for i in [lead, *others]:
            s = sentences[i]
            if slots == self.max_sentences or (chosen and s.score < self.keep_ratio * best):
                break
            if (s.passage.article_id, s.start) in spans:
                continue
            if any(float(vectors[i] @ vectors[j]) > 0.9 for j in chosen):
                continue
            if chosen and chars + len(s.text) > self.quote_budget:
                continue
            slots += 1
            words = stems(s.text)
            if chosen and len(words) >= 4 and share(words, quoted) >= self.repeated:
                continue  # a retelling: its slot stays used, so the answer is shorter, not padded
            chosen.append(i)
            spans.add((s.passage.article_id, s.start))
            quoted |= words
            chars += len(s.text) + 1
        picked = [sentences[i] for i in chosen]
        if run_on is not None or back is not None:
            first = sentences[lead if back is None else back]
            picked[0] = self.joined(first, sentences[lead if run_on is None else run_on])
            while sum(len(p.text) + 1 for p in picked) > self.quote_budget + 1 and len(picked) > 1:
                picked.pop()  # the joined lead counts against the budget like any quote
        return picked

    def run_on(self, question: str, sentences: list[Sentence], lead: int) -> int | None:
        """The sentence right after a lead that restates the question without what it asks
        for (a name, a date, a place, a number) when that sentence has it: "The city's young
        chefs were honoured last night." runs on into "The Golden Ladle went to ..."."""
        after = lead + 1
        if not question or after >= len(sentences):
            return None
        kind = self.kind(question)
        first, then = sentences[lead], sentences[after]
        if then.passage is not first.passage or answers_type(kind, question, first.text):
            return None
        if is_story_link(then.text):
            return None
        return after if answers_type(kind, question, then.text) else None

    @staticmethod
    def run_back(sentences: list[Sentence], lead: int) -> int | None:
        """The sentence right before a lead that opens by pointing back ("He won ...", "The
        show, which ...", "That's because ..."): a quote must say who or what it is about."""
        before = lead - 1
        if before < 0 or sentences[before].passage is not sentences[lead].passage:
            return None
        if BOILERPLATE.search(sentences[before].text):  # a byline names no one it points to
            return None
        if is_story_link(sentences[before].text):  # another story's headline
            return None
        return before if ANAPHOR.match(sentences[lead].text) else None

    @staticmethod
    def joined(first: Sentence, then: Sentence) -> Sentence:
        """One quote from the start of `first` to the end of `then` (the article's own text)."""
        chunk = first.passage.chunk
        text = chunk.text[first.start - chunk.start : then.end - chunk.start]
        return Sentence(first.passage, first.start, then.end, text, first.score, first.lead)
