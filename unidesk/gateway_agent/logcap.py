"""A Reporter wrapper that caps one attempt's output and leaves a visible truncation marker."""

from __future__ import annotations

from typing import Literal

from unidesk.gateway_agent.confine import Beneath
from unidesk.gateway_agent.datafeed import drain_data, watch_data
from unidesk.gateway_agent.runner import Reporter

__all__ = ["CappedReporter"]

Stream = Literal["stdout", "stderr", "build", "system"]


class CappedReporter:
    """Passes output through until ``cap`` bytes (all streams together), then one marker line on
    the ``system`` stream and nothing more; ``dropped`` counts what was discarded. The task is
    not stopped: only its log is cut."""

    def __init__(self, inner: Reporter, cap: int) -> None:
        self.inner = inner
        self.cap = cap
        self.used = 0
        self.dropped = 0

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    async def stage(self, stage: str) -> None:
        await self.inner.stage(stage)

    async def running(self) -> None:
        await self.inner.running()

    def log(
        self, stream: Stream, data: bytes, ts: float | None = None, mark: int | None = None
    ) -> None:
        if not data:
            return
        room = self.cap - self.used
        if len(data) <= room and not self.dropped:
            self.used += len(data)
            self.inner.log(stream, data, ts, mark)
            return
        if not self.dropped:
            if room > 0:
                self.inner.log(stream, data[:room], ts, mark)
                self.used += room
            self.inner.log(
                "system",
                (
                    f"\n[unidesk] log truncated: this attempt's output reached the node's cap of "
                    f"{self.cap} bytes; further output is discarded (the task keeps running)\n"
                ).encode(),
            )
        self.dropped += len(data) - max(room, 0)

    def watch_data(self, channel: str, path: Beneath) -> None:
        watch_data(self.inner, channel, path)

    async def drain_data(self) -> None:
        await drain_data(self.inner)

    def system(self, text: str) -> None:
        """A line from the agent itself; never counted against nor cut by the cap."""
        self.inner.log("system", f"[unidesk] {text}\n".encode())
