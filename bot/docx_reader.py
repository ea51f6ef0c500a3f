"""The text of a DOCX file, read as a stream: its body paragraphs, title and author.

python-docx builds the whole document tree and runs an XPath query per paragraph and run,
which took minutes on a few MB of crafted XML. Here word/document.xml is streamed from the zip
with lxml's iterparse, each finished paragraph is cleared, and entities and DTDs are never
loaded: time and memory grow with the text, not with the markup.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from io import BytesIO
from typing import IO

from lxml import etree

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
DC = "{http://purl.org/dc/elements/1.1/}"
# Run content that stands for characters (python-docx reads the same ones).
CHARS = {W + "tab": "\t", W + "br": "\n", W + "cr": "\n", W + "noBreakHyphen": "-"}


def _events(handle: IO[bytes]) -> Iterator[tuple[str, etree._Element]]:
    return etree.iterparse(
        handle,
        events=("start", "end"),
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
    )


def paragraphs(handle: IO[bytes]) -> Iterator[str]:
    """The text of each paragraph of the body, in order.

    Like python-docx's `Document.paragraphs`: tables, text boxes (paragraphs inside
    paragraphs) and deleted text are left out. Unlike it, tracked insertions are kept.
    """
    depth = 0  # how many w:p we are inside
    parts: list[str] = []
    for event, element in _events(handle):
        tag = element.tag
        if tag == W + "p":
            if event == "start":
                depth += 1
                continue
            depth -= 1
            if depth == 0:
                parent = element.getparent()
                if parent is not None and parent.tag == W + "body":  # not a table cell's
                    yield "".join(parts)
                parts = []
                element.clear()  # a finished paragraph's tree is no longer needed
                while parent is not None and element.getprevious() is not None:
                    del parent[0]
            continue
        if event != "end" or depth != 1:
            continue
        if tag == W + "t":
            parts.append(element.text or "")
        elif tag in CHARS:
            parts.append(CHARS[tag])


def core_properties(handle: IO[bytes]) -> tuple[str, str]:
    """(title, author) from docProps/core.xml."""
    title = author = ""
    for event, element in _events(handle):
        if event != "end":
            continue
        if element.tag == DC + "title":
            title = element.text or ""
        elif element.tag == DC + "creator":
            author = element.text or ""
    return title, author


def read_docx(data: bytes) -> tuple[str, str, list[str]]:
    """(title, author, non-empty paragraphs) of a DOCX; zipfile and lxml errors propagate."""
    with zipfile.ZipFile(BytesIO(data)) as zf:
        names = set(zf.namelist())
        with zf.open("word/document.xml") as handle:
            texts = [t.strip() for t in paragraphs(handle) if t.strip()]
        title = author = ""
        if "docProps/core.xml" in names:
            with zf.open("docProps/core.xml") as handle:
                title, author = core_properties(handle)
    return title, author, texts
