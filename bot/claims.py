"""The chat model's text, taken apart: its sentences ("claims") with their [n] citations.

Also the other direction: the numbered, delimited data section of passages the model reads.
"""

from __future__ import annotations

import re

from bot.models import Passage

# [1], [1, 2], [1; 2], and the [Passage 1] / [source 2] some models write.
_REF = r"(?:(?:passages?|sources?)\s*)?\d+"
_REFS = rf"\s*{_REF}(?:\s*[,;]\s*{_REF})*\s*"
CITE = re.compile(rf"\[({_REFS})\]", re.IGNORECASE)
LEADING_CITES = re.compile(rf"^((?:\s*\[{_REFS}\])+)\s*(.*)$", re.DOTALL | re.IGNORECASE)
THINKING = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)  # reasoning models' scratchpad
BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
DELIMITER = re.compile(r"<\s*/?\s*passages?\b[^>]*>", re.IGNORECASE)


def passages_block(passages: list[Passage]) -> str:
    """The data section: numbered passages with title, outlet and date, delimiters defused."""

    def clean(text: str) -> str:
        return DELIMITER.sub(" ", text)

    items = []
    for n, p in enumerate(passages, start=1):
        meta = [f"Title: {clean(' '.join(p.title.split()))}"]
        if p.source:
            meta.append(f"Outlet: {clean(p.source)}")
        if p.published:
            meta.append(f"Date: {p.published.isoformat()}")
        items.append(f'<passage id="{n}">\n[{n}] ' + "\n".join(meta) + "\n\n")
        items[-1] += clean(p.chunk.text.strip()) + "\n</passage>"
    return "<passages>\n" + "\n".join(items) + "\n</passages>"


def split_claims(text: str) -> list[str]:
    """The model's answer as sentences, with citations written after the full stop kept."""
    import pysbd

    segmenter = pysbd.Segmenter(language="en", clean=False)
    claims: list[str] = []
    for line in text.splitlines():
        line = BULLET.sub("", line).strip()
        if not line:
            continue
        for segment in segmenter.segment(line):
            segment = segment.strip()
            match = LEADING_CITES.match(segment)
            if match and claims:  # "… in 2019. [1] The …": the [1] belongs to the sentence before
                claims[-1] += " " + match.group(1).strip()
                segment = match.group(2).strip()
            if segment:
                claims.append(segment)
    return claims


def distinct(claims: list[str]) -> list[str]:
    """Each sentence once: a model that loops repeats itself (citations, case and punctuation
    aside), and a repeated claim adds nothing for the reader."""
    seen: set[str] = set()
    kept = []
    for claim in claims:
        key = " ".join(re.findall(r"\w+", CITE.sub(" ", claim).lower()))
        if key not in seen:
            seen.add(key)
            kept.append(claim)
    return kept


def cited_numbers(marker: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", marker)]


def visible(text: str) -> str:
    """The model's answer without a reasoning model's <think> block (closed or still open)."""
    return THINKING.sub("", text).strip()


def tidy(text: str) -> str:
    text = re.sub(r"[ \t]+", " ", text)
    return re.sub(r"\s+([.,;:!?])", r"\1", text).strip()
