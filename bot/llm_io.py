"""The chat model's I/O: every call streams, on one private event loop, under a total deadline.

An HTTP client's timeout bounds each read, not a reply: a server that sends a byte every two
seconds, or a stream that never ends, would hold an answer forever. `reply` wraps the whole
call (connect, retries, every read, the full stream) in `asyncio.timeout`, whose cancellation
closes the connection at once, wherever it is waiting.

All calls run on one daemon thread's event loop, whether they come from synchronous code (the
CLI, `eval`) or from the bot's loop (streamed answers): the async HTTP client LangChain shares
between calls is bound to the loop that opened its connections, so it must always be the same
one, and the bot's loop never waits on the network for the model.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

T = TypeVar("T")
# Seconds past a call's own deadline after which its caller stops waiting: the deadline is kept
# on this loop, and this bounds the wait even when the loop is too busy to keep it.
GRACE = 1.0
MAX_REPLY_CHARS = 8000  # far beyond an obedient reply (700 tokens); a runaway stops reading here


def content_text(content: str | list[Any]) -> str:
    """A message's text, whether the provider sent a string or content blocks."""
    if isinstance(content, str):
        return content
    parts = [p if isinstance(p, str) else p.get("text", "") for p in content]
    return "".join(p for p in parts if isinstance(p, str))


class ModelLoop:
    """An event loop in a daemon thread, started on first use, for the model's network I/O."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="model-io", daemon=True).start()
                self._loop = loop
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], deadline: float) -> T:
        """Blocking: the coroutine's result. It carries its own `deadline`; should this loop be
        too busy to end it in time (other calls' work, a slow close), the caller gives up
        `GRACE` s later all the same (TimeoutError) and the coroutine is cancelled."""
        future = self.submit(coro)
        try:
            return future.result(deadline + GRACE)
        except TimeoutError:
            future.cancel()  # a no-op when the coroutine's own deadline ended it
            raise


SHARED = ModelLoop()


async def reply(
    model: BaseChatModel,
    messages: list[BaseMessage],
    deadline: float,
    on_text: Callable[[str], None] | None = None,
    max_chars: int = MAX_REPLY_CHARS,
) -> str:
    """The model's streamed reply, all of it within `deadline` seconds (else TimeoutError).

    `on_text` gets the growing text after each piece. Reading stops at `max_chars`: a model
    that repeats itself without end has long since said all it will.
    """
    text = ""
    async with asyncio.timeout(deadline):
        stream = model.astream(messages)
        try:
            async for chunk in stream:
                piece = content_text(chunk.content)
                if not piece:
                    continue
                text += piece
                if on_text is not None:
                    on_text(text)
                if len(text) >= max_chars:
                    break
        finally:  # closes the HTTP response on a break, an error or the deadline
            if (aclose := getattr(stream, "aclose", None)) is not None:
                await aclose()
    return text
