"""Text -> sentences, per language, as spans that cover the text exactly.

pysbd for the languages it has rules for (English, German, Russian and 20 more); for the rest
(Turkish, Ukrainian, …) a small rule set: a sentence ends at . ! ? … followed by a space and a
capital, a digit or an opening quote, except after a known abbreviation or an initial.
The spans are cut positions only, never rewritten text: a quote taken from a span is verbatim.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from functools import lru_cache

Span = tuple[int, int]
# Lowercase, without the final period. Single letters (initials, "м.", "р.") are always kept.
ABBREVIATIONS: dict[str, frozenset[str]] = {
    "tr": frozenset(
        """dr prof doç yrd öğr gör av sn bkz vb vs örn no tel cad sok mah apt ltd şti st yy
        bk md mad say alb gen org korg tuğg yzb bnb kur ecz uzm müh yük doğ öl""".split()  # noqa: SIM905
    ),
    "uk": frozenset(
        """вул ім проф акад доц див напр тис млн млрд грн дол коп ст рр обл пл просп смт ген
        д-р канд зв тзв стор підп полк лейт кв буд""".split()  # noqa: SIM905
    ),
    "ru": frozenset(
        """гг ул им проф акад млн млрд тыс руб долл стр см др пр ст пос обл ген зам
        тел""".split()  # noqa: SIM905
    ),
    "de": frozenset(
        """bzw ca usw vgl ggf evtl inkl nr str mrd mio abs bspw sog zb tel jh""".split()  # noqa: SIM905
    ),
    "en": frozenset(
        """jr sr gen gov sen rep lt col sgt capt corp inc ltd co jan feb aug sept oct nov dec
        approx dept est fig""".split()  # noqa: SIM905
    ),
}
GENERIC = frozenset(["dr", "prof", "mr", "mrs", "ms", "st", "no", "nr", "vs", "etc"])
# Where a sentence may end: terminal marks, then closing quotes and brackets, then a space.
_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)")
_WORD_BEFORE = re.compile(r"([\w-]+)[.]+$")


@lru_cache(maxsize=1)
def pysbd_languages() -> frozenset[str]:
    from pysbd.languages import LANGUAGE_CODES

    return frozenset(LANGUAGE_CODES)


def sentence_spans(text: str, language: str = "", fast: bool = False) -> list[Span]:
    """Consecutive spans (sentence + the blank space after it) from 0 to len(text).

    `language` is an ISO code; "" is taken as English. No cut falls inside a word.
    `fast`: the rule set for every language, never pysbd (ten times faster; chunking uses it,
    where a sentence end that pysbd would have placed better costs nothing visible).
    """
    if not text:
        return []
    code = language or "en"
    precise = not fast and code in pysbd_languages()
    raw = _pysbd_cuts(text, code) if precise else _rule_cuts(text, code)
    cuts = sorted({c for c in (_past_space(text, c) for c in raw) if _cuttable(text, c)})
    # A period before a lowercase word is an abbreviation pysbd did not know ("т. е. ещё").
    cuts = [c for c in cuts if not (text[c].islower() and text[:c].rstrip().endswith("."))]
    bounds = [0, *cuts, len(text)]
    return list(itertools.pairwise(bounds))


def _pysbd_cuts(text: str, language: str) -> list[int]:
    import pysbd

    # Each segment is found again in the text: pysbd's own char spans can point at an earlier
    # copy of a repeated sentence, and what it returns is not always a verbatim slice.
    cuts, cursor = [], 0
    for segment in pysbd.Segmenter(language=language, clean=False).segment(text):
        piece = segment.strip()
        at = text.find(piece, cursor) if piece else -1
        if at >= 0:
            cursor = at + len(piece)
            cuts.append(cursor)
    return cuts


def _rule_cuts(text: str, language: str) -> list[int]:
    known = ABBREVIATIONS.get(language, frozenset()) | GENERIC
    cuts = [m.end() for m in re.finditer(r"\n+", text)]
    for match in _END.finditer(text):
        after = text[match.end() :].lstrip()
        if not after or not _starts_sentence(after[0]):
            continue
        if "." in match.group() and not any(ch in match.group() for ch in "!?…"):
            word = _WORD_BEFORE.search(text, max(0, match.start() - 40), match.start() + 1)
            if word and (len(word.group(1)) == 1 or word.group(1).lower() in known):
                continue  # "Dr. Yılmaz", "м. Стамбул", "О. Резніков"
        cuts.append(match.end())
    return cuts


def _starts_sentence(char: str) -> bool:
    return char.isupper() or char.isdigit() or char in "\"'“‘«„([—–-"


def _past_space(text: str, cut: int) -> int:
    while cut < len(text) and text[cut].isspace():
        cut += 1
    return cut


def _cuttable(text: str, cut: int) -> bool:
    """Inside the text, not between two letters or digits, not before a combining mark."""
    if not 0 < cut < len(text):
        return False
    if text[cut - 1].isalnum() and text[cut].isalnum():
        return False
    return not unicodedata.category(text[cut]).startswith("M")
