"""Forged webhook updates, replayed against a real `newsdesk serve --webhook-url` process.

The attacker can reach the webhook port and knows an admin's user id; they POST an update that
says the admin sent `/add http://…`. Without Telegram's secret-token header (or with a wrong
one) it must be refused: 403, nothing fetched, nothing stored, no reply. With the header it is
an ordinary update. The secret is generated at start-up unless configured, handed to
`setWebhook`, and never written to the logs (nor is the bot token).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from conftest import ROOT, settings_for
from fake_telegram import FakeTelegram

import bot.app
from bot import cli
from bot.config import Settings
from bot.webhook import SECRET, listen_address, webhook_from

ADMIN = 4242
HEADER = "X-Telegram-Bot-Api-Secret-Token"
HOOK_URL = "https://newsdesk.example.org/telegram"
START_TIMEOUT = 120.0  # the subprocess imports torch and loads the model: ~5-20 s on 2 busy cores
PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>{title}</title><meta property="og:title" content="{title}">
<meta property="article:published_time" content="2025-03-04T08:00:00Z"></head>
<body><article><h1>{title}</h1>
<p>The harbour authority of Port Elm confirmed on Tuesday that the {slug} inquiry had found
serious failures in the way cargo inspections were logged over the past three years.</p>
<p>Inspectors said that about 1,200 containers had passed through the port without the checks
required by law, and that the records had been altered afterwards to hide the gaps.</p>
<p>The port's director said the findings would be sent to prosecutors and that new procedures
would be introduced before the summer season, when traffic usually doubles.</p>
</article></body></html>"""


