"""Raw documents: bytes plus a name and a media type, from a path or a URL, with size checks."""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import httpx

from bot.errors import EmptyDocument, FetchError, InputError, TooLarge, UnsupportedFormat

# File suffix -> the kind parse.py understands.
KINDS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".jsonl": "jsonl",
}
MEDIA_KINDS = {
    "text/markdown": "markdown",
    "text/plain": "text",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/jsonl": "jsonl",
    "application/x-ndjson": "jsonl",
}
# A DOCX whose parts would inflate past this is refused (zip bombs).
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024
USER_AGENT = "Newsdesk/0.1 (+article ingest)"


@dataclass(frozen=True)
class Source:
    """A document as it arrived: where from, what kind, and its bytes."""

    name: str
    kind: str
    data: bytes
    url: str = ""
    path: Path | None = None


def kind_of(name: str, media_type: str = "") -> str:
    """The parse kind for a file name (by suffix) or media type; raise if unsupported."""
    suffix = Path(name).suffix.lower()
    if suffix in KINDS:
        return KINDS[suffix]
    base = media_type.split(";")[0].strip().lower()
    if base in MEDIA_KINDS:
        return MEDIA_KINDS[base]
    supported = ", ".join(sorted({s for s in KINDS if s not in (".markdown", ".text", ".htm")}))
    raise UnsupportedFormat(f"unsupported file type {suffix or base or '(none)'}: use {supported}")


def check_bytes(name: str, kind: str, data: bytes, max_bytes: int) -> None:
    """Refuse empty, oversize, binary-as-text and zip-bomb documents before parsing."""
    if len(data) > max_bytes:
        raise TooLarge(f"file is {_mb(len(data))} MB, over the {_mb(max_bytes)} MB limit")
    if not data.strip():
        raise EmptyDocument("file is empty")
    if kind in ("markdown", "text", "html", "jsonl") and b"\x00" in data[:8192]:
        raise InputError(f"looks like a binary file, not {kind} text")
    if kind == "pdf" and not data.lstrip().startswith(b"%PDF"):
        raise InputError("not a PDF file (no %PDF header)")
    if kind == "docx":
        check_docx_zip(data)


def check_docx_zip(data: bytes) -> None:
    try:
        with zipfile.ZipFile(BytesIO(data)) as zf:
            infos = zf.infolist()
    except zipfile.BadZipFile as exc:
        raise InputError("not a valid DOCX file (corrupt zip container)") from exc
    if "word/document.xml" not in {i.filename for i in infos}:
        raise InputError("not a valid DOCX file (no word/document.xml)")
    if sum(i.file_size for i in infos) > MAX_UNZIPPED_BYTES:
        raise InputError("DOCX expands to more than 200 MB: refused as a possible zip bomb")


def from_path(path: Path, max_bytes: int) -> Source:
    """Read a local file, checking type and size before loading it whole."""
    kind = kind_of(path.name)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise TooLarge(f"file is {_mb(size)} MB, over the {_mb(max_bytes)} MB limit")
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}") from exc
    check_bytes(path.name, kind, data, max_bytes)
    return Source(name=path.name, kind=kind, data=data, path=path)


def from_bytes(name: str, data: bytes, max_bytes: int, media_type: str = "") -> Source:
    """Wrap bytes received another way (a Telegram upload, pasted text)."""
    kind = kind_of(name, media_type)
    check_bytes(name, kind, data, max_bytes)
    return Source(name=name, kind=kind, data=data)


def from_url(url: str, max_bytes: int, timeout: float) -> Source:
    """Download a web page or document, streaming so an endless body stops at the limit.

    `timeout` bounds each network wait and the whole download, so a server that sends a
    byte now and then cannot hold an ingest forever.
    """
    if not url.startswith(("http://", "https://")):
        raise FetchError(f"not an http(s) URL: {url}")
    deadline = time.monotonic() + timeout
    try:
        with (
            httpx.Client(
                follow_redirects=True, timeout=timeout, headers={"User-Agent": USER_AGENT}
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                raise FetchError(
                    f"{url} answered HTTP {response.status_code} {response.reason_phrase}".rstrip()
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise TooLarge(
                    f"{url} is {_mb(int(declared))} MB, over the {_mb(max_bytes)} MB limit"
                )
            chunks: list[bytes] = []
            total = 0
            for part in response.iter_bytes():
                total += len(part)
                if total > max_bytes:
                    raise TooLarge(f"{url} is over the {_mb(max_bytes)} MB limit")
                if time.monotonic() > deadline:
                    raise FetchError(f"{url} timed out after {timeout:g} s (download too slow)")
                chunks.append(part)
            media_type = response.headers.get("content-type", "")
            final_url = str(response.url)
    except httpx.TimeoutException as exc:
        raise FetchError(f"{url} timed out after {timeout:g} s") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"cannot fetch {url}: {exc}") from exc
    except (httpx.InvalidURL, UnicodeError) as exc:  # neither is an httpx.HTTPError
        raise FetchError(f"not a valid URL: {url} ({exc})") from exc
    data = b"".join(chunks)
    if not data.strip():
        raise FetchError(f"{url} returned an empty page")
    name = Path(httpx.URL(final_url).path).name or "page.html"
    kind = sniff(data) or kind_of(name, media_type)
    check_bytes(name, kind, data, max_bytes)
    return Source(name=name, kind=kind, data=data, url=final_url)


def sniff(data: bytes) -> str:
    """The kind a download's bytes show (a PDF, a web page), whatever its name or media type.

    Servers often send documents as application/octet-stream, or a login page at a .pdf URL.
    """
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"%PDF"):
        return "pdf"
    lowered = head.lower()
    if head.startswith(b"<") and (b"<html" in lowered or b"<!doctype html" in lowered):
        return "html"
    return ""


def _mb(n: int) -> str:
    """Bytes as the MiB that `max_file_mb` counts in: 20971520 -> "20", 524288 -> "0.5"."""
    return f"{n / 2**20:.1f}".removesuffix(".0")
