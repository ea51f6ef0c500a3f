"""`serve` talks to Telegram while the desk (model, index) loads: a question that arrives
meanwhile is answered once it has loaded, and a desk that cannot load is said, not hung on."""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import pytest
from botkit import JOURNALISTS, running_bot
from conftest import settings_for
from fake_telegram import FakeTelegram

from bot.config import Settings
from bot.desk import Desk
from bot.embed import Embedder, default_model_path
from bot.onnx_encoder import cache_key

pytestmark = pytest.mark.asyncio(loop_scope="session")
USER = JOURNALISTS[0]
S400 = "How much did Turkey pay for the S-400?"


class GatedDesk(Desk):
    """A real desk whose model is handed over only once the test opens the gate: the load is
    in progress for as long as the test needs."""

    def __init__(self, settings: Settings, model: Embedder, gate: threading.Event) -> None:
        super().__init__(settings)
        self.model, self.gate = model, gate

    @cached_property
    def embedder(self) -> Embedder:
        if not self.gate.wait(120):
            raise RuntimeError("the test never opened the gate")
        return self.model


async def until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(0.02)


def copy_of(seeded: Desk, root: Path) -> Path:
    shutil.copytree(seeded.settings.corpus_dir, root / "corpus")
    shutil.copytree(seeded.settings.index_dir, root / "index")
    return root


async def test_a_question_asked_while_the_desk_loads_is_answered(
    seeded: Desk, embedder: Embedder, tmp_path: Path
) -> None:
    gate = threading.Event()
    desk = GatedDesk(settings_for(copy_of(seeded, tmp_path)), embedder, gate)
    try:
        async with FakeTelegram() as tg, running_bot(tg, desk):
            # Polling already: the model is still loading (the gate is shut).
            assert not desk.loading().done()
            question = tg.send_text(USER, S400)
            await until(lambda: (USER, "typing") in tg.chat_actions)  # the handler waits ...
            other = JOURNALISTS[1]
            help_asked = tg.send_text(other, "/help")  # ... and the event loop answers others
            await tg.wait_for(
                lambda e: (
                    e["chat_id"] == other and e["reply_to_message_id"] == help_asked["message_id"]
                )
            )
            assert not desk.loading().done()
            assert not any(e["chat_id"] == USER for e in tg.sent)
            gate.set()
            reply = await tg.wait_for(
                lambda e: (
                    e["chat_id"] == USER and e["reply_to_message_id"] == question["message_id"]
                ),
                timeout=120,
            )
            assert "[1]" in reply["text"] and "S-400" in reply["text"]
    finally:
        gate.set()


async def test_a_desk_that_cannot_load_is_said_to_the_user_and_logged(
    seeded: Desk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    models = tmp_path / "models"  # a cache whose exported model is garbage (a disk that lied)
    models.mkdir()
    bundled = Path(default_model_path())
    (models / f"{bundled.name}-{cache_key(bundled)}.onnx").write_bytes(b"not a model")
    settings = settings_for(copy_of(seeded, tmp_path), embedding_cache_dir=str(models))
    desk = Desk(settings)
    caplog.set_level(logging.WARNING)
    async with FakeTelegram() as tg, running_bot(tg, desk):
        for _ in range(2):  # every question is told (the load is tried again each time)
            question = tg.send_text(USER, S400)
            reply = await tg.wait_for(
                lambda e, q=question: (
                    e["chat_id"] == USER and e["reply_to_message_id"] == q["message_id"]
                ),
                timeout=120,
            )
            assert "cannot be searched right now" in reply["text"], reply["text"]
            assert "Traceback" not in reply["text"] and "[1]" not in reply["text"]
        helped = tg.send_text(USER, "/help")  # the rest of the bot still works
        await tg.wait_for(
            lambda e: e["chat_id"] == USER and e["reply_to_message_id"] == helped["message_id"]
        )
    failures = [r for r in caplog.records if r.getMessage() == "cannot load the model or the index"]
    assert len(failures) >= 2 and all(r.exc_info for r in failures)  # with the trace
