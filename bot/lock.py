"""One writer at a time on index/, across processes: the bot, a CLI run, a second shell.

A question from a shell on the embedded store takes it too (bot/reads.py says why).

A `filelock` on index/writer.lock, plus index/writer.json saying who holds it (pid, command,
whether it is the bot) so that the next writer can say what it waits for, or hand its work to
the running bot (bot/handoff.py) instead of opening the same embedded Chroma store twice.
The lock is released by the kernel when its process dies, so a killed writer never blocks
the next one. Within one process, `Desk.write_lock` still orders the bot's own threads.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from bot import private
from bot.errors import NewsdeskError

log = logging.getLogger(__name__)
Say = Callable[[str], None]


class WriterBusy(NewsdeskError):
    """Another process kept index/ longer than the configured wait."""


@dataclass(frozen=True)
class Holder:
    """Who holds the writer lock."""

    pid: int
    command: str
    bot: bool

    def __str__(self) -> str:
        return (
            f"the bot, pid {self.pid}" if self.bot else f"`newsdesk {self.command}`, pid {self.pid}"
        )


class IndexLock:
    """The cross-process writer lock of one index/ folder."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self.info = index_dir / "writer.json"
        # thread_local=False: in the bot, the thread that took it is not the one that writes.
        self._lock = FileLock(index_dir / "writer.lock", mode=private.FILE_MODE, thread_local=False)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(
        self,
        command: str,
        timeout: float,
        say: Say,
        bot: bool = False,
        defer_to_bot: bool = False,
    ) -> Holder | None:
        """Take the lock, waiting up to `timeout` s for another writer (and saying so).

        With `defer_to_bot`, a running bot is not waited for: it is returned instead, and the
        caller hands the work over to it. Returns None once the lock is held.
        """
        private.private_dir(self.index_dir)
        deadline = time.monotonic() + timeout
        announced: Holder | None = None
        while True:
            try:
                self._lock.acquire(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
                break
            except Timeout:
                holder = self.holder()
                if holder and holder.bot and bot and holder.pid == os.getpid():
                    return holder  # another Application in this process: it shares the lock
                if holder and holder.bot and bot:
                    raise WriterBusy(
                        f"another newsdesk bot ({holder}) already serves {self.index_dir}: "
                        "stop it first (one bot per index/)"
                    ) from None
                if holder and holder.bot and defer_to_bot:
                    return holder
                if time.monotonic() >= deadline:
                    raise WriterBusy(
                        f"{self.index_dir} is still in use by another newsdesk writer "
                        f"({holder or 'starting'}) after {timeout:g} s: run this again when it "
                        "has finished (NEWSDESK_LOCK_TIMEOUT sets the wait)"
                    ) from None
                if holder and holder != announced:
                    say(
                        f"waiting for another newsdesk writer ({holder}) to finish, "
                        f"up to {timeout:g} s …"
                    )
                    announced = holder
        self._write_info(Holder(os.getpid(), command, bot))
        return None

    def release(self) -> None:
        """Undo one acquire (two bots on one Desk in one process share it)."""
        if self._lock.is_locked:
            if self._lock.lock_counter == 1:
                self.info.unlink(missing_ok=True)
            self._lock.release()

    def holder(self) -> Holder | None:
        """Who holds the lock, as they wrote it on taking it.

        Only read while the lock is held by someone else, so it is current: a release removes
        it first, and a killed holder's file is overwritten by the next one to take the lock.
        (Pids are not checked: a CLI in another container sees other pids.)
        """
        try:
            data = json.loads(self.info.read_text(encoding="utf-8"))
            holder = Holder(int(data["pid"]), str(data["command"]), bool(data["bot"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return holder

    def _write_info(self, holder: Holder) -> None:
        private.write_text(
            self.info, json.dumps({"pid": holder.pid, "command": holder.command, "bot": holder.bot})
        )
