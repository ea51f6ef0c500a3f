"""What the Telegram handlers share, typed: `context.bot_data` is a `Services`,
`context.chat_data` a `ChatMemory`."""

from __future__ import annotations

import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from limits import parse as parse_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from telegram.ext import CallbackContext, ExtBot

from bot.config import Settings
from bot.conversation import Conversation
from bot.desk import Desk
from bot.feeds import FeedStore
from bot.handoff import Watcher
from bot.journal import Journal
from bot.metrics import HealthServer, Metrics
from bot.miniapp import MiniApp
from bot.viewer import Viewer
from bot.watches import WatchStore

MAX_USERS_PER_CHAT = 50  # conversations remembered per chat; the least recent is forgotten


class UserLimiter:
    """A per-user moving-window limit on questions (the `limits` library)."""

    def __init__(self, per_minute: int) -> None:
        self.rate = parse_limit(f"{max(1, per_minute)}/minute")
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.enabled = per_minute > 0

    def wait(self, user_id: int) -> float:
        """0 if the user may ask now, else the seconds until they may."""
        if not self.enabled or self.limiter.hit(self.rate, str(user_id)):
            return 0.0
        reset, _ = self.limiter.get_window_stats(self.rate, str(user_id))
        return max(1.0, reset - time.time())


class ChatMemory:
    """One chat's conversations, one per user, so that in a group one person's follow-up
    never borrows another's question. Bounded: the least recently active user is forgotten."""

    def __init__(self, max_users: int = MAX_USERS_PER_CHAT) -> None:
        self.max_users = max_users
        self._by_user: OrderedDict[int, Conversation] = OrderedDict()

    def conversation(self, user_id: int) -> Conversation:
        conversation = self._by_user.pop(user_id, None) or Conversation()
        self._by_user[user_id] = conversation
        while len(self._by_user) > self.max_users:
            self._by_user.popitem(last=False)
        return conversation

    def forget(self, user_id: int) -> bool:
        """Drop this user's conversation; True if there was one."""
        return self._by_user.pop(user_id, None) is not None

    def __len__(self) -> int:
        return len(self._by_user)


@dataclass
class Services:
    """The bot's collaborators, built once in app.build_application."""

    desk: Desk
    settings: Settings
    journal: Journal
    limiter: UserLimiter
    metrics: Metrics
    # Admin writes (ingest, remove) queue here, one at a time, off the default executor that
    # answers questions: a big upload never starves a journalist.
    writer: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="newsdesk-write")
    )
    health: HealthServer | None = None
    handoff: Watcher | None = None  # set at start-up: CLI writes handed to this bot
    viewer: Viewer | None = None  # article pages, when NEWSDESK_PUBLIC_URL is set
    miniapp: MiniApp | None = None  # the same pages in Telegram, when that URL is https
    feeds: FeedStore | None = None  # index/feeds.db, opened on first use
    watches: WatchStore | None = None  # index/watches.db, opened on first use
    job_errors: dict[str, float] = field(default_factory=dict)  # a job's error: last logged at


Context = CallbackContext[ExtBot[None], dict[object, object], ChatMemory, Services]
