"""A fake OpenAI-compatible chat server on 127.0.0.1: scripted replies, recorded requests.

Implements `POST /v1/chat/completions`, with and without `"stream": true` (server-sent events:
`data: {chunk}` lines, then `data: [DONE]`). Each request takes the next scripted `Reply` from
a queue; an empty queue answers 500, so a client's retries meet the same failure. Replies can
be an HTTP error (429, 500), a delay (to pass the client's timeout), a malformed body, a
body trickled a byte at a time (`byte_delay`: every read succeeds, the reply never arrives),
or a stream that never ends (`forever`: the content again and again, no `[DONE]`).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    content: str = ""
    status: int = 200
    delay: float = 0.0  # seconds before the response starts
    raw: bytes | None = None  # sent as the body of a 200 instead of a completion (malformed)
    chunk_words: int = 2  # streaming: words per SSE chunk
    chunk_delay: float = 0.005  # streaming: seconds between chunks
    byte_delay: float = 0.0  # > 0: the response body trickles out one byte per this many seconds
    forever: bool = False  # streaming: repeat the content until the client hangs up (or 60 s)


class Stopped(Exception):
    """The fake is shutting down: abandon the response."""


class FakeOpenAI:
    """`with FakeOpenAI() as fake: fake.push(Reply("… [1]."))`; `fake.url` is the base URL."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def push(self, *replies: Reply | str) -> None:
        with self.lock:
            self.replies.extend(Reply(r) if isinstance(r, str) else r for r in replies)

    def next_reply(self) -> Reply:
        with self.lock:
            return self.replies.popleft() if self.replies else Reply(status=500)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()  # wakes delayed replies
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self.send_json(404, {"error": {"message": "not found", "type": "invalid"}})
                    return
                request = json.loads(body)
                with fake.lock:
                    fake.requests.append(request)
                    fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                reply = fake.next_reply()
                if reply.delay and fake.stopped.wait(reply.delay):
                    return
                with contextlib.suppress(BrokenPipeError, ConnectionResetError, Stopped):
                    self.respond(request, reply)  # unless the client gave up (timeout)

            def pause(self, seconds: float) -> None:
                if fake.stopped.wait(seconds):
                    raise Stopped

            def write(self, data: bytes, reply: Reply) -> None:
                """The body as a server sends it: at once, or a byte at a time."""
                if not reply.byte_delay:
                    self.wfile.write(data)
                    self.wfile.flush()
                    return
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    self.pause(reply.byte_delay)

            def respond(self, request: dict[str, Any], reply: Reply) -> None:
                if reply.status != 200:
                    kind = "rate_limit_exceeded" if reply.status == 429 else "server_error"
                    error = {"message": f"fake {reply.status}", "type": kind, "code": kind}
                    self.send_json(reply.status, {"error": error}, {"retry-after-ms": "50"})
                    return
                if reply.raw is not None:
                    self.send_bytes(200, reply.raw, "application/json", reply=reply)
                    return
                model = request.get("model", "fake")
                if request.get("stream"):
                    self.stream(model, reply)
                    return
                self.send_json(
                    200,
                    reply=reply,
                    data={
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": reply.content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                    },
                )

            def stream(self, model: str, reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                words = re.findall(r"\S+\s*", reply.content)
                pieces = [
                    "".join(words[i : i + reply.chunk_words])
                    for i in range(0, len(words), reply.chunk_words)
                ] or [""]  # (an empty endless stream still sends events, not a busy loop)

                def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
                    chunk = {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    }
                    return f"data: {json.dumps(chunk)}\n\n".encode()

                self.write(event({"role": "assistant", "content": ""}), reply)
                give_up = time.monotonic() + 60  # a test's safety net, not the client's
                while True:
                    for piece in pieces:
                        self.write(event({"content": piece}), reply)
                        self.pause(reply.chunk_delay)
                    if not reply.forever or time.monotonic() > give_up:
                        break
                self.write(event({}, "stop"), reply)
                self.write(b"data: [DONE]\n\n", reply)

            def send_json(
                self,
                status: int,
                data: dict[str, Any],
                headers: dict[str, str] | None = None,
                reply: Reply | None = None,
            ) -> None:
                body = json.dumps(data).encode()
                self.send_bytes(status, body, "application/json", headers, reply)

            def send_bytes(
                self,
                status: int,
                body: bytes,
                kind: str,
                headers: dict[str, str] | None = None,
                reply: Reply | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.write(body, reply or Reply())

        return Handler
