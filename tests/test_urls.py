"""URLs on the command line: a local web server with a news page, documents and bad answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import MakeDesk
from documents import pdf_bytes

from bot import cli
from bot.config import Settings
from bot.desk import Desk
from bot.embed import Embedder

ARTICLE_PATH = "/news/2025/06/riverside-water-plant"
# A news page as a CMS serves it: cookie banner, navigation, ads, scripts, JSON-LD, a byline
# with two authors, related links, comments. {base} is the test server's address.
NEWS_PAGE = """<!DOCTYPE html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Riverside water plant to double capacity by 2027 | The Valley Courier</title>
<meta name="description" content="The Riverside works will be rebuilt for 86 million pounds.">
<meta property="og:type" content="article">
<meta property="og:title" content="Riverside water plant to double capacity by 2027">
<meta property="og:site_name" content="The Valley Courier">
<meta property="og:url" content="{base}/news/2025/06/riverside-water-plant">
<meta property="article:published_time" content="2025-06-03T07:30:00+01:00">
<meta property="article:section" content="Local">
<meta name="author" content="Priya Castellano">
<link rel="canonical" href="{base}/news/2025/06/riverside-water-plant">
<script type="application/ld+json">
{{"@context": "https://schema.org", "@type": "NewsArticle",
 "headline": "Riverside water plant to double capacity by 2027",
 "datePublished": "2025-06-03T07:30:00+01:00", "dateModified": "2025-06-03T11:05:00+01:00",
 "author": [{{"@type": "Person", "name": "Priya Castellano"}},
            {{"@type": "Person", "name": "Tomasz Wierzbicki"}}],
 "publisher": {{"@type": "Organization", "name": "The Valley Courier",
   "logo": {{"@type": "ImageObject", "url": "{base}/static/logo.png"}}}},
 "isAccessibleForFree": true}}
</script>
<script async src="https://ads.example-adnetwork.com/tag.js"></script>
<script>window.dataLayer = window.dataLayer || [];
function gtag(){{dataLayer.push(arguments);}} gtag('config', 'UA-000000-1');</script>
<style>.ad-slot {{ min-height: 250px; }} body {{ font-family: Georgia, serif; }}</style>
</head>
<body>
<div id="cookie-banner">We use cookies to improve your experience.
 <button>Accept all</button> <button>Manage settings</button></div>
<header class="site-header">
  <a class="logo" href="/">The Valley Courier</a>
  <nav><ul><li><a href="/news">News</a></li><li><a href="/sport">Sport</a></li>
  <li><a href="/business">Business</a></li><li><a href="/opinion">Opinion</a></li>
  <li><a href="/weather">Weather</a></li><li><a href="/subscribe">Subscribe</a></li></ul></nav>
</header>
<div class="ad-slot" id="leaderboard">
  <iframe src="https://ads.example-adnetwork.com/frame?slot=top"></iframe>Advertisement</div>
<main>
<article class="story">
  <h1 class="headline">Riverside water plant to double capacity by 2027</h1>
  <p class="byline">By <a rel="author" href="/authors/priya-castellano">Priya Castellano</a>
   and Tomasz Wierzbicki</p>
  <time datetime="2025-06-03T07:30:00+01:00">3 June 2025</time>
  <div class="story-body">
    <p>The Riverside water treatment works will be rebuilt to double its capacity by 2027, the
    regional utility Tarn Valley Water announced on Tuesday, in a project expected to cost
    86 million pounds.</p>
    <p>The plant, which opened in 1964, currently treats about 40 million litres a day for
    roughly 180,000 homes. Engineers said the new filtration halls would raise that to
    80 million litres and cut the number of boil-water notices issued during summer droughts.</p>
    <div class="ad-slot inline-ad">Advertisement
      <a href="https://ads.example-adnetwork.com/click?id=77">Win a holiday in Portugal</a></div>
    <p>Utility chief executive Marguerite Osei said the works had reached the end of their
    design life. "We have patched this site for twenty years. Rebuilding it is cheaper than
    keeping it alive," she told reporters at the plant.</p>
    <p>Construction is due to start in September. The company said households would see an
    average increase of 14 pounds a year on water bills from April 2026 to help pay for the
    scheme, a figure the regulator still has to approve.</p>
    <p>Residents of Millbrook Lane, which borders the site, have asked for a lorry route that
    avoids the village school. The council's planning committee will consider the application
    on 17 July.</p>
  </div>
  <aside class="newsletter"><h3>Get the morning briefing</h3>
    <form><input type="email" placeholder="Your email"><button>Sign up</button></form></aside>