class Pages:
    """A web server on 127.0.0.1 serving a news page at any path; records every request."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                pages.paths.append(self.path)
                slug = self.path.strip("/").removesuffix(".html")
                body = PAGE.format(title=f"Port Elm {slug} report", slug=slug).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, slug: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{slug}.html"


@pytest.fixture
def pages() -> Iterator[Pages]:
    server = Pages()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest_asyncio.fixture(loop_scope="session")
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


async def until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `condition` (while the fake Telegram server keeps serving) until it is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def set_webhook_calls(tg: FakeTelegram) -> list[dict[str, Any]]:
    return [params for method, params in tg.calls if method == "setWebhook"]


def corpus_titles(corpus: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in corpus.rglob("*.md"))


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="session")
async def test_forged_webhook_updates_are_refused(
    tg: FakeTelegram, pages: Pages, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")} | {
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "NEWSDESK_CORPUS_DIR": str(corpus),
        "NEWSDESK_INDEX_DIR": str(tmp_path / "index"),
        "NEWSDESK_TELEGRAM_TOKEN": tg.token,
        "NEWSDESK_TELEGRAM_API_URL": tg.url,
        "NEWSDESK_ADMINS": str(ADMIN),
        "NEWSDESK_HEALTH_PORT": "0",
        # The pages are on loopback: allowed here (the fetcher refuses loopback otherwise).
        "NEWSDESK_FETCH_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--webhook-url", HOOK_URL,
             "--listen", "127.0.0.1:0"],  # any free port: the log says which
            cwd=tmp_path,  # no developer .env
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        calls = await until(
            lambda: proc.poll() is not None or set_webhook_calls(tg),
            START_TIMEOUT,
            "setWebhook",
        )
        assert proc.poll() is None, log.read_text()
        [call] = calls
        secret = call["secret_token"]
        assert call["url"] == HOOK_URL and SECRET.fullmatch(secret)
        assert len(secret) >= 32  # generated: none was configured
        # Bound (and logged) before setWebhook, so it is listening by now.
        [port] = re.findall(r"webhook: listening on 127\.0\.0\.1:(\d+) for", log.read_text())
        url = f"http://127.0.0.1:{port}/telegram"
        async with aiohttp.ClientSession() as http:
            forged = []
            for n, headers in enumerate([{}, {HEADER: "guessed"}, {HEADER: secret[:-1]}]):
                message = tg.send_text(ADMIN, f"/add {pages.url(f'forged{n}')}")
                forged.append(message)
                update = {"update_id": 800000 + n, "message": message}
                async with http.post(url, json=update, headers=headers) as r:
                    assert r.status == 403
            real = tg.send_text(ADMIN, f"/add {pages.url('genuine')}")
            update = {"update_id": 800010, "message": real}
            async with http.post(url, json=update, headers={HEADER: secret}) as r:
                assert r.status == 200
            await tg.wait_for(
                lambda e: e["chat_id"] == ADMIN and "Port Elm genuine report" in e["text"],
                timeout=90,
            )
        # Only the genuine update did anything: one fetch, one article, replies to it alone.
        assert pages.paths == ["/genuine.html"]
        titles = corpus_titles(corpus)
        assert "Port Elm genuine report" in titles and "forged" not in titles
        forged_ids = {m["message_id"] for m in forged}
        assert not [e for e in tg.sent if e.get("reply_to_message_id") in forged_ids]
    finally:
        proc.send_signal(signal.SIGINT)  # PTB's graceful stop
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    text = log.read_text(encoding="utf-8", errors="replace")
    assert secret not in text and tg.token not in text
    assert "generated a random secret token" in text, text
    assert f"listening on 127.0.0.1:{port} for {HOOK_URL}" in text


def test_listen_defaults_to_loopback_and_bad_options_get_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(tmp_path, webhook_url=HOOK_URL)
    hook = webhook_from(settings)
    assert (hook.host, hook.port, hook.path) == ("127.0.0.1", 8443, "telegram")
    assert hook.generated and SECRET.fullmatch(hook.secret) and len(hook.secret) >= 32
    assert webhook_from(settings).secret != hook.secret  # a new one at every start
    assert hook.secret not in repr(hook)
    assert listen_address("[::1]:8443") == ("::1", 8443)
    assert listen_address(":9000") == ("127.0.0.1", 9000)
    assert listen_address("127.0.0.1:0") == ("127.0.0.1", 0)  # any free port
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSDESK_TELEGRAM_TOKEN", "123:ABC")
    monkeypatch.setenv("NEWSDESK_TELEGRAM_API_URL", "http://127.0.0.1:1")  # never the internet
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["serve", "--webhook-url", HOOK_URL, "--listen", f"127.0.0.1:{port}"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 1 and len(err.splitlines()) == 1
        assert f"cannot listen on 127.0.0.1:{port}" in err and "in use" in err
    for args, expected in [
        (["--secret-token", "has spaces!"], "must be 1 to 256 characters"),
        (["--secret-token", "x" * 257], "must be 1 to 256 characters"),
        (["--listen", "0.0.0.0"], "is not HOST:PORT"),
        (["--listen", "host:99999"], "is not HOST:PORT"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["serve", "--webhook-url", HOOK_URL, *args])
        err = capsys.readouterr().err
        assert exit_info.value.code == 1 and expected in err and len(err.splitlines()) == 1
    for args, expected in [
        (["--webhook-url", "http://newsdesk.example.org/telegram"], "is not an https:// URL"),
        (["--secret-token", "abc"], "add --webhook-url"),  # would poll, ignoring the secret
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["serve", *args])
        err = capsys.readouterr().err
        assert exit_info.value.code == 1 and expected in err


def test_a_configured_secret_is_used_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NEWSDESK_WEBHOOK_* from the environment, the `serve` options over them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSDESK_WEBHOOK_URL", HOOK_URL)
    monkeypatch.setenv("NEWSDESK_WEBHOOK_SECRET", "env-Secret_0123456789")
    monkeypatch.setenv("NEWSDESK_WEBHOOK_LISTEN", "0.0.0.0:8443")
    hook = webhook_from(Settings())
    assert hook.secret == "env-Secret_0123456789" and not hook.generated
    assert (hook.host, hook.port) == ("0.0.0.0", 8443)
    started: list[Settings] = []
    monkeypatch.setattr(bot.app, "serve", lambda settings: started.append(settings))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", "--secret-token", "option-Secret_1", "--listen", "127.0.0.1:9001"])
    assert exit_info.value.code in (0, None)
    hook = webhook_from(started[0])
    assert (hook.secret, hook.generated, hook.port) == ("option-Secret_1", False, 9001)
