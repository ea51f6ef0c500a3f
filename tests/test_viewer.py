"""Article pages: signed links, the page's highlights and escaping, refusals (aiohttp client)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import re
import shutil
import stat
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from conftest import MakeDesk, run_cli, settings_for
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.app import viewer_from
from bot.desk import Desk
from bot.errors import NewsdeskError
from bot.models import Article, Citation
from bot.viewer import (
    CSP,
    BadLink,
    ExpiredLink,
    Signer,
    Span,
    Viewer,
    build_viewer,
    highlighted,
    load_key,
    quote_check,
)

PUBLIC = "https://newsdesk.example.org"
S400 = "Why would the EU buy Russian S-400 systems from Turkey?"
SECRET = "s" * 40


class Marks(HTMLParser):
    """What a reader sees highlighted: the text of every <mark>, by citation number; and every
    address the page would load or link to."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.by_n: dict[int, str] = {}
        self.open: list[int] | None = None
        self.addresses: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        for name in ("src", "href", "action", "srcset", "poster", "data"):
            if values.get(name) and not str(values[name]).startswith("#"):
                self.addresses.append(str(values[name]))
        if tag == "mark":
            self.open = [int(n) for n in str(values.get("data-c", "")).split()]

    def handle_endtag(self, tag: str) -> None:
        if tag == "mark":
            self.open = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for n in self.open or []:
            self.by_n[n] = self.by_n.get(n, "") + data


def parsed(page: str) -> Marks:
    marks = Marks()
    marks.feed(page)
    return marks


def viewer_for(desk: Desk, now: float | None = None, key: bytes = SECRET.encode()) -> Viewer:
    viewer = build_viewer(settings_for(desk.settings.corpus_dir.parent, public_url=PUBLIC), desk)
    viewer.signer = Signer(key, 7, (lambda: now) if now is not None else viewer.signer.now)
    return viewer


async def client_for(viewer: Viewer) -> TestClient[web.Request, web.Application]:
    app = web.Application()
    app.router.add_routes(viewer.routes())
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    return client


def path_of(url: str) -> str:
    """The request path of a page URL (the fragment stays in the browser)."""
    return url.removeprefix(PUBLIC).split("#")[0]


@pytest.fixture
async def seeded_client(seeded: Desk) -> AsyncIterator[tuple[Viewer, TestClient]]:
    viewer = viewer_for(seeded)
    client = await client_for(viewer)
    yield viewer, client
    await client.close()


# -- signing ------------------------------------------------------------------------------------


def test_a_signed_link_reads_back_and_any_change_is_refused() -> None:
    signer = Signer(SECRET.encode(), 7, lambda: 1_000_000.0)
    token = signer.make("ab12", [Span(1, 10, 20), Span(2, 30, 45)], "c" * 12)
    link = signer.read(token)
    assert (link.article_id, link.spans, link.expires) == (
        "ab12",
        (Span(1, 10, 20), Span(2, 30, 45)),
        1_000_000 + 7 * 86400,
    )
    for i, char in enumerate(token):  # every single-character change, signature included
        if char == ".":
            continue
        changed = token[:i] + ("A" if char != "A" else "B") + token[i + 1 :]
        with pytest.raises(BadLink):
            signer.read(changed)
    with pytest.raises(BadLink):  # the same link signed with another key
        Signer(b"x" * 40, 7, lambda: 1_000_000.0).read(token)
    with pytest.raises(ExpiredLink):
        Signer(SECRET.encode(), 7, lambda: 1_000_000.0 + 7 * 86400 + 1).read(token)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300) | st.from_regex(r"[A-Za-z0-9_-]{0,80}\.[A-Za-z0-9_-]{43}"))
def test_any_string_is_refused_as_a_bad_link_and_nothing_else(token: str) -> None:
    with pytest.raises(BadLink):
        Signer(SECRET.encode(), 7).read(token)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab <>&\"'\n\té€𝄞"), min_size=1, max_size=60),
    st.lists(st.tuples(st.integers(0, 60), st.integers(1, 30)), min_size=1, max_size=5),
)
def test_highlights_are_exactly_the_cited_spans(text: str, raw: list[tuple[int, int]]) -> None:
    spans = [
        Span(n, min(a, len(text) - 1), min(a + w, len(text)))
        for n, (a, w) in enumerate(raw, 1)
        if min(a, len(text) - 1) < min(a + w, len(text))
    ]
    page = parsed(highlighted(text, spans))
    for s in spans:
        assert page.by_n[s.n] == text[s.start : s.end]
    labels = "".join(f"[{s.n}]" for s in spans)
    assert sorted("".join(page.text)) == sorted(text + labels)  # nothing lost, nothing added
    assert not set(page.tags) - {"a", "mark"}