</article>
<section class="related"><h2>Related stories</h2><ul>
  <li><a href="/news/2025/05/hosepipe-ban">Hosepipe ban lifted after wet May</a></li>
  <li><a href="/news/2025/04/reservoir-levels">Reservoir levels at five-year high</a></li>
</ul></section>
<section class="comments"><h2>Comments (12)</h2><p>Great news, about time! - Dave</p></section>
</main>
<footer><p>&copy; 2025 The Valley Courier Ltd. All rights reserved.</p>
<a href="/privacy">Privacy policy</a> <a href="/terms">Terms</a> <a href="/contact">Contact</a>
</footer>
<script>(function(){{var s=document.createElement('script');
s.src='https://tracker.example-metrics.net/t.js';document.body.appendChild(s);}})();</script>
</body>
</html>
"""
LOGIN_PAGE = """<!DOCTYPE html><html lang="en"><head><title>Sign in | The Valley Courier</title>
</head><body>
<nav><a href="/">Home</a> <a href="/news">News</a> <a href="/sport">Sport</a></nav>
<main><h1>Sign in to your account</h1>
<form action="/login" method="post"><label>Email <input name="email"></label>
<label>Password <input type="password" name="password"></label><button>Sign in</button></form>
<p><a href="/reset">Forgot your password?</a></p>
<p>New here? <a href="/register">Create an account</a></p></main>
<footer><a href="/privacy">Privacy</a> <a href="/terms">Terms</a></footer></body></html>
"""
PAYWALL_PAGE = """<!DOCTYPE html><html lang="en"><head>
<title>Budget row deepens | The Valley Courier</title>
<meta property="og:site_name" content="The Valley Courier">
<script type="application/ld+json">
{"@context": "https://schema.org", "@type": "NewsArticle", "headline": "Budget row deepens",
 "isAccessibleForFree": false}
