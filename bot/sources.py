"""Raw documents: bytes plus a name and a media type, from a path or a URL, with size checks.

A local JSONL file is the one exception to "bytes in memory": it is read line by line at parse
time, and the size limit applies to each line (one article), not to the file.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import httpx

from bot.errors import EmptyDocument, FetchError, InputError, TooLarge, UnsupportedFormat
from bot.fetch import Fetcher, mb
from bot.i18n import N_, Said

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
# A DOCX whose parts would inflate past these is refused (zip and XML bombs). A long article
# with photos is a few MB of XML and some MB of images; python-docx holds every part in memory
# and lxml needs several times an XML part's size to parse it.
MAX_DOCX_UNZIPPED = 32 * 2**20
MAX_DOCX_XML = 8 * 2**20
MAX_DOCX_PARTS = 1000
HEAD = 8192  # bytes looked at to tell text from binary
TOO_LARGE = N_("file is {size} MB, over the {limit} MB limit")
BINARY = N_("looks like a binary file, not {kind} text")


@dataclass(frozen=True)
class Source:
    """A document as it arrived: where from, what kind, and its bytes."""

    name: str
    kind: str
    data: bytes
    url: str = ""
    path: Path | None = None
    # A local JSONL read from `path` line by line at parse time (`data` is then empty), each
    # line at most `max_line_bytes`.
    streamed: bool = False
    max_line_bytes: int = 0

    def open(self) -> BinaryIO:
        """The document's bytes as a file: from disk when streamed, else from memory."""
        if self.streamed and self.path is not None:
            return self.path.open("rb")
        return BytesIO(self.data)

    def lines(self) -> Iterator[tuple[int, bytes | None, int]]:
        """(number, line, size) for each line; `line` is None when over `max_line_bytes`
        (skipped without being held in memory)."""
        limit = self.max_line_bytes if self.streamed else 0
        try:
            with self.open() as handle:
                number = 0
                while line := handle.readline(limit + 1) if limit else handle.readline():
                    number += 1
                    if limit and len(line) > limit and not line.endswith(b"\n"):
                        size = len(line)
                        while line and not line.endswith(b"\n"):  # skip the rest, unkept
                            line = handle.readline(2**20)
                            size += len(line)
                        yield number, None, size
                    else:
                        yield number, line, len(line)
        except OSError as exc:  # the file vanished or became unreadable while being read
            raise InputError(Said("cannot read file: {error}", error=exc.strerror or exc)) from exc

    def count_lines(self) -> int:
        """Non-blank lines (articles to expect in a JSONL), read in blocks."""
        count, filled = 0, False  # filled: the line being read has a non-blank byte
        try:
            with self.open() as handle:
                while block := handle.read(2**18):
                    *ended, rest = block.split(b"\n")
                    for piece in ended:
                        count += filled or bool(piece.strip())
                        filled = False
                    filled = filled or bool(rest.strip())
        except OSError as exc:
            raise InputError(Said("cannot read file: {error}", error=exc.strerror or exc)) from exc
        return count + filled


def kind_of(name: str, media_type: str = "") -> str:
    """The parse kind for a file name (by suffix) or media type; raise if unsupported."""
    suffix = Path(name).suffix.lower()
    if suffix in KINDS:
        return KINDS[suffix]
    base = media_type.split(";")[0].strip().lower()
    if base in MEDIA_KINDS:
        return MEDIA_KINDS[base]
    supported = ", ".join(sorted({s for s in KINDS if s not in (".markdown", ".text", ".htm")}))
    raise UnsupportedFormat(
        Said(
            "unsupported file type {kind}: use {supported}",
            kind=suffix or base or "(none)",
            supported=supported,
        )
    )


def check_bytes(name: str, kind: str, data: bytes, max_bytes: int) -> None:
    """Refuse empty, oversize, binary-as-text and zip-bomb documents before parsing."""
    if len(data) > max_bytes:
        raise TooLarge(Said(TOO_LARGE, size=mb(len(data)), limit=mb(max_bytes)))
    if not data.strip():
        raise EmptyDocument(Said("file is empty"))
    if kind in ("markdown", "text", "html", "jsonl") and b"\x00" in data[:HEAD]:
        raise InputError(Said(BINARY, kind=kind))
    if kind == "pdf" and not data.lstrip().startswith(b"%PDF"):
        raise InputError(Said("not a PDF file (no %PDF header)"))
    if kind == "docx":
        check_docx_zip(data)


