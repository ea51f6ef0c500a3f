"""Operations: /healthz and /metrics, webhook mode with a secret token, logs without secrets."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from botkit import ANY_PORT, JOURNALISTS, running_bot, services_of
from conftest import MakeDesk, settings_for
from fake_telegram import FakeTelegram
from telegram.ext import Application

from bot.app import build_application
from bot.desk import Desk
from bot.webhook import listen_socket

pytestmark = pytest.mark.asyncio(loop_scope="session")
USER = JOURNALISTS[5]
QUESTION = "How much did Turkey pay Russia for the S-400?"


@pytest_asyncio.fixture(loop_scope="session")
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


def port_of(app: Application) -> int:
    health = services_of(app).health
    assert health is not None
    return health.port


def replied(q: dict):  # type: ignore[no-untyped-def]
    return lambda e: e["chat_id"] == q["chat"]["id"] and e["reply_to_message_id"] == q["message_id"]


async def test_health_and_metrics(tg: FakeTelegram, make_desk: MakeDesk, seeded: Desk) -> None:
    async with (
        running_bot(tg, seeded, health_port=ANY_PORT) as app,
        aiohttp.ClientSession() as http,
    ):
        base = f"http://127.0.0.1:{port_of(app)}"
        async with http.get(f"{base}/healthz") as r:
            body = await r.json()
            assert r.status == 200 and body["status"] == "ok" and body["chunks"] > 0
        q = tg.send_text(USER, QUESTION)
        await tg.wait_for(replied(q))
        q = tg.send_text(USER, "What is the best recipe for sourdough bread?")
        await tg.wait_for(replied(q))
        async with http.get(f"{base}/metrics") as r:
            text = await r.text()
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        assert "newsdesk_questions_total 2.0" in text
        assert "newsdesk_answers_total 1.0" in text and "newsdesk_abstentions_total 1.0" in text
        assert "newsdesk_question_latency_seconds_count 2.0" in text
        assert "newsdesk_errors_total 0.0" in text
        assert services_of(app).health is not None
    # A broken index makes the health check fail with 503.
    broken = make_desk()
    async with (
        running_bot(tg, broken, health_port=ANY_PORT) as app,
        aiohttp.ClientSession() as http,
    ):
        broken.store.close()
        async with http.get(f"http://127.0.0.1:{port_of(app)}/healthz") as r:
            assert r.status == 503 and (await r.json())["status"] == "unavailable"


async def test_webhook_accepts_only_the_secret_token(tg: FakeTelegram, seeded: Desk) -> None:
    settings = settings_for(
        seeded.settings.corpus_dir.parent,
        telegram_token=tg.token,
        telegram_api_url=tg.url,
        allowed_users=[USER],
        health_port=0,
    )
    app = build_application(settings, seeded)
    async with app:
        await app.start()
        assert app.updater is not None
        sock = listen_socket("127.0.0.1", 0)  # as `serve` binds it: any free port
        port = sock.getsockname()[1]
        await app.updater.start_webhook(
            unix=sock,
            url_path="telegram",
            webhook_url="https://newsdesk.example.org/telegram",
            secret_token="s3cret-Token_1",
        )
        try:
            assert tg.webhook and tg.webhook["url"] == "https://newsdesk.example.org/telegram"
            url = f"http://127.0.0.1:{port}/telegram"
            async with aiohttp.ClientSession() as http:
                wrong = tg.send_text(USER, QUESTION)
                for headers in ({"X-Telegram-Bot-Api-Secret-Token": "nope"}, {}):
                    async with http.post(
                        url, json={"update_id": 900001, "message": wrong}, headers=headers
                    ) as r:
                        assert r.status == 403
                right = tg.send_text(USER, QUESTION)
                async with http.post(
                    url,
                    json={"update_id": 900002, "message": right},
                    headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-Token_1"},
                ) as r:
                    assert r.status == 200
                reply = await tg.wait_for(replied(right))
                assert "$2.5 billion" in reply["text"]
            assert not [e for e in tg.sent if replied(wrong)(e)]
        finally:
            await app.updater.stop()
            await app.stop()


async def test_logs_one_line_per_question_without_text_or_token(
    tg: FakeTelegram, seeded: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_bot(tg, seeded):
        q = tg.send_text(USER, QUESTION)
        await tg.wait_for(replied(q))
        logging.getLogger("httpx").warning("POST %s/bot%s/sendMessage", tg.url, tg.token)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("question ")]
    assert len(lines) == 1
    assert "abstained=false" in lines[0] and "sources=1" in lines[0] and "latency_ms=" in lines[0]
    assert str(USER) not in lines[0] and "S-400" not in lines[0]
    assert tg.token not in caplog.text and "<token>" in caplog.text
    async with running_bot(tg, seeded, log_questions=True):
        q = tg.send_text(USER, QUESTION)
        await tg.wait_for(replied(q))
    assert any("text='How much did Turkey" in r.getMessage() for r in caplog.records)
