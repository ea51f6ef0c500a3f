"""Prometheus metrics and the /healthz + /metrics HTTP endpoints served beside the bot."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

log = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


class Metrics:
    """One registry per application, so tests (and two bots in one process) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.questions = Counter("newsdesk_questions", "Questions received", registry=r)
        self.answers = Counter("newsdesk_answers", "Questions answered with citations", registry=r)
        self.abstentions = Counter(
            "newsdesk_abstentions", "Questions the corpus did not answer", registry=r
        )
        self.latency = Histogram(
            "newsdesk_question_latency_seconds",
            "Time to answer a question",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ingested = Counter(
            "newsdesk_ingested_articles",
            "Articles ingested from Telegram, by result",
            ["result"],
            registry=r,
        )
        self.errors = Counter(
            "newsdesk_errors", "Failures shown to users as an apology", registry=r
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def pseudonym(value: int | str) -> str:
    """A stable short hash for logs: which chat, without saying who."""
    return hashlib.sha256(str(value).encode()).hexdigest()[:12]


class HealthServer:
    """Serves GET /healthz (200 or 503, JSON) and GET /metrics (Prometheus text format), and
    any further routes given (the article pages)."""

    def __init__(
        self,
        metrics: Metrics,
        check: Callable[[], Awaitable[dict[str, Any]]],
        host: str,
        port: int,
        routes: Sequence[web.RouteDef] = (),
    ) -> None:
        self.metrics = metrics
        self.check = check
        self.host = host
        self.port = port
        self.routes = routes
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_routes(self.routes)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the real port when 0 was asked for
        log.info("health and metrics on http://%s:%s/healthz and /metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        try:
            body = {"status": "ok", **await self.check()}
            return web.json_response(body)
        except Exception as exc:  # any failure of the index means "not healthy"
            return web.json_response({"status": "unavailable", "error": str(exc)}, status=503)

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response