def test_the_key_is_made_once_owner_only_and_shared_by_concurrent_processes(
    tmp_path: Path,
) -> None:
    index = tmp_path / "index"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        keys = pool.starmap(load_key, [("", index)] * 8)
    assert len(set(keys)) == 1 and len(keys[0]) >= 32
    assert stat.S_IMODE((index / "viewer.key").stat().st_mode) == 0o600
    assert load_key("", index) == keys[0]
    assert not [p for p in index.iterdir() if p.name != "viewer.key"]  # no temporary left
    assert load_key(SECRET, index) == SECRET.encode()
    with pytest.raises(NewsdeskError, match="at least 32"):
        load_key("short", index)


def test_settings_refuse_a_bad_public_url_and_pages_without_a_server(tmp_path: Path) -> None:
    from pydantic import ValidationError

    for bad in ("newsdesk.example.org", "ftp://x.org", "https://x.org/?a=1", "https://"):
        with pytest.raises(ValidationError):
            settings_for(tmp_path, public_url=bad)
    assert settings_for(tmp_path, public_url="https://x.org/news/").public_url == (
        "https://x.org/news"
    )
    desk = Desk(settings_for(tmp_path, public_url=PUBLIC, health_port=0))
    with pytest.raises(NewsdeskError, match="NEWSDESK_HEALTH_PORT"):
        viewer_from(desk.settings, desk)
    assert viewer_from(settings_for(tmp_path), desk) is None  # no URL: nothing changes


# -- the page -----------------------------------------------------------------------------------


async def test_every_citation_of_the_seed_answer_opens_its_quote_highlighted(
    seeded: Desk, seeded_client: tuple[Viewer, TestClient]
) -> None:
    viewer, client = seeded_client
    answer = seeded.ask(S400)
    assert answer.citations and not any(c.url for c in answer.citations)  # the seed: no URL
    links = viewer.links(answer.citations)
    assert set(links) == {c.n for c in answer.citations}
    for c in answer.citations:
        assert links[c.n].startswith(f"{PUBLIC}/a/") and links[c.n].endswith(f"#c{c.n}")
        response = await client.get(path_of(links[c.n]))
        assert response.status == 200
        assert response.headers["Content-Security-Policy"] == CSP
        assert "default-src 'none'" in CSP and "unsafe" not in CSP
        assert response.headers["Referrer-Policy"] == "no-referrer"
        page_text = await response.text()
        page = parsed(page_text)
        article = seeded.corpus.read(Path(seeded.store.article(c.article_id).path))  # type: ignore[union-attr]
        # The highlight is the quote, at the quote's own offsets in the article.
        assert page.by_n[c.n] == c.quote == article.text[c.start : c.end]
        assert f'id="c{c.n}"' in page_text  # the #cN fragment has somewhere to scroll to
        assert article.title in "".join(page.text)
        assert page.addresses == []  # no external asset, and no link (the seed has no URL)
        assert not {"script", "img", "link", "iframe", "object"} & set(page.tags)


async def test_an_article_full_of_markup_is_shown_as_text(
    make_desk: MakeDesk,
) -> None:
    desk = make_desk()
    hostile = Article(
        title='<script>alert("t")</script> Tom & Jerry',
        text=(
            "Intro & more. <script>alert(1)</script> The council said <b>no</b> & left. "
            '<img src="https://evil.example/x.png" onerror="alert(2)"> R&D budgets fell by 5% '
            "in the third quarter of the year, the ministry said."
        ),
        source="<i>Outlet</i>",
        url='https://example.org/a?x=1&y="2"',
        language="en",
    )
    report = desk.ingestor.ingest_articles([hostile])
    article = report.added[0]
    start = article.text.index("R&D")
    quote = article.text[start:]
    viewer = viewer_for(desk)
    cite = Citation(1, article.id, article.title, "", None, "", quote, start, len(article.text))
    client = await client_for(viewer)
    try:
        response = await client.get(path_of(viewer.links([cite])[1]))
        body = await response.text()
    finally:
        await client.close()
    assert response.status == 200
    assert "<script" not in body and "<img" not in body and "<b>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "Tom &amp; Jerry" in body
    page = parsed(body)
    assert page.by_n[1] == quote
    assert set(page.tags) <= {"html", "head", "meta", "title", "style", "body", "main"} | {
        "header",
        "h1",
        "p",
        "a",
        "nav",
        "article",
        "mark",
    }
    # The only address on the page is the original article's, escaped in its attribute.
    assert page.addresses == ['https://example.org/a?x=1&y="2"']
    assert 'href="https://example.org/a?x=1&amp;y=&quot;2&quot;"' in body


