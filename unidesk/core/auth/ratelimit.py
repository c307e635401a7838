"""Sliding-window rate limiter per key (a client address, a user), in process memory."""

from __future__ import annotations

import time
from collections import defaultdict, deque

from unidesk.errors import RateLimited

__all__ = ["WindowLimiter"]


class WindowLimiter:
    """Allows ``limit`` recorded events per key within ``window_s``; then 429 with
    ``message`` and when to try again. Used for failed logins per client address and for
    ``POST /api/git/resolve`` per user.

    Kept per server instance (a client spread over N instances gets at most N times the
    budget); the window is short, so restarts forgive at most one window.
    """

    def __init__(self, limit: int, window_s: float, message: str) -> None:
        self.limit = limit
        self.window_s = window_s
        self.message = message
        self._events: dict[str, deque[float]] = defaultdict(deque)

    def _prune(self, key: str, now: float) -> deque[float]:
        q = self._events[key]
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def check(self, key: str) -> None:
        """Raise RateLimited when ``key`` has used its budget in the window."""
        now = time.monotonic()
        q = self._prune(key, now)
        if len(q) >= self.limit:
            retry = int(self.window_s - (now - q[0])) + 1
            raise RateLimited(self.message, retry_after_s=retry)

    def record(self, key: str) -> None:
        """Count one event of ``key``."""
        self._events[key].append(time.monotonic())
        if len(self._events) > 100_000:  # bound memory under a spray of keys
            self._events.clear()

    def take(self, key: str) -> None:
        """``check`` then ``record``: every call counts."""
        self.check(key)
        self.record(key)

    def forget(self, key: str) -> None:
        """Drop ``key``'s events (a successful login clears its failures)."""
        self._events.pop(key, None)
