"""When the agent sends an unacknowledged report again: a bound after it went out, sooner after
the server's Nack, each time with a longer (capped, jittered) delay."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

from unidesk.backoff import backoff_delay

__all__ = ["NACK_BASE_S", "ResendSchedule"]

K = TypeVar("K", bound=Hashable)

NACK_BASE_S = 0.5
"""First retry delay after a Nack; it doubles with every further try of the same report."""


class ResendSchedule:
    """Due times of unacknowledged reports, keyed by what identifies each report."""

    def __init__(
        self, *, after_s: float, cap_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.after_s = after_s
        self.cap_s = max(cap_s, after_s)
        self._clock = clock
        self._items: dict[Hashable, tuple[float, int]] = {}
        """key → (due, tries)"""

    def due(self, unacked: Iterable[K]) -> list[K]:
        """Of the ``unacked`` keys (in sending order), those due now; forgets every key not
        listed (acknowledged). A key seen for the first time is due ``after_s`` from now."""
        now = self._clock()
        out: list[K] = []
        kept: dict[Hashable, tuple[float, int]] = {}
        for key in unacked:
            due, tries = self._items.get(key, (now + self.after_s, 0))
            if due <= now:
                out.append(key)
                tries += 1
                due = now + min(self.cap_s, self.after_s * 2**tries)
            kept[key] = (due, tries)
        self._items = kept
        return out

    def nacked(self, key: Hashable) -> None:
        """The server could not store this report: send it again after a backoff."""
        now = self._clock()
        due, tries = self._items.get(key, (now + self.after_s, 0))
        retry = now + backoff_delay(tries, base_s=NACK_BASE_S, cap_s=self.cap_s)
        self._items[key] = (min(due, retry), tries)

    def reset(self) -> None:
        """Everything unacknowledged was just sent again (a new connection)."""
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
