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


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def plain_text(html_text: str) -> str:
    """What Telegram shows: tags removed, entities decoded, surrounding blanks trimmed."""
    return html.unescape(_TAG.sub("", html_text)).strip()


def plain_len(html_text: str) -> int:
    return utf16_len(plain_text(html_text))


def pack(blocks: Iterable[str], limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Join blocks with blank lines into as few messages as fit; longer blocks are split."""
    messages: list[str] = []
    current = ""
    for block in blocks:
        for piece in split(block, limit):
            candidate = f"{current}\n\n{piece}" if current else piece
            if current and plain_len(candidate) > limit:
                messages.append(current)
                candidate = piece
            current = candidate
    if current:
        messages.append(current)
    return messages


def fit(parts: Iterable[str], limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Each part as it is if it fits, else split; parts are never merged or reordered."""
    return [piece for part in parts for piece in split(part, limit)]


def split(block: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """One block as parts of at most `limit`: whole lines where they fit, else cut inside."""
    if plain_len(block) <= limit:
        return [block] if plain_text(block) else []
    parts: list[str] = []
    current = ""
    for line in _top_level_lines(block):
        candidate = f"{current}\n{line}" if current else line
        if plain_len(candidate) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
        if plain_len(line) <= limit:
            current = line
        else:
            *whole, current = _cut(line, limit)
            parts += whole
    if current:
        parts.append(current)
    return [p for p in parts if plain_text(p)]


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
    opened: list[str] = []  # start tags open at this point
    out: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal out, size
        closers = "".join(f"</{_TAG.match(t).group(2)}>" for t in reversed(opened))  # type: ignore[union-attr]
        parts.append("".join(out) + closers)
        out, size = list(opened), 0

    for kind, value, _ in _tokens(line):
        if kind == "open":
            opened.append(value)
            out.append(value)
            continue
        if kind == "close":
            opened.pop()
            out.append(value)
            continue
        text = html.unescape(value)
        while text:
            room = limit - size
            if utf16_len(text) <= room:
                out.append(_esc(text))
                size += utf16_len(text)
                break
            cut = _best_cut(text, room)
            if cut == 0 and size > 0:
                flush()
                continue
            cut = cut or _hard_cut(text, room)
            out.append(_esc(text[:cut].rstrip()))
            flush()
            text = text[cut:].lstrip()
    parts.append("".join(out))
    return [p for p in parts if plain_text(p)]


def _best_cut(text: str, room: int) -> int:
    """The best place to cut `text` within `room` UTF-16 units: 0 when there is none."""
    fits = _prefix_chars(text, room)
    for pattern in (re.compile(r"\n"), _SENTENCE_END, _SPACE):
        ends = [m.end() for m in pattern.finditer(text, 0, fits + 1) if 0 < m.end() <= fits]
        ends = [e for e in ends if not _inside_marker(text, e)]
        if ends and (pattern is _SPACE or ends[-1] >= fits // 3):
            return ends[-1]
    return 0


def _hard_cut(text: str, room: int) -> int:
    """No space to cut at: as many characters as fit, moved back out of any [n] marker."""
    cut = max(1, _prefix_chars(text, room))
    for match in _MARKER.finditer(text):
        if match.start() < cut < match.end():
            return match.start() or max(1, cut)
    return cut


def _inside_marker(text: str, pos: int) -> bool:
    return any(m.start() < pos < m.end() for m in _MARKER.finditer(text))


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
