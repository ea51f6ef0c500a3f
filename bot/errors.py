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


class StorageError(NewsdeskError):
    """index/ or corpus/ cannot be written: a full disk, a read-only volume, no permission."""


def storage_problem(exc: BaseException) -> str:
    """What an OS/SQLite/Chroma error says about the disk, in a few words ('' if nothing)."""
    import errno

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = current.errno if isinstance(current, OSError) else None
        text = str(current).lower()
        where = (
            f" ({current.filename})" if isinstance(current, OSError) and current.filename else ""
        )
        if code in {errno.ENOSPC, errno.EDQUOT} or "disk is full" in text or "no space" in text:
            return f"no space left on the device{where}"
        if code == errno.EROFS or "readonly database" in text or "read-only file system" in text:
            return f"the folder is on a read-only file system{where}"
        if code in {errno.EACCES, errno.EPERM}:
            return f"permission denied{where}"
        current = current.__cause__ or current.__context__
    return ""
