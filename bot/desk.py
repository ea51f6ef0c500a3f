"""The composition root shared by the CLI and the Telegram bot: builds the parts once."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from concurrent.futures import Future
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from bot.answer import Composer, ExtractiveComposer
from bot.chunk import Chunker
from bot.config import Settings
from bot.corpus import Corpus
from bot.embed import Embedder, load_embedder
from bot.errors import IndexUnavailable, NewsdeskError
from bot.manifest import BuiltWith, check
from bot.models import Answer, Filters, Passage
from bot.pipeline import AnswerPipeline, PipelineParams, Request
from bot.rerank import Reranker, make_reranker
from bot.retrieve import RetrievalParams, Retriever
from bot.store import Store

if TYPE_CHECKING:  # imported on first use: a question needs neither ingest nor the lock
    from bot.ingest import Ingestor
    from bot.lock import IndexLock

log = logging.getLogger(__name__)


class Desk:
    """Everything a command needs; heavy parts (model, index) load on first use."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.corpus = Corpus(settings.corpus_dir)
        if embedder is not None:  # share one loaded model (tests, benchmarks)
            self.__dict__["embedder"] = embedder
        # One writer at a time (ingest, remove, reindex); questions keep reading meanwhile.
        self.write_lock = threading.Lock()
        self._loading: Future[AnswerPipeline] | None = None
        self._loading_lock = threading.Lock()

    def loading(self) -> Future[AnswerPipeline]:
        """The answer pipeline (model, index and all), loaded in a thread of its own.

        The bot starts it at launch and talks to Telegram meanwhile; a handler awaits it
        (`asyncio.wrap_future`) without blocking the event loop. Every caller shares one load;
        a load that failed is tried again by the next caller (the operator may have fixed the
        index since). A failure is logged for the operator, and the future holds a
        `NewsdeskError` whose message can be shown to a user.
        """
        with self._loading_lock:
            future = self._loading
            if future is None or (future.done() and future.exception() is not None):
                future = self._loading = Future()
                future.set_running_or_notify_cancel()  # a cancelled waiter cannot cancel it
                name = "newsdesk-load"
                threading.Thread(target=self._load, args=(future,), name=name, daemon=True).start()
            return future

    def _load(self, future: Future[AnswerPipeline]) -> None:
        try:
            future.set_result(self.pipeline)
        except NewsdeskError as exc:
            log.error("cannot load the model or the index: %s", exc)
            future.set_exception(exc)
        except BaseException as exc:  # a bug or a broken install: the trace is for the operator
            log.exception("cannot load the model or the index")
            problem = IndexUnavailable(
                "the archive cannot be searched right now: the bot could not load its model or "
                f"its index ({exc.__class__.__name__}); the operator's log says why"
            )
            problem.__cause__ = exc
            future.set_exception(problem)

    @cached_property
    def embedder(self) -> Embedder:
        s = self.settings
        return load_embedder(
            s.embedding_model,
            s.embedding_device,
            s.embedding_batch_size,
            s.embedding_dtype,
            s.embedding_backend,
            Path(s.embedding_cache_dir) if s.embedding_cache_dir else None,
        )

    @cached_property
    def store(self) -> Store:
        s = self.settings
        return Store(s.index_dir, s.chroma_url, s.chroma_retries, s.chroma_timeout)

    @cached_property
    def chunker(self) -> Chunker:
        s = self.settings
        return Chunker(
            self.embedder.count_tokens,
            self.embedder.max_tokens,
            s.chunk_tokens,
            s.chunk_overlap_tokens,
        )

    @cached_property
    def ingestor(self) -> Ingestor:
        from bot.fetch import Fetcher
        from bot.ingest import Ingestor

        s = self.settings
        fetcher = Fetcher(s.fetch_allowed_networks, s.fetch_timeout, s.max_file_bytes)
        return Ingestor(
            self.corpus,
            self.store,
            self.embedder,
            self.chunker,
            s.max_file_bytes,
            s.fetch_timeout,
            fetcher=fetcher,
            sentence_vectors=s.sentence_vectors,
        )

    @cached_property
    def index_lock(self) -> IndexLock:
        """Across processes: one writer on index/ (the bot, or one CLI command)."""
        from bot.lock import IndexLock

        return IndexLock(self.settings.index_dir)

    @cached_property
    def retriever(self) -> Retriever:
        check(self.store, BuiltWith.of(self.embedder, self.chunker))
        s = self.settings
        params = RetrievalParams(top_k=s.top_k, per_article=s.per_article)
        return Retriever(self.store, self.embedder, params)

    @cached_property
    def composer(self) -> Composer:
        """The extractive composer, or a language model checked by it when one is configured."""
        s = self.settings
        extractive = ExtractiveComposer(
            self.embedder, s.answer_sentences, s.min_relevance, self.store, s.abstain
        )
        if s.llm_base_url and s.llm_model:
            from bot.llm import LLMComposer

            return LLMComposer.from_settings(s, extractive)
        return extractive

    @cached_property
    def reranker(self) -> Reranker:
        s = self.settings
        return make_reranker(s.reranker, s.rerank_model, s.embedding_device)

    @cached_property
    def pipeline(self) -> AnswerPipeline:
        s = self.settings
        params = PipelineParams(
            top_k=s.top_k, per_article=s.per_article, pool=s.rerank_pool, stale_days=s.stale_days
        )
        return AnswerPipeline(self.retriever, self.reranker, self.composer, params)

    def ask(
        self,
        question: str,
        filters: Filters | None = None,
        as_of: dt.date | None = None,
        history: list[str] | None = None,
    ) -> Answer:
        """The pipeline's answer; the as-of date defaults to the filters' one, else today."""
        filters = filters or Filters()
        day = as_of or filters.as_of or dt.date.today()
        return self.pipeline.invoke(Request(question, day, filters, list(history or [])))

    def search(self, query: str, filters: Filters | None = None, k: int = 10) -> list[Passage]:
        return self.retriever.retrieve(query, filters, k)[1]
