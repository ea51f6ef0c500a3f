"""The Chroma connection: the embedded store under index/, or a Chroma server, behind retries.

Only bot/store.py uses it; everything above the collection (what is stored, how it is searched)
lives there.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from bot import private
from bot.errors import IndexUnavailable, NewsdeskError

log = logging.getLogger(__name__)
COLLECTION = "chunks"
# chromadb's embedded Rust bindings are not safe under concurrent calls from several threads:
# a query racing a write fails with "Error finding id" (seen with 1.5.9 here), and
# chroma-core/chroma and its users report segfaults. The bot calls Chroma from its writer,
# its retrieval pool and its health check, so every embedded call in the process takes turns
# (a query is a few ms even at 1M chunks). A Chroma server serializes on its own side.
EMBEDDED_CALLS = threading.Lock()


def open_collection(index_dir: Path, chroma_url: str, retries: int, timeout: float) -> Collection:
    """The chunks collection: embedded under index/chroma, or on a Chroma server.

    A server is connected lazily, on the first call that needs it: the bot starts (and
    `docs`, `stats` work) while the server is still coming up, and recovers on its own.
    """
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    if chroma_url:
        server = parse_chroma_url(chroma_url)

        def connect() -> Any:
            client = chromadb.HttpClient(
                host=server.url,  # a full URL: keeps https, IPv6 hosts and a path prefix
                port=server.port,
                ssl=server.ssl,
                settings=ChromaSettings(anonymized_telemetry=False),
            )
            _set_http_timeout(client, timeout)
            return client

        return Collection(connect, server.url, retries)
    path = private.private_dir(index_dir / "chroma")
    try:
        with EMBEDDED_CALLS:
            client = chromadb.PersistentClient(
                path=str(path), settings=ChromaSettings(anonymized_telemetry=False)
            )
            collection = _chunks_collection(client)
        private.private_file(path / "chroma.sqlite3")  # chromadb creates it world-readable
    except Exception as exc:  # chromadb raises many types for a broken or absent store
        raise IndexUnavailable(
            f"cannot open the vector store at {path} ({exc.__class__.__name__}: {exc}); "
            "run `newsdesk reindex` to rebuild it from corpus/"
        ) from exc
    opened = Collection(lambda: client, str(path), retries, turns=EMBEDDED_CALLS)
    opened._client, opened._collection = client, collection
    return opened


# -- Chroma: embedded or server, behind retries ---------------------------------------------


@dataclass(frozen=True)
class ChromaServer:
    """Where a Chroma server listens, as parsed from NEWSDESK_CHROMA_URL."""

    scheme: str
    host: str
    port: int
    path: str = ""  # a prefix before Chroma's /api/v2, e.g. behind a reverse proxy

    @property
    def ssl(self) -> bool:
        return self.scheme == "https"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse_chroma_url(url: str) -> ChromaServer:
    """`http(s)://host[:port][/path]`; without a scheme, http.

    The port defaults to Chroma's 8000 for http and to 443 for https.
    """
    text = url.strip()
    parts = urlsplit(text if "://" in text else "http://" + text)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or port == -1
        or parts.username is not None
        or parts.query
        or parts.fragment
    ):
        raise NewsdeskError(
            f"NEWSDESK_CHROMA_URL={url!r} is not a Chroma server address: "
            "use http(s)://host[:port][/path], for example http://chroma:8000"
        )
    default = 443 if parts.scheme == "https" else 8000
    return ChromaServer(parts.scheme, parts.hostname, port or default, parts.path.rstrip("/"))


def is_transient(exc: BaseException) -> bool:
    """A connection-level failure (server down, restarting, slow): worth another try.

    chromadb sometimes re-raises a connection error as a ValueError ("Could not connect to a
    Chroma server"), so the chain of causes is searched too.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, httpx.TransportError | ConnectionError | TimeoutError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class Collection:
    """The Chroma collection the store uses, behind retries and user-safe errors.

    Transient connection errors are retried with exponential backoff (0.5 s, 1 s, 2 s, ... up
    to 8 s between attempts); when the attempts run out they become `IndexUnavailable`, naming
    the server. Retrying is safe because every call the store makes is idempotent (upsert by
    id, delete by id or filter, reads). Other errors pass through unchanged.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        where: str,
        attempts: int = 4,
        wait: float = 0.5,
        turns: AbstractContextManager[Any] | None = None,
    ) -> None:
        self._connect = connect  # returns a chromadb client
        self._client: Any = None
        self._collection: Any = None
        self._lock = threading.Lock()
        self._turns = turns or contextlib.nullcontext()  # EMBEDDED_CALLS for an embedded store
        self.where = where
        self.attempts = max(1, attempts)
        self.wait = wait

    def upsert(self, **kwargs: Any) -> None:
        self._call("upsert", kwargs)

    def delete(self, **kwargs: Any) -> None:
        self._call("delete", kwargs)

    def get(self, **kwargs: Any) -> Any:
        return self._call("get", kwargs)

    def query(self, **kwargs: Any) -> Any:
        return self._call("query", kwargs)

    def count(self) -> int:
        return int(self._call("count", {}))

    def recreate(self) -> None:
        """Drop the collection and make it anew: a collection keeps the dimension of its first
        vectors even when emptied, and a new embedding model may have another."""
        self._open()
        with self._lock, self._turns:
            self._client.delete_collection(COLLECTION)
            self._collection = _chunks_collection(self._client)

    def identity(self) -> str:
        """Where the vectors live and which collection holds them (a new server: a new id)."""
        collection = self._call("_self", {})
        return f"{self.where} collection {collection.id}"

    def _call(self, method: str, kwargs: dict[str, Any]) -> Any:
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.wait, max=8),
            retry=retry_if_exception(is_transient),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._invoke, method, kwargs)
        except Exception as exc:
            if not is_transient(exc):
                raise
            raise IndexUnavailable(
                f"the vector store at {self.where} is not reachable "
                f"({exc.__class__.__name__}: {exc}; {self.attempts} attempts): check that the "
                "Chroma server is running and that NEWSDESK_CHROMA_URL points at it"
            ) from exc

    def _invoke(self, method: str, kwargs: dict[str, Any]) -> Any:
        collection = self._open()
        if method == "_self":
            return collection
        with self._turns:
            return getattr(collection, method)(**kwargs)

    def _open(self) -> Any:
        with self._lock:
            if self._collection is None:
                try:
                    self._client = self._connect()
                    self._collection = _chunks_collection(self._client)
                except Exception as exc:
                    if is_transient(exc):
                        raise  # retried by _call
                    raise IndexUnavailable(
                        f"cannot open the vector store at {self.where} "
                        f"({exc.__class__.__name__}: {exc})"
                    ) from exc
            return self._collection

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "vector store at %s not reachable (%s), attempt %d of %d; retrying in %.1f s",
            self.where,
            exc.__class__.__name__,
            state.attempt_number,
            self.attempts,
            pause,
        )


def _chunks_collection(client: Any) -> Any:
    # embedding_function=None: vectors always come from our own model, never Chroma's.
    return client.get_or_create_collection(
        COLLECTION, metadata={"hnsw:space": "cosine"}, embedding_function=None
    )


def _set_http_timeout(client: Any, seconds: float) -> None:
    """chromadb's HTTP session waits forever by default; a hung server must not hang the bot.

    The session is a private attribute of chromadb's FastAPI client: if a chromadb release
    moves it, requests simply keep chromadb's own default.
    """
    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client) and seconds > 0:
        session.timeout = httpx.Timeout(seconds, connect=min(seconds, 5.0))