</script></head><body>
<article><h1>Budget row deepens</h1>
<p>The council's budget dispute deepened on Tuesday evening.</p>
<div class="paywall"><p>Subscribe to continue reading. Already a subscriber? Log in.</p></div>
</article></body></html>
"""
REPORT_PDF = pdf_bytes(
    [
        "The harbour authority handled 2.4 million tonnes of cargo in 2024.",
        "Container traffic rose by nine per cent on the year before.",
    ],
    "Harbour authority annual report 2024",
)

Handler = Callable[["_Handler"], None]
SLOW = 40.0  # seconds the slow and dripping pages take, far beyond the 2 s fetch timeout
MAX_REQUESTS = 200  # the server answers 503 after this many: a runaway client stops here


def _send(req: _Handler, status: int, body: bytes, media_type: str = "text/html") -> None:
    req.send_response(status)
    req.send_header("Content-Type", media_type)
    req.send_header("Content-Length", str(len(body)))
    req.end_headers()
    req.wfile.write(body)


def _article(req: _Handler) -> None:
    _send(req, 200, NEWS_PAGE.format(base=req.base).encode(), "text/html; charset=utf-8")


def _redirect(req: _Handler) -> None:
    req.send_response(302)
    req.send_header("Location", ARTICLE_PATH)
    req.send_header("Content-Length", "0")
    req.end_headers()


def _loop(req: _Handler) -> None:
    req.send_response(301)
    req.send_header("Location", "/loop")
    req.send_header("Content-Length", "0")
    req.end_headers()


def _slow(req: _Handler) -> None:
    time.sleep(SLOW)  # far longer than the 2 s fetch timeout: the client is gone by now
    _send(req, 200, NEWS_PAGE.format(base=req.base).encode())


def _drip(req: _Handler) -> None:
    """A byte every 0.2 s: never idle long enough for a read timeout, never finished."""
    req.send_response(200)
    req.send_header("Content-Type", "text/html")
    req.end_headers()
    req.wfile.write(b"<html><body><p>")
    for _ in range(int(SLOW / 0.2)):  # gives up after SLOW seconds
        time.sleep(0.2)
        req.wfile.write(b"x")
        req.wfile.flush()


def _endless(req: _Handler) -> None:
    """No Content-Length and a body that does not end (stops after 8 MB at most)."""
    req.send_response(200)
    req.send_header("Content-Type", "text/html")
    req.end_headers()
    req.wfile.write(b"<html><body><p>")
    block = b"All work and no play makes a long page. " * 1600
    for _ in range(8 * 2**20 // len(block)):
        req.wfile.write(block)


def _declared_huge(req: _Handler) -> None:
    req.send_response(200)
    req.send_header("Content-Type", "application/pdf")
    req.send_header("Content-Length", str(50 * 2**20))
    req.end_headers()
    req.wfile.write(b"%PDF-1.4\n")


ROUTES: dict[str, Handler] = {
    ARTICLE_PATH: _article,
    "/go/riverside": _redirect,
    "/loop": _loop,
    "/empty": lambda req: _send(req, 200, b""),
    "/login": lambda req: _send(req, 200, LOGIN_PAGE.encode()),
    "/premium/budget-row": lambda req: _send(req, 200, PAYWALL_PAGE.encode()),
    "/slow": _slow,
    "/drip": _drip,
    "/endless": _endless,
    "/huge-file": _declared_huge,
    "/reports/annual-2024": lambda req: _send(req, 200, REPORT_PDF, "application/pdf"),
    "/download/8812": lambda req: _send(req, 200, REPORT_PDF, "application/octet-stream"),
    "/data.zip": lambda req: _send(req, 200, b"PK\x03\x04" + b"\x00" * 64, "application/zip"),
}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def do_GET(self) -> None:
        self.server.requests += 1
        route = ROUTES.get(self.path.split("?")[0])
        try:
            if self.server.requests > MAX_REQUESTS:
                _send(self, 503, b"too many requests")
            elif route is None:
                _send(self, 404, b"<html><body><h1>Not found</h1></body></html>")
            else:
                route(self)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: a size limit or a timeout did its job

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a sleeping handler never holds up the end of the tests
    requests = 0


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The base URL of a web server on 127.0.0.1 (a free port), for this module's tests."""
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host!s}:{port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def web_desk(make_desk: MakeDesk, fetch_timeout: float = 30.0) -> Desk:
    """Fetches that must succeed get ample time on a loaded machine; the bad-URL test sets the
    short timeout that its slow and dripping pages must hit."""
    return make_desk(
        fetch_timeout=fetch_timeout, max_file_mb=0.5, fetch_allowed_networks=["127.0.0.1/32"]
    )


def test_news_page_is_ingested_with_metadata_and_cited(make_desk: MakeDesk, site: str) -> None:
    desk = web_desk(make_desk)
    url = site + ARTICLE_PATH
    report = desk.ingestor.ingest([url])
    assert report.failed == [] and len(report.added) == 1
    article = report.added[0]
    assert article.title == "Riverside water plant to double capacity by 2027"
    assert article.source == "The Valley Courier"
    assert str(article.published) == "2025-06-03"
    assert article.authors == ["Priya Castellano", "Tomasz Wierzbicki"]
    assert article.url == url and article.language == "en"
    # The body is the story: no headline repeated, no banner, ads, newsletter or comments.
    assert article.text.startswith("The Riverside water treatment works will be rebuilt")
    assert article.text.rstrip().endswith("on 17 July.")
    for junk in ("cookies", "Advertisement", "Portugal", "Sign up", "Related", "Dave", "gtag"):
        assert junk not in article.text
    # Saved in corpus/ with its metadata, and indexed.
    assert article.path is not None and desk.corpus.contains(article.path)
    saved = desk.corpus.read(article.path)
    assert (saved.id, saved.url, saved.source, saved.authors) == (
        article.id,
        url,
        "The Valley Courier",
        ["Priya Castellano", "Tomasz Wierzbicki"],
    )
    assert "url: " + url in article.path.read_text(encoding="utf-8")
    row = desk.store.article(article.id)
    assert row is not None and row.state == "ready" and row.n_chunks >= 1

    answer = desk.ask("How much will rebuilding the Riverside water treatment works cost?")
    assert not answer.abstained and answer.citations
    cited = {c.article_id: c for c in answer.citations}
    assert article.id in cited
    citation = cited[article.id]
    assert citation.url == url and citation.source == "The Valley Courier"
    assert article.text[citation.start : citation.end] == citation.quote
    assert "86 million pounds" in answer.text

    # The same story again, directly or through a redirect, changes nothing.
    again = desk.ingestor.ingest([url, site + "/go/riverside"])
    assert again.failed == [] and not again.added and not again.updated
    assert [a.id for a in again.unchanged] == [article.id, article.id]
    assert len(list(desk.corpus.paths())) == 1 and len(desk.store.articles()) == 1


def test_redirect_is_followed_to_the_article(make_desk: MakeDesk, site: str) -> None:
    desk = web_desk(make_desk)
    report = desk.ingestor.ingest([site + "/go/riverside"])
    assert report.failed == [] and len(report.added) == 1
    assert report.added[0].url == site + ARTICLE_PATH  # where the story lives, not the link


@pytest.mark.parametrize("path", ["/reports/annual-2024", "/download/8812"])
def test_pdf_at_a_url_without_extension(make_desk: MakeDesk, site: str, path: str) -> None:
    desk = web_desk(make_desk)
    report = desk.ingestor.ingest([site + path])
    assert report.failed == [] and len(report.added) == 1
    article = report.added[0]
    assert article.title == "Harbour authority annual report 2024"
    assert "2.4 million tonnes" in article.text and article.url == site + path
    assert desk.store.article(article.id) is not None


BAD = {
    "/empty": "empty page",
    "/missing-page": "HTTP 404 Not Found",
    "/login": "no article text found in the page",
    "/premium/budget-row": "paywalled",
    "/slow": "timed out after 2 s",
    "/drip": "timed out after 2 s",
    "/endless": "over the 0.5 MB limit",
    "/huge-file": "50 MB, over the 0.5 MB limit",
    "/loop": "redirects",
    "/data.zip": "unsupported file type",
}


def test_bad_urls_fail_with_a_reason_and_leave_no_trace(make_desk: MakeDesk, site: str) -> None:
    desk = web_desk(make_desk, fetch_timeout=2.0)
    urls = [site + path for path in BAD]
    odd = ["http://[::1/", "http://xn--a.com/", "http://127.0.0.1:1/", "ftp://127.0.0.1/x"]
    started = time.monotonic()
    report = desk.ingestor.ingest(urls + odd)
    elapsed = time.monotonic() - started
    reasons = dict(report.failed)
    assert sorted(reasons) == sorted(urls + odd) and len(report.failed) == len(urls + odd)
    for path, expected in BAD.items():
        assert expected in reasons[site + path], (path, reasons[site + path])
    assert "not a valid URL" in reasons["http://[::1/"]
    assert "not a valid URL" in reasons["http://xn--a.com/"]
    assert "Connection refused" in reasons["http://127.0.0.1:1/"]
    assert "no such file" in reasons["ftp://127.0.0.1/x"]
    for reason in reasons.values():
        assert "\n" not in reason and len(reason) < 300, reason
    assert not report.added and not report.updated and not report.unchanged
    assert list(desk.corpus.paths()) == [] and not desk.corpus.root.exists()
    assert desk.store.articles() == [] and desk.store.vector_ids() == set()
    # Waiting the slow and dripping pages out would take 2 * SLOW seconds.
    assert elapsed < SLOW, f"bad URLs took {elapsed:.1f} s with a 2 s fetch timeout"


def test_cli_ingest_reports_good_and_bad_urls(
    site: str,
    tmp_path: Path,
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NEWSDESK_CORPUS_DIR", str(tmp_path / "corpus"))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("NEWSDESK_FETCH_TIMEOUT", "30")  # it must fetch the article
    monkeypatch.setenv("NEWSDESK_FETCH_ALLOWED_NETWORKS", "127.0.0.1/32")
    # The CLI's own Desk, from the environment; only the loaded model is shared.
    monkeypatch.setattr(cli, "_desk", lambda: Desk(Settings(_env_file=None), embedder=embedder))  # type: ignore[call-arg]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["ingest", site + ARTICLE_PATH, site + "/missing-page"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1
    assert out.strip().splitlines()[-1] == "1 added, 0 unchanged, 0 updated, 1 failed"
    assert f"failed    {site}/missing-page: {site}/missing-page answered HTTP 404" in err
    assert "Traceback" not in out + err
    assert len(list((tmp_path / "corpus").rglob("*.md"))) == 1
