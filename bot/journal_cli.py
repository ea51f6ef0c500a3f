"""`newsdesk journal …`: what the journal holds, exported for a quality review or purged.

The journal is index/feedback.db (answers given in Telegram, votes, the audit log). Every
purge is itself written to the audit log, with who ran it.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.config import Settings
from bot.errors import InputError
from bot.journal import Journal

app = typer.Typer(
    help="The journal (index/feedback.db): export it for a review, or purge it.",
    no_args_is_help=True,
)


def open_journal(settings: Settings | None = None) -> Journal:
    settings = settings or Settings()
    return Journal(settings.index_dir / "feedback.db", keep_text=settings.journal_text)


def summary(settings: Settings) -> dict[str, Any]:
    """For `newsdesk stats`: rows per table, bytes and the oldest row (nothing if absent)."""
    if not (settings.index_dir / "feedback.db").exists():
        return {"journal_rows": {}, "journal_bytes": 0, "journal_oldest": None}
    journal = open_journal(settings)
    try:
        return journal.stats()
    finally:
        journal.close()


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="Where to write it (JSONL, created 0600).")],
    since: Annotated[
        str | None, typer.Option(help="Only rows written on or after YYYY-MM-DD.")
    ] = None,
) -> None:
    """Write every stored answer (with its votes) and audit row, one JSON object a line."""
    day = None
    if since:
        try:
            day = dt.date.fromisoformat(since)
        except ValueError:
            raise InputError(f"--since {since!r} is not a date: use YYYY-MM-DD") from None
    journal = open_journal()
    try:
        # Owner-only from the first byte: it may hold what journalists asked.
        fd = os.open(out, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        count = 0
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for row in journal.export(day):
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        journal.close()
    typer.echo(f"{count} rows -> {out}")


@app.command()
def purge(
    user: Annotated[
        int | None, typer.Option("--user", help="Delete this Telegram user id's rows.")
    ] = None,
    older_than: Annotated[
        float | None,
        typer.Option("--older-than", help="Delete rows older than DAYS (audit rows too)."),
    ] = None,
) -> None:
    """Delete rows by user, by age, or both (both: that user's old rows). Audited."""
    if user is None and older_than is None:
        raise InputError("say what to purge: --user ID, --older-than DAYS, or both")
    if older_than is not None and older_than < 0:
        raise InputError("--older-than takes a number of days, 0 or more")
    journal = open_journal()
    try:
        gone = journal.purge(
            user_id=user, older_than_days=older_than, audit_days=older_than, keep_audit=False
        )
        what = " ".join(
            f"{k}={v}" for k, v in (("user", user), ("older-than", older_than)) if v is not None
        )
        result = "deleted " + ", ".join(f"{n} {table}" for table, n in gone.items())
        journal.audit(0, f"cli:{getpass.getuser()}", "journal-purge", what, result)
    finally:
        journal.close()
    typer.echo(f"{result} (audited)")
