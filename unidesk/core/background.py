"""Stopping the server's background tasks: one way for every component."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[None] | None], *, timeout_s: float | None = None
) -> set[asyncio.Task[None]]:
    """Cancel ``tasks`` and wait for them to end (at most ``timeout_s``); returns those still
    running.

    A task's own error at the end is collected here (components log their errors as they run)."""
    live = [t for t in tasks if t is not None]
    for t in live:
        t.cancel()
    if not live:
        return set()
    done, pending = await asyncio.wait(live, timeout=timeout_s)
    for t in done:
        if not t.cancelled():
            t.exception()
    return pending
