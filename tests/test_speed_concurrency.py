"""Many journalists at once: questions share model runs, and the bot's event loop keeps turning."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from botkit import running_bot
from fake_telegram import FakeTelegram

from bot.desk import Desk
from bot.embed import Embedder
from bot.onnx_encoder import MicroBatcher, OnnxEmbedder, VectorCache

QUESTIONS = [
    "Why would the EU buy Russian S-400 systems from Turkey?",
    "Who won the Hong Kong legislative election?",
    "What happened at Fan Expo Canada?",
    "How will the UK asylum process change?",
    "Which party gained seats in the functional constituencies?",
]


def onnx_of(embedder: Embedder) -> OnnxEmbedder:
    fast = getattr(embedder, "fast", embedder)
    assert isinstance(fast, OnnxEmbedder)
    return fast


def test_concurrent_questions_share_runs_and_each_gets_its_own_vector(embedder: Embedder) -> None:
    model = onnx_of(embedder)
    questions = [f"{QUESTIONS[i % 5]} ({i})" for i in range(50)]
    alone = {q: model.encode_queries([q])[0] for q in questions}
    queued = threading.Event()
    batcher: MicroBatcher

    def first_run_waits_for_the_rest(texts: Sequence[str]) -> np.ndarray:
        if batcher.runs == 0:  # hold the first run until every other caller has queued
            while len(batcher._queue) < len(questions) - 1:
                time.sleep(0.001)
            queued.set()
        return model._encode_now(texts)

    batcher = MicroBatcher(first_run_waits_for_the_rest)
    got: dict[str, np.ndarray] = {}

    def ask(q: str) -> None:
        got[q] = batcher.encode([q])[0]

    threads = [threading.Thread(target=ask, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert queued.is_set()
    assert (batcher.calls, batcher.runs) == (50, 2), "49 waiting questions share one run"
    for q in questions:
        assert np.allclose(got[q], alone[q], atol=1e-4), q


def test_a_failed_run_fails_its_callers_and_the_next_run_works(embedder: Embedder) -> None:
    model = onnx_of(embedder)
    fail = threading.Event()
    fail.set()

    def flaky(texts: Sequence[str]) -> np.ndarray:
        if fail.is_set():
            fail.clear()
            raise RuntimeError("onnxruntime out of memory")
        return model._encode_now(texts)

    batcher = MicroBatcher(flaky)
    with pytest.raises(RuntimeError, match="out of memory"):
        batcher.encode(["first"])
    assert batcher.encode(["second"]).shape == (1, model.dimension)


def test_repeated_sentences_are_encoded_once_and_the_cache_stays_bounded(
    embedder: Embedder,
) -> None:
    model = onnx_of(embedder)
    fresh = [f"A sentence nobody has encoded yet, number {i}." for i in range(3)]
    runs = model.batcher.runs
    first = model.encode(fresh)
    assert model.batcher.runs == runs + 1
    again = model.encode([fresh[2], fresh[0]])
    assert model.batcher.runs == runs + 1, "cached sentences need no model run"
    assert np.array_equal(again, first[[2, 0]])
    cache = VectorCache(2)
    cache.put_many(["a", "b", "c"], np.eye(3, dtype=np.float32))
    assert sorted(cache.get_many(["a", "b", "c"])) == ["b", "c"]


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="session")
async def test_fifty_journalists_at_once_are_all_answered_without_blocking_the_loop(
    seeded: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = list(range(5000, 5050))
    lags: list[float] = []
    stop = asyncio.Event()
    # Where the heavy stages ran: the loop's own thread (this test's) would stall every chat.
    loop_thread, ran = threading.get_ident(), Counter[tuple[str, bool]]()
    pipeline = seeded.pipeline

    def spy(stage: str, work: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            ran[stage, threading.get_ident() == loop_thread] += 1
            return work(*args, **kwargs)

        return run

    monkeypatch.setattr(
        pipeline.retriever, "retrieve", spy("retrieve", pipeline.retriever.retrieve)
    )
    monkeypatch.setattr(pipeline.composer, "compose", spy("compose", pipeline.composer.compose))

    async def probe() -> None:
        """How late the loop wakes a 10 ms sleeper: a blocked loop shows as a long lag."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            start = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - start - 0.01)

    async with FakeTelegram() as tg, running_bot(tg, seeded, allowed_users=users):
        probing = asyncio.create_task(probe())
        start = time.perf_counter()
        asked = [
            (tg.send_text(user, QUESTIONS[i % len(QUESTIONS)]), time.perf_counter())
            for i, user in enumerate(users)
        ]
        latencies = []
        for question, sent in asked:
            reply = await tg.wait_for(
                lambda e, q=question: (
                    e["chat_id"] == q["chat"]["id"] and e["reply_to_message_id"] == q["message_id"]
                ),
                timeout=600,
            )
            assert "[1]" in reply["text"] or "does not answer" in reply["text"]
            latencies.append(time.perf_counter() - sent)
        wall = time.perf_counter() - start
        stop.set()
        await probing
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(
        f"\n50 journalists: all answered in {wall:.1f} s; latency p50 "
        f"{statistics.median(latencies):.2f} s, p95 {p95:.2f} s; loop lag max {max(lags):.3f} s"
    )
    assert len(latencies) == 50
    assert ran["retrieve", False] == 50 and ran["compose", False] > 0, ran
    assert not ran["retrieve", True] and not ran["compose", True], f"on the event loop: {ran}"
    # The check above is the one that catches a stage moved onto the loop (retrieval there
    # lagged it by only 0.6 s of a 2 s flood). The lag is a coarse second check: loose, as on
    # a loaded machine (the other test worker exporting a model) the scheduler alone has
    # delayed it by 1.1 s of a 4.1 s flood.
    worst = max(lags)
    assert worst < max(wall / 4, 2.0), f"loop blocked {worst:.2f} s of {wall:.1f} s"
