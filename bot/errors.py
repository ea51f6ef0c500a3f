"""The exception tree. Every message is safe to show a user as it is."""


class NewsdeskError(Exception):
    """Base class: a problem the user can act on (no stack trace shown)."""


class InputError(NewsdeskError):
    """A document that cannot be read: unsupported, empty, too big, corrupt."""


class UnsupportedFormat(InputError):
    """The file type is not one the bot can parse."""


class TooLarge(InputError):
    """The document is over the configured size limit."""


class EmptyDocument(InputError):
    """The document holds no article text."""


class FetchError(InputError):
    """A URL could not be fetched or held no article."""


class BlockedAddress(FetchError):
    """A URL (or a redirect) leads to an address the operator has not allowed (SSRF guard)."""


class NotFound(NewsdeskError):
    """No article with that id."""


class IndexUnavailable(NewsdeskError):
    """The index is missing or unreadable; `newsdesk reindex` rebuilds it."""
