"""The one answer pipeline (LangChain LCEL) that Telegram, `newsdesk ask` and `newsdesk eval`
all call: rewrite -> retrieve -> rerank -> compose -> verify, with `invoke` and `astream`.

Callers hand in a `Request` (the question, the chat's earlier queries, filters and an explicit
as-of date) and get an `Answer`; query vectors and scores stay inside.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
from langchain_core.runnables import Runnable, RunnableLambda

from bot.abstain import RECENT
from bot.answer import ABSTAIN_TEXT, Composer
from bot.crosslingual import mark
from bot.i18n import ngettext
from bot.models import Answer, Filters, Passage
from bot.rerank import Reranker, collapse_duplicates
from bot.retrieve import Retriever, diversify


@dataclass
class Request:
    question: str
    as_of: dt.date
    filters: Filters = field(default_factory=Filters)
    history: list[str] = field(default_factory=list)  # the chat's earlier standalone queries


@dataclass
class Evidence:
    """What one stage hands the next (internal: never leaves the pipeline)."""

    request: Request
    query: str = ""
    vector: np.ndarray | None = None
    passages: list[Passage] = field(default_factory=list)
    answer: Answer | None = None


@dataclass
class PipelineParams:
    top_k: int = 6  # passages composed from
    per_article: int = 2
    pool: int = 24  # candidates handed to the reranker
    stale_days: int = 14  # a "this week" question with only older evidence is refused
    note_days: int = 4  # ... and answered with a note on the evidence's age past this


class AnswerPipeline:
    def __init__(
        self,
        retriever: Retriever,
        reranker: Reranker,
        composer: Composer,
        params: PipelineParams | None = None,
    ) -> None:
        self.retriever = retriever
        self.reranker = reranker
        self.composer = composer
        self.params = params or PipelineParams()
        self.evidence: Runnable[Request, Evidence] = (
            RunnableLambda(self.rewrite)
            | RunnableLambda(self.retrieve)
            | RunnableLambda(self.rerank)
        )
        self.chain: Runnable[Request, Answer] = (
            self.evidence | RunnableLambda(self.compose) | RunnableLambda(self.verify)
        )

    def invoke(self, request: Request) -> Answer:
        answer: Answer = self.chain.invoke(request)
        return answer

    async def astream(self, request: Request) -> AsyncIterator[str | Answer]:
        """The growing text while a model writes it (if one does), then the verified Answer."""
        evidence = await asyncio.to_thread(self.evidence.invoke, request)
        refusal = self.refusal(evidence)
        if refusal is not None:
            yield refusal
            return
        assert evidence.vector is not None
        stream = self.composer.astream(
            request.question, evidence.vector, evidence.passages, request.as_of
        )
        async for item in stream:
            if isinstance(item, Answer):
                yield self.verify(dataclasses.replace(evidence, answer=item))
                return
            yield item

    # -- stages ------------------------------------------------------------------------------

    def rewrite(self, request: Request) -> Evidence:
        query = self.composer.rewrite(request.history, request.question) if request.history else ""
        return Evidence(request, query or request.question)

    def retrieve(self, evidence: Evidence) -> Evidence:
        filters = dataclasses.replace(evidence.request.filters, as_of=evidence.request.as_of)
        vector, pool = self.retriever.retrieve(evidence.query, filters, self.params.pool)
        weight = self.retriever.params.keyword_weight
        pool = mark(evidence.request.question, pool, self.retriever.embedder, weight)
        return dataclasses.replace(evidence, vector=vector, passages=pool)

    def rerank(self, evidence: Evidence) -> Evidence:
        ranked = self.reranker.rerank(evidence.query, evidence.passages, evidence.request.as_of)
        kept = diversify(collapse_duplicates(ranked), self.params.top_k, self.params.per_article)
        return dataclasses.replace(evidence, passages=kept)

    def compose(self, evidence: Evidence) -> Evidence:
        answer = self.refusal(evidence)
        if answer is None:
            assert evidence.vector is not None
            q = evidence.request.question
            as_of = evidence.request.as_of
            answer = self.composer.compose(q, evidence.vector, evidence.passages, as_of)
        return dataclasses.replace(evidence, answer=answer)

    def verify(self, evidence: Evidence) -> Answer:
        """Every quote is the article's text at its offsets; the evidence's age is said."""
        answer = evidence.answer
        assert answer is not None
        answer.query = evidence.query
        if answer.abstained:
            return answer
        kept = [c for c in answer.citations if _verbatim(c.quote, c.start, evidence.passages)]
        if len(kept) < len(answer.citations):  # a composer bug: never show an unchecked quote
            return Answer(
                answer.question, ABSTAIN_TEXT, [], True, evidence.passages, query=evidence.query
            )
        note = self.age_note(evidence)
        if note:
            answer.note = f"{answer.note} {note}".strip()
        return answer

    # -- the as-of gap -----------------------------------------------------------------------

    def gap_days(self, evidence: Evidence) -> int | None:
        """Days between the as-of date and the newest evidence, for "this week" questions."""
        request = evidence.request
        if not RECENT.search(request.question):
            return None
        dated = [p.published for p in evidence.passages[:3] if p.published]
        dated = [d for d in dated if d <= request.as_of]
        if not dated:
            return None
        return (request.as_of - max(dated)).days

    def refusal(self, evidence: Evidence) -> Answer | None:
        """An abstention before composing: nothing found, or only stale news for a news
        question (the archive does not cover the week asked about)."""
        gap = self.gap_days(evidence)
        if not evidence.passages or (gap is not None and gap > self.params.stale_days):
            q = evidence.request.question
            return Answer(q, ABSTAIN_TEXT, [], True, evidence.passages, query=evidence.query)
        return None

    def age_note(self, evidence: Evidence) -> str:
        gap = self.gap_days(evidence)
        if gap is None or gap <= self.params.note_days:
            return ""
        return ngettext(
            "The newest source is {n} day older than {date}.",
            "The newest source is {n} days older than {date}.",
            gap,
        ).format(n=gap, date=evidence.request.as_of.isoformat())


def _verbatim(quote: str, start: int, passages: list[Passage]) -> bool:
    """The quote is the text of one of the passages at its article offsets."""
    for p in passages:
        at = start - p.chunk.start
        if at >= 0 and p.chunk.text[at : at + len(quote)] == quote:
            return True
    return False
