"""The one splitter: Telegram HTML in, messages that Telegram accepts out.

Every part is valid HTML on its own (tags cut by a split are closed at the end of one part and
reopened at the start of the next), at most 4,096 UTF-16 code units after entity parsing, and no
tag, entity or `[n]` marker is ever cut in half. Cuts prefer line breaks, then the end of a
sentence or a citation marker, then a space.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator

TELEGRAM_LIMIT = 4096
_TAG = re.compile(r"<(/?)([a-zA-Z][\w-]*)[^>]*>")
_MARKER = re.compile(r"\[\d+(?:,\s*\d+)*\]")
_SENTENCE_END = re.compile(r"(?:[.!?…][\"”’)]*|\[\d+(?:,\s*\d+)*\])\s+")
_SPACE = re.compile(r"\s+")
_NEWLINE = re.compile(r"\n")


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def plain_text(html_text: str) -> str:
    """What Telegram shows: tags removed, entities decoded, surrounding blanks trimmed."""
    return html.unescape(_TAG.sub("", html_text)).strip()


def size(html_text: str) -> int:
    """Length after entity parsing, before Telegram trims the ends (an upper bound)."""
    return utf16_len(html.unescape(_TAG.sub("", html_text)))


def pack(blocks: Iterable[str], limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Join blocks with blank lines into as few messages as fit; longer blocks are split."""
    return _join((piece for block in blocks for piece in split(block, limit)), "\n\n", limit)


def fit(parts: Iterable[str], limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Each part as it is if it fits, else split; parts are never merged or reordered."""
    return [piece for part in parts for piece in split(part, limit)]


def split(block: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """One block as parts of at most `limit`: whole lines where they fit, else cut inside."""
    if size(block) <= limit:
        return [block] if plain_text(block) else []
    pieces = (
        piece
        for line in _top_level_lines(block)
        for piece in ([line] if size(line) <= limit else _cut(line, limit))
    )
    return [p for p in _join(pieces, "\n", limit) if plain_text(p)]


def _join(pieces: Iterable[str], separator: str, limit: int) -> list[str]:
    """Consecutive pieces (each within the limit) joined into as few parts as fit."""
    parts: list[str] = []
    current, current_size = "", 0
    for piece in pieces:
        piece_size = size(piece)
        if current and current_size + len(separator) + piece_size <= limit:
            current += separator + piece
            current_size += len(separator) + piece_size
            continue
        if current:
            parts.append(current)
        current, current_size = piece, piece_size
    if current:
        parts.append(current)
    return parts


def _top_level_lines(block: str) -> Iterator[str]:
    """The block's lines, breaking only where no tag is open (a blockquote stays whole)."""
    depth, start = 0, 0
    for token in _tokens(block):
        kind, value, end = token
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
        elif depth == 0 and "\n" in value:
            offset = end - len(value)
            for i, char in enumerate(value):
                if char == "\n":
                    yield block[start : offset + i]
                    start = offset + i + 1
    yield block[start:]


def _tokens(block: str) -> Iterator[tuple[str, str, int]]:
    """("open"|"close", tag, end) and ("text", raw text with entities, end), in order."""
    pos = 0
    for match in _TAG.finditer(block):
        if match.start() > pos:
            yield "text", block[pos : match.start()], match.start()
        yield ("close" if match.group(1) else "open"), match.group(0), match.end()
        pos = match.end()
    if pos < len(block):
        yield "text", block[pos:], len(block)


def _cut(line: str, limit: int) -> list[str]:
    """A line longer than the limit, cut into valid parts (tags closed and reopened)."""
    parts: list[str] = []
    opened: list[tuple[str, str]] = []  # (start tag, name) open at this point
    out: list[str] = []
    used = 0

    def flush() -> None:
        nonlocal out, used
        parts.append("".join(out) + "".join(f"</{name}>" for _, name in reversed(opened)))
        out, used = [tag for tag, _ in opened], 0

    for kind, value, _ in _tokens(line):
        if kind == "open":
            match = _TAG.match(value)
            opened.append((value, match.group(2) if match else ""))
            out.append(value)
            continue
        if kind == "close":
            opened.pop()
            out.append(value)
            continue
        text = html.unescape(value)
        text_size = utf16_len(text)
        while text:
            room = limit - used
            if text_size <= room:
                out.append(_esc(text))
                used += text_size
                break
            cut = _best_cut(text, room)
            if cut == 0 and used > 0:
                flush()
                continue
            cut = cut or _hard_cut(text, room)
            out.append(_esc(text[:cut].rstrip()))
            flush()
            rest = text[cut:].lstrip()
            text_size -= utf16_len(text[: len(text) - len(rest)])
            text = rest
    parts.append("".join(out))
    return [p for p in parts if plain_text(p)]


def _best_cut(text: str, room: int) -> int:
    """The best place to cut `text` within `room` UTF-16 units: 0 when there is none."""
    fits = _prefix_chars(text, room)
    window = text[: fits + 64]  # enough to see a marker or a space that straddles the cut
    markers = [m.span() for m in _MARKER.finditer(window)]
    for pattern in (_NEWLINE, _SENTENCE_END, _SPACE):
        ends = [m.end() for m in pattern.finditer(window, 0, fits + 1) if 0 < m.end() <= fits]
        for end in reversed(ends):
            if any(start < end < stop for start, stop in markers):
                continue
            if pattern is _SPACE or end >= fits // 3:
                return end
            break
    return 0


def _hard_cut(text: str, room: int) -> int:
    """No space to cut at: as many characters as fit, moved back out of any [n] marker."""
    cut = max(1, _prefix_chars(text, room))
    for match in _MARKER.finditer(text[: cut + 64]):
        if match.start() < cut < match.end():
            return match.start() or cut
    return cut


def _prefix_chars(text: str, room: int) -> int:
    """How many leading characters of `text` fit in `room` UTF-16 units."""
    size = 0
    for i, char in enumerate(text):
        size += 2 if ord(char) > 0xFFFF else 1
        if size > room:
            return i
    return len(text)


def _esc(text: str) -> str:
    return html.escape(text, quote=False)
