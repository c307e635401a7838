"""Failed-login limiter: per client address, sliding window, in process memory."""

from __future__ import annotations

import time
from collections import defaultdict, deque

from unidesk.errors import RateLimited

__all__ = ["LoginLimiter"]


class LoginLimiter:
    """Allows ``max_failures`` failed logins per client within ``window_s``; then 429.

    Kept per server instance (a client spread over N instances gets at most N times the
    budget); the window is short, so restarts forgive at most one window.
    """

    def __init__(self, max_failures: int, window_s: float) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _prune(self, client: str, now: float) -> deque[float]:
        q = self._failures[client]
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def check(self, client: str) -> None:
        now = time.monotonic()
        q = self._prune(client, now)
        if len(q) >= self.max_failures:
            retry = int(self.window_s - (now - q[0])) + 1
            raise RateLimited("too many failed logins; try again later", retry_after_s=retry)

    def failed(self, client: str) -> None:
        self._failures[client].append(time.monotonic())
        if len(self._failures) > 100_000:  # bound memory under a spray of addresses
            self._failures.clear()

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
