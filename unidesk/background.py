"""Background tasks, one way for the server and the agent: spawn into a ``TaskSet`` (kept
referenced, failures logged), stop with ``cancel_and_wait`` (bounded)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Iterator
from typing import Any

__all__ = ["TaskSet", "cancel_and_wait"]

log = logging.getLogger("unidesk.background")


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any] | None], *, timeout_s: float | None = None
) -> set[asyncio.Task[Any]]:
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


class TaskSet:
    """Fire-and-forget work that must not be garbage-collected mid-run: each task is held
    until it ends, and one that fails is logged (not lost in an unread exception)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background work %s failed: %r", task.get_name(), task.exception())

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

    def __len__(self) -> int:
        return len(self._tasks)

    async def cancel_all(self, *, timeout_s: float | None = None) -> set[asyncio.Task[Any]]:
        """Cancel every task still running and wait (at most ``timeout_s``)."""
        return await cancel_and_wait(list(self._tasks), timeout_s=timeout_s)
