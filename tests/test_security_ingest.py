"""Attacks through ingestion (issue 10 #2 #3 #4 #8, issue 11 #8): each test is the attack.

SSRF: the CLI and the bot share one Ingestor, so `newsdesk ingest URL` is the attack surface of
`/add URL` too. Every server here records the requests it received: a refused fetch must never
have asked it for anything (counting bare connections instead would count another test's stray
probe on the same machine as a leak).
"""

from __future__ import annotations

import errno
import io
import socket
import threading
import time
import tracemalloc
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from botkit import running_bot
from conftest import MakeDesk
from documents import ARTICLE_HTML
from fake_telegram import FakeTelegram

from bot import cli, sources
from bot.config import Settings
from bot.desk import Desk
from bot.embed import Embedder
from bot.errors import BlockedAddress, FetchError, InputError
from bot.fetch import AddressPolicy, Fetcher
from bot.metadata import load_front_matter
from bot.parse import parse

SECRET = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SECRET_PAGE = ARTICLE_HTML.replace(
    "<p>Engineers replaced", f"<p>The internal credentials are {SECRET}.</p><p>Engineers replaced"
)
Route = Callable[[BaseHTTPRequestHandler], None]
# Ample for a fetch that must succeed on a loaded machine; the deadline tests set their own.
FETCH_TIMEOUT = 30.0


def _page(body: str) -> Route:
    def send(req: BaseHTTPRequestHandler) -> None:
        data = body.encode()
        req.send_response(200)
        req.send_header("Content-Type", "text/html; charset=utf-8")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    return send


def _redirect(location: str) -> Route:
    def send(req: BaseHTTPRequestHandler) -> None:
        req.send_response(302)
        req.send_header("Location", location)
        req.send_header("Content-Length", "0")
        req.send_header("Connection", "close")
        req.end_headers()

    return send


