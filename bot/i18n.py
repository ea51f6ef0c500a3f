"""The bot's own words in the reader's language: gettext catalogs, chosen per request.

Catalogs live in bot/locale/<lang>/LC_MESSAGES/newsdesk.po and are compiled to .mo at install
(`make install`, the Dockerfile). A missing or unreadable .mo is never fatal: that language falls
back to English, the msgids themselves.

The bot serves many users at once, so nothing here installs a process-wide translation or
switches the locale. The language of the update being handled sits in a context variable:
asyncio gives every task (PTB runs each update in its own) and every `asyncio.to_thread` call a
copy of the context, so one user's language never leaks into another's reply.
"""

from __future__ import annotations

import contextlib
import gettext
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

log = logging.getLogger(__name__)

DOMAIN = "newsdesk"
LOCALE_DIR = Path(__file__).with_name("locale")
DEFAULT = "en"
LANGUAGES = ("en", "uk", "ru", "tr", "de")  # the msgids are English


def base_language(code: str | None) -> str:
    """Telegram's `language_code` as one of LANGUAGES: "de-AT" -> "de", "pt-br" or None -> en."""
    base = (code or "").strip().replace("_", "-").split("-", 1)[0].lower()
    return base if base in LANGUAGES else DEFAULT


def supported(code: str) -> str:
    """A language chosen by an operator (a setting, `--lang`): one of LANGUAGES, or ValueError
    (a typo should be said, not silently answered in English)."""
    base = code.strip().replace("_", "-").split("-", 1)[0].lower()
    if base not in LANGUAGES:
        raise ValueError(
            f"{code!r} is not a language of the bot: use one of {', '.join(LANGUAGES)}"
        )
    return base


class Catalogs:
    """The compiled catalogs of one locale folder, each read once and kept."""

    def __init__(self, directory: Path = LOCALE_DIR) -> None:
        self.directory = directory
        self._loaded: dict[str, gettext.NullTranslations] = {}

    def get(self, code: str | None) -> gettext.NullTranslations:
        language = base_language(code)
        if language not in self._loaded:
            self._loaded[language] = self._load(language)
        return self._loaded[language]

    def _load(self, language: str) -> gettext.NullTranslations:
        if language == DEFAULT:
            return gettext.NullTranslations()
        path = self.directory / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
        try:
            with path.open("rb") as handle:
                return gettext.GNUTranslations(handle)
        except FileNotFoundError:
            log.warning(
                "no compiled catalog %s (run `make install`): %s in English", path, language
            )
        except Exception as exc:  # a truncated or corrupt .mo must never stop the bot
            log.warning("unreadable catalog %s (%s): %s in English", path, exc, language)
        return gettext.NullTranslations()


CATALOGS = Catalogs()
_active: ContextVar[tuple[str, gettext.NullTranslations]] = ContextVar(
    "newsdesk_language", default=(DEFAULT, gettext.NullTranslations())
)


def use(code: str | None, catalogs: Catalogs | None = None) -> str:
    """Speak `code` (a Telegram language_code or a setting) for the rest of this context (the
    update being handled, a command-line run); returns the language chosen."""
    language = base_language(code)
    _active.set((language, (catalogs or CATALOGS).get(language)))
    return language


@contextlib.contextmanager
def speaking(code: str | None, catalogs: Catalogs | None = None) -> Iterator[str]:
    """`use(code)` for a block only (a job writing to a user, a test)."""
    token = _active.set(_active.get())
    try:
        yield use(code, catalogs)
    finally:
        _active.reset(token)


def language() -> str:
    """The language spoken in this context ("en" unless `use` chose another)."""
    return _active.get()[0]


def _(message: str) -> str:
    """`message` (an English msgid) in this context's language."""
    return _active.get()[1].gettext(message)


translate = _  # for modules where `_` is a throwaway name


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form for `n` (Ukrainian and Russian have three: 1, 2-4, 5+)."""
    return _active.get()[1].ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a msgid for extraction where it is defined; `_()` translates it where it is shown."""
    return message


class Said(str):
    """An English message that keeps its msgid and values, to be said in a reader's language
    later. A parser's or fetcher's reason is raised in a worker thread, travels in a report and
    reaches an admin's chat; in logs, the journal and the command line it is the English text.
    (`Said` is an extraction keyword: `make messages` collects its msgids.)"""

    msgid: str
    values: dict[str, object]

    def __new__(cls, msgid: str, **values: object) -> Said:
        said = super().__new__(cls, msgid.format(**values) if values else msgid)
        said.msgid, said.values = msgid, values
        return said


def message_of(error: BaseException) -> str:
    """An error's message, kept a `Said` when it was raised with one (to be said later)."""
    if len(error.args) == 1 and isinstance(error.args[0], Said):
        return error.args[0]
    return str(error)


def said(text: object) -> str:
    """`text` in this context's language when it is a `Said`, or an error raised with one;
    anything else as it is. A translation that does not format falls back to English."""
    if isinstance(text, BaseException) and len(text.args) == 1:
        text = text.args[0]
    if not isinstance(text, Said):
        return str(text)
    values = {k: said(v) if isinstance(v, Said) else v for k, v in text.values.items()}
    try:
        return _(text.msgid).format(**values) if values else _(text.msgid)
    except (KeyError, IndexError, ValueError):
        log.warning("the translation of %r does not format: said in English", text.msgid)
        return str.__str__(text)
