"""Article -> Chunks: token-bounded spans with character offsets into the article text."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from bot.models import Article, Chunk
from bot.sentences import sentence_spans

# Cut levels, coarsest first; SENTENCES is the article language's sentence splitter.
SENTENCES = ""
SEPARATORS = ["\n\n", "\n", SENTENCES, "; ", ", ", " "]
Unit = tuple[int, int, int]  # start, end, tokens
# Titles longer than this many characters are cut in the embedded text, never the chunk.
TITLE_CHARS = 200


def embed_text(title: str, chunk_text: str) -> str:
    """What is embedded for a chunk: the headline gives every chunk its story's context."""
    return f"{title[:TITLE_CHARS]}\n\n{chunk_text}"


class Chunker:
    """Splits so that title + chunk never exceeds the model's maximum sequence length.

    `count_tokens` is the model tokenizer's count without special tokens; two are reserved
    for them ([CLS]/[SEP]), so nothing the model sees is silently truncated.
    """

    def __init__(
        self,
        count_tokens: Callable[[str], int],
        max_tokens: int,
        chunk_tokens: int = 0,
        overlap_tokens: int = 40,
    ) -> None:
        self.count_tokens = count_tokens
        self.max_tokens = max_tokens - 2
        self.chunk_tokens = min(chunk_tokens or self.max_tokens, self.max_tokens)
        self.overlap_tokens = overlap_tokens

    def budget(self, title: str) -> int:
        title_tokens = self.count_tokens(embed_text(title, ""))
        return max(32, min(self.chunk_tokens, self.max_tokens - title_tokens))

    def chunk(self, article: Article) -> list[Chunk]:
        size = self.budget(article.title)
        overlap = min(self.overlap_tokens, size // 4)
        text, lang = article.text, article.language
        spans = []
        units = self._units(text, 0, len(text), 0, size, lang)
        for start, end in _merge(text, units, size, overlap):
            if self.count_tokens(text[start:end]) <= size:
                spans.append((start, end))
            else:  # a tokenizer whose counts do not add up across a cut: split again, smaller
                units = self._units(text, start, end, 0, size * 3 // 4, lang)
                spans += _merge(text, units, size, 0)
        chunks: list[Chunk] = []
        for start, end in spans:
            piece = text[start:end]
            digest = hashlib.sha256(piece.encode()).hexdigest()[:8]
            chunks.append(
                Chunk(
                    id=f"{article.id}:{len(chunks)}:{digest}",
                    article_id=article.id,
                    ordinal=len(chunks),
                    start=start,
                    end=end,
                    text=piece,
                )
            )
        return chunks

    def _units(
        self, text: str, start: int, end: int, level: int, size: int, lang: str, tokens: int = -1
    ) -> list[Unit]:
        """Spans of at most `size` tokens, cut at the coarsest separator that gets there.

        Each span is tokenized once (LangChain's splitter tokenized pieces again while merging);
        counts add up because every cut follows a separator, and chunk() checks the sum.
        """
        if tokens < 0:
            tokens = self.count_tokens(text[start:end])
        if tokens <= size:
            return [(start, end, tokens)] if text[start:end].strip() else []
        if level == len(SEPARATORS):  # one "word" longer than a chunk: cut by characters
            step = max(1, (end - start) * size // (tokens + 1))
            return [
                u
                for at in range(start, end, step)
                for u in self._units(text, at, min(end, at + step), level, size, lang)
            ]
        stops = _stops(text, start, end, SEPARATORS[level], lang)
        if len(stops) < 2:
            return self._units(text, start, end, level + 1, size, lang, tokens)
        units: list[Unit] = []
        for at, stop in zip([start, *stops], stops, strict=False):
            units += self._units(text, at, stop, level + 1, size, lang)
        return units


def _stops(text: str, start: int, end: int, separator: str, lang: str) -> list[int]:
    """Where the pieces of text[start:end] end when cut after each separator (or sentence)."""
    if separator == SENTENCES:
        return [start + e for _, e in sentence_spans(text[start:end], lang, fast=True)]
    stops = []
    cut = text.find(separator, start, end)
    while cut >= 0:
        stops.append(cut + len(separator))
        cut = text.find(separator, cut + len(separator), end)
    if not stops or stops[-1] != end:
        stops.append(end)
    return stops


def _merge(text: str, units: list[Unit], size: int, overlap: int) -> list[tuple[int, int]]:
    """Greedy runs of units up to `size` tokens; each run repeats up to `overlap` tokens of the
    previous one. Spans are stripped of surrounding whitespace."""
    spans: list[tuple[int, int]] = []
    first = 0
    while first < len(units):
        last, total = first, 0
        while last < len(units) and (last == first or total + units[last][2] <= size):
            total += units[last][2]
            last += 1
        start, end = units[first][0], units[last - 1][1]
        piece = _strip(text, start, end)
        if piece:
            spans.append(piece)
        if last == len(units):
            break
        back, repeated = last, 0
        while back - 1 > first and repeated + units[back - 1][2] <= overlap:
            back -= 1
            repeated += units[back][2]
        first = back
    return spans


def _strip(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None
