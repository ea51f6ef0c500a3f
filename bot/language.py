"""Which language a text is written in, from py3langid's bundled model (nothing is downloaded).

The model takes about a second to load, so it loads on first use, never at import: a command
that never asks which language a text is in (most `newsdesk ask` runs) never pays for it.
"""

from __future__ import annotations

import threading
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