async def test_tampered_expired_unknown_removed_and_changed_links_show_nothing(
    make_desk: MakeDesk, tmp_path: Path
) -> None:
    desk = make_desk()
    text = (
        "The harbour authority confirmed on Monday that the new pier will open in spring. "
        "Secret detail: the budget was cut twice before the vote."
    )
    original = Article(title="Pier opens", text=text, url="https://example.org/pier")
    article = desk.ingestor.ingest_articles([original]).added[0]
    quote = "Secret detail: the budget was cut twice before the vote."
    start = text.index(quote)
    cite = Citation(1, article.id, "Pier opens", "", None, "", quote, start, start + len(quote))
    now = [1_000_000.0]
    viewer = viewer_for(desk)
    viewer.signer = Signer(SECRET.encode(), 7, lambda: now[0])
    client = await client_for(viewer)

    async def get(path: str) -> tuple[int, str]:
        response = await client.get(path)
        body = await response.text()
        assert "Secret detail" not in body or response.status == 200
        assert "harbour" not in body or response.status == 200
        return response.status, body

    try:
        good = path_of(viewer.links([cite])[1])
        assert (await get(good))[0] == 200
        body, sig = good.removeprefix("/a/").split(".")
        forged = Signer(b"k" * 40, 7, lambda: now[0]).token(
            viewer.signer.read(f"{body}.{sig}")
        )  # the same link under another key
        for bad in (
            f"/a/{body[:-1]}{'A' if body[-1] != 'A' else 'B'}.{sig}",
            f"/a/{body}.{sig[:-1]}{'A' if sig[-1] != 'A' else 'B'}",
            f"/a/{forged}",
            f"/a/{body}",
            "/a/%3Cscript%3E",
        ):
            status, page = await get(bad)
            assert status == 403 and "not valid" in page, bad
        now[0] += 7 * 86400 + 1  # a week later
        status, page = await get(good)
        assert status == 403 and "expired" in page
        now[0] -= 7 * 86400 + 1
        unknown = Citation(1, "0123456789abcdef", "", "", None, "", quote, start, cite.end)
        assert (await get(path_of(viewer.links([unknown])[1])))[0] == 404
        # The article changes (same URL, so same id): the old spans would highlight other text.
        changed = Article(title="Pier opens", text="Rewritten. " + text, url=original.url)
        assert desk.ingestor.ingest_articles([changed]).updated
        assert (await get(good))[0] == 404
        relinked = Citation(1, article.id, "", "", None, "", quote, start + 11, cite.end + 11)
        fresh = path_of(viewer.links([relinked])[1])
        assert (await get(fresh))[0] == 200
        desk.ingestor.remove(article.id)  # removed: gone at once, for every link
        for path in (good, fresh):
            status, page = await get(path)
            assert status == 404 and "not available" in page
    finally:
        await client.close()


