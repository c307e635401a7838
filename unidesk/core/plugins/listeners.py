"""Plugin event listeners, run after the core's and each plugin on its own queue and task.

The event hub calls the core's listeners (delivery, scheduler) in its pump; this runner is
registered after them and only enqueues each batch for every plugin. One task per plugin
then calls that plugin's listeners in order (the batches that queued while they ran joined into
one call), each bounded by ``timeout_s``; a slow or failing
plugin delays or loses only its own batches, never dispatch or another plugin. A plugin that
falls ``MAX_QUEUED_BATCHES`` behind has the newest batches dropped, each drop logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from unidesk.core.background import cancel_and_wait
from unidesk.core.events.schemas import EventOut

__all__ = ["MAX_QUEUED_BATCHES", "PluginListener", "PluginListeners"]

log = structlog.get_logger("unidesk.plugins")

MAX_QUEUED_BATCHES = 10_000
PluginListener = Callable[[list[EventOut], Any], Awaitable[None]]
"""``(events, state) -> None``: what a plugin's ``unidesk_event_listeners`` returns."""


class PluginListeners:
    """One queue and one task per plugin; ``on_events`` is the hub listener that feeds them."""

    name = "plugin-listeners"

    def __init__(
        self,
        listeners: Mapping[str, Sequence[PluginListener]],
        state: Any,
        *,
        timeout_s: float,
        active: Callable[[str], bool],
    ) -> None:
        self._listeners = {name: list(fns) for name, fns in listeners.items() if fns}
        self._state = state
        self._timeout_s = timeout_s
        self._active = active
        self._queues: dict[str, asyncio.Queue[list[EventOut]]] = {
            name: asyncio.Queue(MAX_QUEUED_BATCHES) for name in self._listeners
        }
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped: dict[str, int] = dict.fromkeys(self._listeners, 0)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(name), name=f"plugin-listeners:{name}")
            for name in self._listeners
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks, timeout_s=self._timeout_s)

    async def on_events(self, events: list[EventOut]) -> None:
        """Hand the batch to every plugin's queue; never waits on a plugin."""
        for name, queue in self._queues.items():
            try:
                queue.put_nowait(events)
            except asyncio.QueueFull:
                self.dropped[name] += len(events)
                log.error(
                    "plugin listener fell behind; events dropped for it",
                    plugin=name,
                    dropped=self.dropped[name],
                    first_id=events[0].id if events else None,
                )

    async def _run(self, name: str) -> None:
        queue = self._queues[name]
        while True:
            events = await queue.get()
            while not queue.empty():  # batches that queued meanwhile go in one call, in order
                events = events + queue.get_nowait()
            for fn in self._listeners[name]:
                if not self._active(name):
                    break
                try:
                    await asyncio.wait_for(fn(events, self._state), self._timeout_s)
                except Exception as exc:  # isolated: logged, never breaks the core or others
                    log.error(
                        "plugin event listener failed",
                        plugin=name,
                        listener=getattr(fn, "__name__", "listener"),
                        error=f"{type(exc).__name__}: {exc}",
                    )