def check_docx_zip(data: bytes) -> None:
    """Refuse a DOCX that is not a zip with a document, or inflates past what an article needs.

    zipfile stops each member at its declared size, so the declared sizes bound the memory.
    """
    try:
        with zipfile.ZipFile(BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise InputError(Said("not a valid DOCX file (corrupt zip container)")) from exc
    if "word/document.xml" not in {i.filename for i in infos}:
        raise InputError(Said("not a valid DOCX file (no word/document.xml)"))
    if len(infos) > MAX_DOCX_PARTS:
        raise InputError(
            Said(
                "DOCX has {parts} parts (at most {limit}): refused as a possible zip bomb",
                parts=f"{len(infos):,}",
                limit=f"{MAX_DOCX_PARTS:,}",
            )
        )
    total = sum(i.file_size for i in infos)
    xml = sum(i.file_size for i in infos if i.filename.lower().endswith((".xml", ".rels")))
    if xml > MAX_DOCX_XML:
        raise InputError(
            Said(
                "DOCX holds {size} MB of XML (at most {limit} MB): refused as a possible zip bomb",
                size=mb(xml),
                limit=mb(MAX_DOCX_XML),
            )
        )
    if total > MAX_DOCX_UNZIPPED:
        raise InputError(
            Said(
                "DOCX expands to {size} MB (at most {limit} MB): refused as a possible zip bomb",
                size=mb(total),
                limit=mb(MAX_DOCX_UNZIPPED),
            )
        )


def from_path(path: Path, max_bytes: int) -> Source:
    """Read a local file, checking type and size before loading it whole.

    A JSONL file is not loaded: it is streamed at parse time, limited per line.
    """
    kind = kind_of(path.name)
    try:
        if kind == "jsonl":
            return _streamed(path, max_bytes)
        size = path.stat().st_size
        if size > max_bytes:
            raise TooLarge(Said(TOO_LARGE, size=mb(size), limit=mb(max_bytes)))
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(Said("cannot read file: {error}", error=exc.strerror or exc)) from exc
    check_bytes(path.name, kind, data, max_bytes)
    return Source(name=path.name, kind=kind, data=data, path=path)


def _streamed(path: Path, max_line_bytes: int) -> Source:
    with path.open("rb") as handle:
        head = handle.read(HEAD)
        if not head.strip() and len(head) < HEAD:
            raise EmptyDocument(Said("file is empty"))
    if b"\x00" in head:
        raise InputError(Said(BINARY, kind="jsonl"))
    return Source(
        name=path.name,
        kind="jsonl",
        data=b"",
        path=path,
        streamed=True,
        max_line_bytes=max_line_bytes,
    )


def from_bytes(name: str, data: bytes, max_bytes: int, media_type: str = "") -> Source:
    """Wrap bytes received another way (a Telegram upload, pasted text)."""
    kind = kind_of(name, media_type)
    check_bytes(name, kind, data, max_bytes)
    return Source(name=name, kind=kind, data=data)


def from_url(url: str, fetcher: Fetcher) -> Source:
    """Download a web page or document through the guarded fetcher (address checks, deadline,
    size limit), and tell its kind by its bytes, name or media type."""
    fetched = fetcher.fetch(url)
    if not fetched.data.strip():
        raise FetchError(Said("{url} returned an empty page", url=url))
    try:
        name = Path(httpx.URL(fetched.url).path).name or "page.html"
    except httpx.InvalidURL:
        name = "page.html"
    kind = sniff(fetched.data) or kind_of(name, fetched.media_type)
    check_bytes(name, kind, fetched.data, fetcher.max_bytes)
    return Source(name=name, kind=kind, data=fetched.data, url=fetched.url)


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
