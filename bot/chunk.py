"""Article -> Chunks: token-bounded spans with character offsets into the article text."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from langchain_text_splitters import RecursiveCharacterTextSplitter

from bot.models import Article, Chunk

SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""]
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
        splitter = RecursiveCharacterTextSplitter(
            separators=SEPARATORS,
            keep_separator="end",
            chunk_size=size,
            chunk_overlap=min(self.overlap_tokens, size // 4),
            length_function=self.count_tokens,
            strip_whitespace=True,
        )
        chunks: list[Chunk] = []
        for piece in splitter.split_text(article.text):
            # Overlapping chunks start after the previous one: search from there.
            floor = chunks[-1].start + 1 if chunks else 0
            start = article.text.find(piece, floor)
            if start < 0:  # the splitter only cuts and strips, so this would be a bug
                raise AssertionError("chunk is not a substring of its article")
            end = start + len(piece)
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
