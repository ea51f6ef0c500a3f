"""Which language a text is written in, from py3langid's bundled model (nothing is downloaded).

The model takes about a second to load, so it loads on first use, never at import: a command
that never asks which language a text is in (most `newsdesk ask` runs) never pays for it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier

# The languages the bot speaks and whose questions it understands (stopwords, follow-ups).
SUPPORTED = ("en", "de", "ru", "uk", "tr")
# Below this many letters a guess is noise ("ok", "S-400").
MIN_LETTERS = 3
# A guess less sure than this is no answer.
MIN_CONFIDENCE = 0.5

_lock = threading.Lock()


@lru_cache(maxsize=4)
def _identifier(among: tuple[str, ...] | None) -> LanguageIdentifier:
    # One identifier per language set: set_languages() changes the identifier in place, so two
    # sets sharing one would race between threads.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if among:
        identifier.set_languages(list(among))
    return identifier


def detect(text: str, among: tuple[str, ...] | None = None) -> tuple[str, float]:
    """The most likely ISO 639-1 code and its probability; ("", 0.0) for text without letters.

    `among` narrows the choice (questions: SUPPORTED), which makes short texts far more reliable.
    """
    if sum(ch.isalpha() for ch in text) < MIN_LETTERS:
        return "", 0.0
    with _lock:
        identifier = _identifier(tuple(sorted(among)) if among else None)
    code, probability = identifier.classify(text)
    return str(code), float(probability)


def language_of(text: str, among: tuple[str, ...] | None = None, default: str = "") -> str:
    """The language of `text` when the model is reasonably sure, else `default`."""
    code, probability = detect(text, among)
    return code if code and probability >= MIN_CONFIDENCE else default


# Codes that say "no particular language" (ISO 639-2 special codes).
NO_LANGUAGE = frozenset({"und", "mul", "zxx", "mis"})
_TAG = re.compile(r"([a-z]{2,3})(?:[-_][a-z0-9]{1,8})*")
# Text looked at to detect an article's language: more adds time, not accuracy.
DETECT_CHARS = 2000


@lru_cache(maxsize=1)
def _known() -> tuple[frozenset[str], dict[str, str]]:
    """Babel's language codes, and the names and 3-letter codes that stand for them."""
    from babel.core import Locale, get_global

    codes = frozenset(Locale("en").languages)
    names = {
        str(alias).lower(): str(code) for alias, code in get_global("language_aliases").items()
    }
    names |= {name.lower(): code for code, name in Locale("en").languages.items()}
    for code in SUPPORTED:
        names[str(Locale(code).get_display_name()).lower()] = code
    return codes, {k: v for k, v in names.items() if v in codes}


def code_of(declared: str) -> str:
    """A declared language ("en-GB", "RUS", "Türkçe", "Ukrainian") as its code ("en", "ru",
    "tr", "uk"); "" when it names no language we know ("und", "xx-foo", "Klingonish")."""
    value = " ".join(declared.split()).lower()
    if not value:
        return ""
    codes, names = _known()
    match = _TAG.fullmatch(value)
    if match:
        primary = match.group(1)
        if primary in NO_LANGUAGE:
            return ""
        primary = names.get(primary, primary)
        return primary if primary in codes else ""
    return names.get(value, "")


def article_language(declared: str, title: str, text: str) -> str:
    """The declared language when it names one, else the one detected on the text, else ""."""
    return code_of(declared) or language_of(f"{title}\n{text[:DETECT_CHARS]}")


def reader_language(question: str, written: Iterable[str], default: str) -> str:
    """The language a reader asked in, for marking sources written in another one.

    The detector (a second to load) runs only when some source is in another language than
    `default`, the reader's own (their Telegram language or `--lang`): the common case, every
    source in the reader's language, costs nothing. Its price: a question in a third language
    over sources all in the reader's language leaves them unmarked.
    """
    if all(code in ("", default) for code in written):
        return default
    return language_of(question, SUPPORTED, default=default)
