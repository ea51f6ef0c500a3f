"""The article page as a Telegram Mini App: initData validation, the allow-list, the button."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from botkit import ANY_PORT, JOURNALISTS, buttons, running_bot
from conftest import MakeDesk, settings_for
from fake_telegram import TOKEN, FakeTelegram
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram.ext import Application

from bot.desk import Desk
from bot.miniapp import BOOT_HASH, BOOT_JS, MiniApp, init_data_user
from bot.models import Article, Citation
from bot.viewer import BadLink, build_viewer

PUBLIC = "https://newsdesk.example.org"
ALLOWED, STRANGER = 100, 666
NOW = 1_800_000_000.0
TEXT = (
    "The harbour authority confirmed on Monday that the new pier will open in spring. "
    "Secret detail: the budget was cut twice before the vote."
)
QUOTE = "Secret detail: the budget was cut twice before the vote."


def signed_init(user_id: int, auth_date: float = NOW, token: str = TOKEN, **extra: str) -> str:
    """initData as Telegram builds it: fields, then their HMAC keyed with the bot token."""
    fields = {
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": json.dumps({"id": user_id, "first_name": "Ann"}, separators=(",", ":")),
        "auth_date": str(int(auth_date)),
        **extra,
    }
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode(fields)


def test_init_data_is_checked_as_telegram_documents_it() -> None:
    assert init_data_user(signed_init(ALLOWED), TOKEN, NOW) == ALLOWED
    assert init_data_user(signed_init(ALLOWED, NOW - 3600), TOKEN, NOW) == ALLOWED
    good = signed_init(ALLOWED)
    bad = [
        good.replace("%22id%22%3A100", "%22id%22%3A101"),  # another user, same hash
        signed_init(ALLOWED, token="999:other-bot"),  # signed for another bot
        signed_init(ALLOWED, NOW - 2 * 86400),  # two days old
        signed_init(ALLOWED, NOW + 3600),  # from the future
        good.replace("hash=", "hash=0"),
        good + "&extra=1",  # a field the signature does not cover
        "",
        "hash=" + "0" * 64,
    ]
    for init in bad:
        with pytest.raises(BadLink):
            init_data_user(init, TOKEN, NOW)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_init_data_string_is_refused_cleanly(init: str) -> None:
    with pytest.raises(BadLink):
        init_data_user(init, TOKEN, NOW)


@pytest_asyncio.fixture(loop_scope="session")
async def app_client(make_desk: MakeDesk) -> AsyncIterator[tuple[MiniApp, TestClient, str]]:
    desk = make_desk()
    article = desk.ingestor.ingest_articles([Article(title="Pier", text=TEXT)]).added[0]
    start = TEXT.index(QUOTE)
    cite = Citation(1, article.id, "Pier", "", None, "", QUOTE, start, start + len(QUOTE))
    viewer = build_viewer(settings_for(desk.settings.corpus_dir.parent, public_url=PUBLIC), desk)
    miniapp = MiniApp(viewer, TOKEN, {ALLOWED}.__contains__, lambda: NOW)
    app = web.Application()
    app.router.add_routes(viewer.routes() + miniapp.routes())
    client: TestClient = TestClient(TestServer(app))
    await client.start_server()
    yield miniapp, client, miniapp.url([cite]).removeprefix(PUBLIC)
    await client.close()


async def test_the_page_opens_only_for_an_allowed_user_vouched_for_by_telegram(
    app_client: tuple[MiniApp, TestClient, str],
) -> None:
    _, client, path = app_client
    assert path.startswith("/app/") and path.endswith("?c=1")
    # First load (Telegram puts initData in the fragment): a script, not a word of the article.
    boot = await client.get(path)
    body = await boot.text()
    assert boot.status == 200 and "harbour" not in body and BOOT_JS in body
    csp = boot.headers["Content-Security-Policy"]
    assert f"script-src 'sha256-{BOOT_HASH}'" in csp and "default-src 'none'" in csp
    assert "frame-ancestors https://web.telegram.org" in csp
    # With initData: the page, for an allowed user only.
    page = await client.get(path, params={"tgWebAppData": signed_init(ALLOWED)})
    assert page.status == 200 and f'data-c="1">{QUOTE}</mark>' in await page.text()
    for init in (
        signed_init(STRANGER),
        signed_init(ALLOWED, token="999:other-bot"),
        signed_init(ALLOWED, NOW - 2 * 86400),
        signed_init(ALLOWED).replace("Ann", "Bob"),
    ):
        refused = await client.get(path, params={"tgWebAppData": init})
        assert refused.status == 403 and "harbour" not in await refused.text()
    # A Mini App link is no bearer link: the plain page route refuses its token.
    token = path.removeprefix("/app/").split("?")[0]
    assert (await client.get(f"/a/{token}")).status == 403
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    denied = await client.get(f"/app/{forged}", params={"tgWebAppData": signed_init(ALLOWED)})
    assert denied.status == 403


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install chromium (.ci/run does)")
async def test_in_a_browser_the_boot_script_hands_init_data_over(
    app_client: tuple[MiniApp, TestClient, str], tmp_path: Path
) -> None:
    from test_viewer import BROWSER_FLAGS, parsed

    _, client, path = app_client
    # As Telegram opens a Mini App: the launch parameters, initData encoded, in the fragment.
    url = str(client.make_url(path)) + "#tgWebAppData=" + quote(signed_init(ALLOWED), safe="")
    browser = await asyncio.create_subprocess_exec(
        str(CHROMIUM),
        *BROWSER_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        url + "&tgWebAppVersion=8.0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    dom, _ = await asyncio.wait_for(browser.communicate(), 120)
    assert parsed(dom.decode()).by_n == {1: QUOTE}


@pytest_asyncio.fixture(loop_scope="session")
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def https_bot(tg: FakeTelegram, seeded: Desk) -> AsyncIterator[Application]:
    async with running_bot(
        tg,
        seeded,
        allowed_chats=[-1001],
        health_port=ANY_PORT,
        public_url=PUBLIC,
        viewer_secret="m" * 40,
    ) as application:
        yield application


async def test_quotes_in_a_private_chat_offer_the_mini_app(
    tg: FakeTelegram, https_bot: Application
) -> None:
    user = JOURNALISTS[7]
    for chat_id, chat_type in ((user, "private"), (-1001, "supergroup")):
        start = len(tg.sent)
        question = tg.send_text(
            user, "/ask Why would the EU buy S-400s from Turkey?", chat_id, chat_type
        )
        reply = await tg.wait_for(
            lambda e, q=question: e["reply_to_message_id"] == q["message_id"], start=start
        )
        start = len(tg.sent)
        tg.press_button(user, reply["message_id"], buttons(reply)["Quotes"], chat_id=chat_id)
        quotes = await tg.wait_for(
            lambda e, c=chat_id: e["chat_id"] == c and "Quotes" in e["text"], start=start
        )
        rows = (quotes.get("reply_markup") or {}).get("inline_keyboard", [])
        apps = [b["web_app"]["url"] for row in rows for b in row if "web_app" in b]
        if chat_type == "private":
            assert len(apps) == 1 and apps[0].startswith(f"{PUBLIC}/app/")
        else:  # Telegram allows Mini App buttons in private chats only
            assert apps == []