def test_ask_json_gives_each_citation_its_page(
    seeded: Desk, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEWSDESK_CORPUS_DIR", str(seeded.settings.corpus_dir))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(seeded.settings.index_dir))
    monkeypatch.setenv("NEWSDESK_PUBLIC_URL", PUBLIC + "/")
    monkeypatch.setenv("NEWSDESK_VIEWER_SECRET", SECRET)
    code, out, _ = run_cli(["ask", S400, "--json"], capsys)
    assert code == 0
    citations = json.loads(out)["citations"]
    assert citations
    signer = Signer(SECRET.encode(), 7)
    for c in citations:
        token = re.fullmatch(rf"{PUBLIC}/a/([^#]+)#c{c['n']}", c["view_url"])
        assert token, c["view_url"]
        link = signer.read(token.group(1))
        assert (
            Span(c["n"], c["start"], c["end"]) in link.spans
            and link.article_id == (c["article_id"])
        )
        assert link.check == quote_check(
            x["quote"] for x in citations if x["article_id"] == c["article_id"]
        )
    monkeypatch.delenv("NEWSDESK_PUBLIC_URL")
    code, out, _ = run_cli(["ask", S400, "--json"], capsys)
    assert code == 0 and all("view_url" not in c for c in json.loads(out)["citations"])


# -- in a real browser --------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium's own background services (updates, time, accounts) are kept on this machine too:
# every name resolves nowhere but loopback, and any proxied request meets a closed port.
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
]
SEED = next(Path(__file__).resolve().parent.parent.glob("corpus/undated/eu-considers-*.md"))


def requests_in(net_log: Path) -> list[tuple[str, str]]:
    """(url without fragment, initiator) of every request Chromium started, from its NetLog."""
    data = json.loads(net_log.read_text(encoding="utf-8"))
    start = data["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        (e["params"]["url"].split("#")[0], str(e["params"].get("initiator", "")))
        for e in data["events"]
        if e["type"] == start and "url" in e.get("params", {})
    ]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install chromium (.ci/run does)")
async def test_a_real_browser_shows_the_quote_highlighted_and_loads_nothing_else(
    make_desk: MakeDesk, tmp_path: Path
) -> None:
    desk = make_desk()
    assert not desk.ingestor.ingest([SEED]).failed
    answer = desk.ask(S400)
    assert len(answer.citations) > 1
    viewer = viewer_for(desk)
    client = await client_for(viewer)
    try:
        origin = str(client.make_url("/")).rstrip("/")
        url = origin + path_of(viewer.links(answer.citations)[2]) + "#c2"
        net_log = tmp_path / "net.json"
        browser = await asyncio.create_subprocess_exec(
            str(CHROMIUM),
            *BROWSER_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--log-net-log={net_log}",
            "--dump-dom",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        dom, _ = await asyncio.wait_for(browser.communicate(), 120)
    finally:
        await client.close()
    page = parsed(dom.decode())
    assert page.by_n and set(page.by_n) == {c.n for c in answer.citations}
    for c in answer.citations:
        assert page.by_n[c.n] == c.quote  # what the reader sees highlighted is the quote
    requests = requests_in(net_log)
    assert (url.split("#")[0], "not an origin") in requests
    # Whatever the page made the browser fetch: only this server, and nothing but a favicon.
    by_page = [u for u, initiator in requests if initiator == origin]
    assert all(u == origin + "/favicon.ico" for u in by_page), by_page


# -- the links in Telegram messages -------------------------------------------------------------

TEXTS = st.text(alphabet=st.sampled_from("ab <>&\"'\n[]1é𝄞"), max_size=300)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(TEXTS, TEXTS, st.sampled_from(["", "https://x.org/?a=1&b=<2>", "javascript:x"])),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from(["a1", "b2", "a1"]),
)
def test_answers_and_quotes_with_page_links_are_valid_telegram_html(
    cites: list[tuple[str, str, str]], other: str
) -> None:
    from fake_telegram import MAX_TEXT, parse_html, utf16_len

    from bot import render
    from bot.models import Answer

    citations = [
        Citation(n, f"{other if n % 3 else 'c3'}", title, "Outlet & Co", None, url, quote, 0, 5)
        for n, (title, quote, url) in enumerate(cites, 1)
    ]
    signer = Signer(SECRET.encode(), 7)
    viewer = Viewer(PUBLIC, signer, lambda _: None)
    pages = viewer.links(citations)
    answer = Answer("q", " ".join(f"{c.quote} [{c.n}]" for c in citations), citations, False)
    for parts in (render.answer_html(answer, pages), render.quotes_html(citations, pages)):
        urls = []
        for part in parts:
            text, entities = parse_html(part)  # raises like Telegram on bad markup
            assert utf16_len(text.strip()) <= MAX_TEXT
            urls += [e["url"] for e in entities if e["type"] == "text_link"]
        # Every citation's page link is there, intact (escaping did not change the token).
        assert {u for u in urls if u.startswith(PUBLIC)} >= set(pages.values())
        for u in urls:
            assert not u.startswith("javascript")
