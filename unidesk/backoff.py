"""The one retry delay of UniDesk: exponential backoff with full jitter (agent, server, CLI)."""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["backoff_delay"]


def backoff_delay(
    failures: int,
    *,
    base_s: float = 0.5,
    cap_s: float = 60.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Exponential backoff with full jitter: uniform in ``[0, min(cap, base * 2**failures)]``.

    Full jitter spreads retries of many clients (nodes reconnecting after a server restart,
    transactions after a serialization failure) instead of stampeding; ``failures`` counts
    consecutive failed tries (0 for the first retry).
    """
    ceiling = min(cap_s, base_s * (2.0 ** min(max(failures, 0), 32)))
    return rand() * ceiling
