"""A Reporter that records what a runner reports (our own seam; the real one is the agent's)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

__all__ = ["FakeReporter"]


class FakeReporter:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.logs: dict[str, bytearray] = defaultdict(bytearray)
        self.calls: list[tuple[str, bytes, float | None]] = []
        """Every log call in order (stream, data, source time)."""
        self.started = asyncio.Event()
        self.stage_seen: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def stage(self, stage: str) -> None:
        self.events.append(stage)
        self.stage_seen[stage].set()

    async def running(self) -> None:
        self.events.append("running")
        self.started.set()

    def log(
        self, stream: str, data: bytes, ts: float | None = None, mark: int | None = None
    ) -> None:
        self.logs[stream].extend(data)
        self.calls.append((stream, bytes(data), ts))

    def text(self, stream: str) -> str:
        return self.logs[stream].decode("utf-8", "replace")