class Site:
    """An HTTP server on `host` that records the target of every request it receives."""

    def __init__(self, host: str, routes: dict[str, Route], port: int = 0) -> None:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def parse_request(self) -> bool:
                ok = super().parse_request()
                if ok:  # any method; a proxy's absolute-form target ("GET http://…") too
                    site.targets.append(self.path)
                return ok

            def do_GET(self) -> None:
                route = routes.get(self.path)
                if route is None:
                    self.send_error(404)
                else:
                    route(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self.targets: list[str] = []
        self.server = Server((host, port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self.thread.start()

    def asked(self, path: str) -> int:
        """How many requests asked for `path`, directly or as a proxy's absolute URL."""
        return sum(1 for target in self.targets if urlsplit(target).path == path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def internal() -> Iterator[Site]:
    """The internal service an attacker wants read: loopback, serving a page with a secret."""
    site = Site("127.0.0.1", {"/secret": _page(SECRET_PAGE), "/story": _page(SECRET_PAGE)})
    yield site
    site.close()


def _twin(routes: dict[str, Route], port: int) -> Site:
    """A second server on 127.0.0.2 at `port` (the same port as the internal one)."""
    return Site("127.0.0.2", routes, port)


def _cli(
    args: list[str],
    root: Path,
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    allowed: str = "",
) -> tuple[int, str]:
    """`newsdesk ARGS` with the environment an operator sets; (exit code, stdout + stderr)."""
    monkeypatch.setenv("NEWSDESK_CORPUS_DIR", str(root / "corpus"))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(root / "index"))
    monkeypatch.setenv("NEWSDESK_FETCH_TIMEOUT", str(FETCH_TIMEOUT))
    monkeypatch.setenv("NEWSDESK_FETCH_ALLOWED_NETWORKS", allowed)
    monkeypatch.setattr(cli, "_desk", lambda: Desk(Settings(_env_file=None), embedder=embedder))  # type: ignore[call-arg]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out + err


def _stored(root: Path) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in (root / "corpus").rglob("*.md"))


def test_cli_refuses_a_loopback_url_and_stores_nothing(
    internal: Site,
    tmp_path: Path,
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = internal.url + "/secret"
    code, output = _cli(["ingest", url], tmp_path, embedder, monkeypatch, capsys)
    assert code == 1 and "Traceback" not in output
    assert (
        f"refused to fetch {url}: 127.0.0.1 is a loopback address "
        "(set NEWSDESK_FETCH_ALLOWED_NETWORKS to allow it)"
    ) in output
    assert "0 added" in output and SECRET not in _stored(tmp_path)
    assert internal.asked("/secret") == 0


@pytest_asyncio.fixture(loop_scope="session")
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.mark.asyncio(loop_scope="session")
async def test_telegram_add_and_bare_link_to_internal_addresses_are_refused(
    tg: FakeTelegram, internal: Site, make_desk: MakeDesk
) -> None:
    admin = 7
    desk = make_desk(fetch_timeout=FETCH_TIMEOUT)

    def refused(msg: dict[str, object], what: str) -> Callable[[dict[str, object]], bool]:
        return lambda e: (
            e["chat_id"] == admin
            and e["reply_to_message_id"] == msg["message_id"]
            and f"refused to fetch {what}" in str(e["text"])
        )

    async with running_bot(tg, desk, admins=[admin]):
        url = internal.url + "/secret"
        add = tg.send_text(admin, f"/add {url}")
        reply = await tg.wait_for(refused(add, url))
        assert "127.0.0.1 is a loopback address" in str(reply["text"])
        link = f"http://localhost:{internal.port}/secret"
        bare = tg.send_text(admin, link)
        reply = await tg.wait_for(refused(bare, link))
        assert "localhost resolves to" in str(reply["text"])
    assert internal.asked("/secret") == 0 and desk.store.articles() == []


def test_cli_fetches_it_when_the_operator_allows_the_network(
    internal: Site,
    tmp_path: Path,
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = internal.url + "/secret"
    args = ["ingest", url]
    code, output = _cli(args, tmp_path, embedder, monkeypatch, capsys, allowed="127.0.0.0/30")
    assert code == 0, output
    assert "1 added" in output and SECRET in _stored(tmp_path)


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
        "2130706433",  # 127.0.0.1 as one decimal number
        "0x7f.1",
        "127.1",
        "0.0.0.0",  # "this host": Linux connects it to loopback
    ],
)
def test_other_spellings_of_loopback_are_refused(
    host: str, internal: Site, make_desk: MakeDesk
) -> None:
    desk = make_desk(fetch_timeout=FETCH_TIMEOUT)
    url = f"http://{host}:{internal.port}/secret"
    report = desk.ingestor.ingest([url])
    [(name, reason)] = report.failed
    assert name == url and reason.startswith(f"refused to fetch {url}: "), reason
    assert "address (set NEWSDESK_FETCH_ALLOWED_NETWORKS to allow it)" in reason
    assert internal.asked("/secret") == 0 and desk.store.articles() == []


def test_redirect_from_an_allowed_server_to_loopback_is_refused(
    internal: Site, make_desk: MakeDesk
) -> None:
    # The "public" server is 127.0.0.2, which the operator allowed; 127.0.0.1 is not allowed.
    public = _twin({"/go": _redirect(internal.url + "/secret")}, 0)
    try:
        desk = make_desk(fetch_timeout=FETCH_TIMEOUT, fetch_allowed_networks=["127.0.0.2/32"])
        report = desk.ingestor.ingest([public.url + "/go"])
    finally:
        public.close()
    [(_, reason)] = report.failed
    assert reason == (
        f"refused to fetch {public.url}/go (redirected to {internal.url}/secret): "
        "127.0.0.1 is a loopback address (set NEWSDESK_FETCH_ALLOWED_NETWORKS to allow it)"
    )
    assert public.asked("/go") == 1 and internal.asked("/secret") == 0
    assert desk.store.articles() == [] and not desk.corpus.root.exists()


def _same_port_pair(routes: dict[str, Route]) -> tuple[Site, Site]:
    """The internal site on 127.0.0.1 and a public twin on 127.0.0.2 at the same port."""
    for _ in range(20):
        inside = Site("127.0.0.1", {"/story": _page(SECRET_PAGE)})
        try:
            return inside, _twin(routes, inside.port)
        except OSError:
            inside.close()
    pytest.skip("no port free on both 127.0.0.1 and 127.0.0.2")


class Rebinder:
    """A DNS answer that is public for the first lookup and internal afterwards."""

    def __init__(self) -> None:
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        assert host == "news.example"
        self.lookups.append(host)
        return ["127.0.0.2"] if len(self.lookups) == 1 else ["127.0.0.1"]


def test_dns_rebinding_never_reaches_the_second_address(make_desk: MakeDesk) -> None:
    inside, public = _same_port_pair({"/story": _page(ARTICLE_HTML)})
    try:
        desk = make_desk(fetch_timeout=FETCH_TIMEOUT)
        rebinder = Rebinder()
        desk.ingestor.fetcher = Fetcher(["127.0.0.2/32"], FETCH_TIMEOUT, 2**20, resolver=rebinder)
        url = f"http://news.example:{public.port}/story"
        report = desk.ingestor.ingest([url])
    finally:
        inside.close()
        public.close()
    # Checked once, connected to what was checked: the public twin's article, not the secret.
    assert report.failed == [] and len(report.added) == 1, report.failed
    assert "48 million dollars" in report.added[0].text and SECRET not in _stored(
        desk.corpus.root.parent
    )
    assert len(rebinder.lookups) == 1 and public.asked("/story") == 1
    assert inside.asked("/story") == 0


def test_dns_rebinding_on_a_redirect_hop_is_refused(make_desk: MakeDesk) -> None:
    inside, public = _same_port_pair({"/go": _redirect("/story")})
    try:
        desk = make_desk(fetch_timeout=FETCH_TIMEOUT)
        rebinder = Rebinder()
        desk.ingestor.fetcher = Fetcher(["127.0.0.2/32"], FETCH_TIMEOUT, 2**20, resolver=rebinder)
        report = desk.ingestor.ingest([f"http://news.example:{public.port}/go"])
    finally:
        inside.close()
        public.close()
    [(_, reason)] = report.failed
    assert "news.example resolves to 127.0.0.1, a loopback address" in reason
    assert len(rebinder.lookups) == 2 and inside.asked("/story") == 0
    assert desk.store.articles() == []


def test_cloud_metadata_address_is_refused_without_connecting(
    make_desk: MakeDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[object] = []

    def connect(address: object, *args: object, **kwargs: object) -> socket.socket:
        attempts.append(address)
        raise OSError(errno.ENETUNREACH, "no route to the metadata service in a test")

    monkeypatch.setattr(socket, "create_connection", connect)  # how httpcore connects
    desk = make_desk(fetch_timeout=FETCH_TIMEOUT)
    report = desk.ingestor.ingest(["http://169.254.169.254/latest/meta-data/iam/"])
    [(_, reason)] = report.failed
    assert "169.254.169.254 is the cloud metadata address" in reason
    assert attempts == []  # refused before any connection attempt


def test_an_environment_proxy_does_not_bypass_the_check(
    internal: Site, make_desk: MakeDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy the operator allowed would fetch the internal page on our behalf.
    proxy = _twin({}, 0)
    try:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        desk = make_desk(fetch_timeout=FETCH_TIMEOUT, fetch_allowed_networks=["127.0.0.2/32"])
        report = desk.ingestor.ingest([internal.url + "/secret"])
    finally:
        proxy.close()
    [(_, reason)] = report.failed
    assert "127.0.0.1 is a loopback address" in reason
    # What the product would send either way: the proxy asked for the URL, or the page itself.
    assert proxy.asked("/secret") == 0 and internal.asked("/secret") == 0


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fd00::1", "a private address"),
        ("fe80::1%1", "a link-local address"),
        ("169.254.10.10", "a link-local address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("::", "an unspecified address"),
        ("::1", "a loopback address"),
        ("100.64.0.1", "a special-purpose (non-global) address"),
        ("240.0.0.1", "a reserved address"),
        ("64:ff9b::a00:1", "a private address"),  # NAT64 of 10.0.0.1
        ("2002:c0a8:101::1", "a private address"),  # 6to4 of 192.168.1.1
        ("fec0::1", "a site-local address"),
        ("8.8.8.8", ""),
        ("2606:4700::1111", ""),
        ("64:ff9b::808:808", ""),  # NAT64 of a public address: fine
    ],
)
def test_address_policy(address: str, reason: str) -> None:
    assert AddressPolicy().refusal(address) == reason
    assert AddressPolicy(["0.0.0.0/0", "::/0"]).refusal(address) == ""


# -- deadlines --------------------------------------------------------------------------------


class Trickler:
    """A raw TCP server that sends a status line, then header bytes one by one, forever."""

    def __init__(self, body: bool = False) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.body = body
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.recv(65536)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
            conn.sendall(head + (b"Content-Length: 100000\r\n\r\n<p>" if self.body else b""))
            for _ in range(600):  # 60 s at most, then the test has failed anyway
                if self.stop.wait(0.1):
                    return
                try:
                    conn.sendall(b"x" if self.body else b"X-Slow: 1\r\n"[:1])
                except OSError:
                    return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.mark.parametrize("body", [False, True], ids=["headers", "body"])
def test_a_trickling_server_is_cut_off_at_the_fetch_timeout(body: bool) -> None:
    server = Trickler(body)
    fetcher = Fetcher(["127.0.0.1/32"], timeout=1.0, max_bytes=2**20)
    started = time.monotonic()
    try:
        with pytest.raises(FetchError, match=r"timed out after 1 s"):
            fetcher.fetch(f"http://127.0.0.1:{server.port}/")
    finally:
        server.close()
    assert time.monotonic() - started < 30  # the server trickles for 60 s


def test_a_hanging_dns_lookup_is_bound_by_the_fetch_timeout() -> None:
    answered = threading.Event()

    def hang(host: str, port: int) -> list[str]:
        answered.wait(60)  # until the test is over
        return ["127.0.0.1"]

    fetcher = Fetcher(timeout=0.5, max_bytes=2**20, resolver=hang)
    started = time.monotonic()
    try:
        with pytest.raises(FetchError, match=r"timed out after 0.5 s"):
            fetcher.fetch("http://slow-dns.example/")
        assert time.monotonic() - started < 30  # the lookup hangs for 60 s
    finally:
        answered.set()


# -- bombs ------------------------------------------------------------------------------------

ALIAS_BOMB = """---
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
title: [*g,*g,*g,*g,*g,*g,*g,*g,*g]
---
The body of a harmless looking article.
"""


def test_yaml_alias_bomb_is_refused_quickly_with_little_memory(
    tmp_path: Path, make_desk: MakeDesk
) -> None:
    bomb = tmp_path / "bomb.md"
    bomb.write_text(ALIAS_BOMB, encoding="utf-8")
    assert len(ALIAS_BOMB) < 500
    desk = make_desk()
    ingestor = desk.ingestor  # its imports are not the bomb's memory (this test may run first)
    load_front_matter("title: warm")
    tracemalloc.start()
    started = time.monotonic()
    try:
        report = ingestor.ingest([bomb])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    [(_, reason)] = report.failed
    assert "front matter uses a YAML anchor or alias" in reason
    # Expanded, it would be 43 million strings: minutes and gigabytes.
    assert time.monotonic() - started < 30 and peak < 5 * 2**20
    assert desk.store.articles() == []


def test_an_overlong_title_is_cut_and_said_so(tmp_path: Path, make_desk: MakeDesk) -> None:
    page = tmp_path / "long.md"
    page.write_text(
        f"---\ntitle: {'Budget ' * 5000}\nsource: {'X' * 1000}\n---\n"
        "The council approved the budget on Tuesday.\n",
        encoding="utf-8",
    )
    report = make_desk().ingestor.ingest([page])
    [article] = report.added
    assert len(article.title) == 300 and article.title.endswith("…")
    assert len(article.source) == 200
    assert (str(page), "title cut to 300 characters (was 34,999)") in report.notes
    assert (str(page), "source cut to 200 characters (was 1,000)") in report.notes


def test_the_cli_says_what_was_cut(
    tmp_path: Path,
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    page = tmp_path / "long.md"
    page.write_text(f"---\ntitle: {'Budget ' * 100}\n---\nThe council met.\n", encoding="utf-8")
    code, output = _cli(["ingest", str(page)], tmp_path, embedder, monkeypatch, capsys)
    assert code == 0 and f"note      {page}: title cut to 300 characters (was 699)" in output


def xml_bomb_docx(xml_mb: int = 32) -> bytes:
    """A ~100 KB DOCX whose document.xml is `xml_mb` MB of nested, repetitive markup."""
    run = b"<w:p><w:r><w:t>lol</w:t></w:r></w:p>"
    body = run * (xml_mb * 2**20 // len(run))
    document = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        b"<w:body>" + body + b"</w:body></w:document>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", document)
    return buffer.getvalue()


def test_docx_xml_bomb_is_refused_quickly_with_little_memory(make_desk: MakeDesk) -> None:
    data = xml_bomb_docx()
    assert len(data) < 200_000
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(
            InputError,
            match=r"DOCX holds 32 MB of XML \(at most 8 MB\): refused as a possible zip bomb",
        ):
            sources.from_bytes("report.docx", data, 20 * 2**20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 10 and peak < 5 * 2**20  # parsed: 32 MB of XML


def test_docx_xml_bomb_upload_through_ingest_stores_nothing(
    tmp_path: Path, make_desk: MakeDesk
) -> None:
    path = tmp_path / "report.docx"
    path.write_bytes(xml_bomb_docx())
    desk = make_desk()
    report = desk.ingestor.ingest([path])
    [(_, reason)] = report.failed
    assert "MB of XML" in reason and desk.store.articles() == []


# -- hidden page text --------------------------------------------------------------------------

HIDDEN = [
    "<p hidden>The hidden-attribute secret is {s}.</p>",
    '<div hidden="hidden"><p>The hidden div secret is {s} for sure.</p></div>',
    "<template><p>The template secret is {s} in a template element.</p></template>",
    '<p style="DISPLAY : none">The styled secret is {s} and never shown to readers.</p>',
    '<p style="visibility:hidden">The invisible secret is {s} in this paragraph.</p>',
    '<p aria-hidden="true">The screen-reader-hidden secret is {s} in this paragraph.</p>',
    "<p>Visible words of a paragraph that goes on. <span hidden>Inline {s}.</span> The end.</p>",
]


@pytest.mark.parametrize(
    "hidden", HIDDEN, ids=["p", "div", "template", "style", "visibility", "aria", "span"]
)
def test_hidden_page_text_is_not_indexed(hidden: str, make_desk: MakeDesk, tmp_path: Path) -> None:
    page = ARTICLE_HTML.replace(
        "<p>Engineers replaced", hidden.format(s=SECRET) + "<p>Engineers replaced"
    )
    path = tmp_path / "page.html"
    path.write_text(page, encoding="utf-8")
    desk = make_desk()
    report = desk.ingestor.ingest([path])
    [article] = report.added
    assert "312 steel cables" in article.text and "48 million dollars" in article.text
    assert "secret" not in article.text.lower() and SECRET not in _stored(tmp_path)
    assert all(SECRET not in p.chunk.text for p in desk.search("AWS_SECRET_ACCESS_KEY", k=5))


def test_until_found_sections_are_kept(tmp_path: Path) -> None:
    # hidden="until-found" is collapsed content a reader can expand: part of the article.
    extra = '<p hidden="until-found">The collapsed section says the toll stays at two dollars.</p>'
    page = ARTICLE_HTML.replace("<p>Engineers replaced", extra + "<p>Engineers replaced")
    [article] = parse(sources.from_bytes("page.html", page.encode(), 2**20)).articles
    assert "toll stays at two dollars" in article.text


def test_blocked_address_is_an_input_error() -> None:
    # The CLI prints it as one line and exits 1; Telegram replies with it: no traceback.
    assert issubclass(BlockedAddress, InputError)
