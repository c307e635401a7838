"""A container's output in the order it was written: Docker's log stream with timestamps.

stdout and stderr are two pipes; the Docker daemon reads each in its own goroutine, so an attach
stream interleaves them in the order they were READ, and a stderr line could come before an
earlier stdout line. The log stream (``GET /containers/{id}/logs?follow=1&timestamps=1``) gives
every line the time the daemon took it from its pipe. ``follow_logs`` parses the multiplexed
frames and hands lines to the reporter in timestamp order: a line is held until one at least
``HOLD_S`` newer arrives (from either stream) or the stream is quiet that long, then lines go
out sorted by time. Lines written closer together than the daemon reads its pipes (a burst
without pauses) keep the order of each stream but may interleave by read time: that is the
source's resolution.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
from datetime import datetime
from typing import Literal

import aiodocker

from unidesk.gateway_agent.logcap import CappedReporter

__all__ = ["HOLD_S", "SourceOrder", "follow_logs", "parse_docker_ts"]

HOLD_S = 0.05
"""How long a line may wait for an earlier one from the other stream (source time)."""
_STDERR_HEAD = 1024
_READ_BYTES = 256 * 1024

Stream = Literal["stdout", "stderr"]


def parse_docker_ts(value: str) -> float | None:
    """Epoch seconds of Docker's RFC 3339 time (nanoseconds cut to micro); None for its zero."""
    if not value or value.startswith("0001-"):
        return None
    head, _, frac = value.rstrip("Z").partition(".")
    return _second(head) + float(f"0.{frac[:6] or 0}")


@functools.lru_cache(maxsize=64)
def _second(head: str) -> float:
    return datetime.fromisoformat(head + "+00:00").timestamp()


class SourceOrder:
    """Holds (time, stream, data) lines briefly and releases them sorted by time."""

    def __init__(self, reporter: CappedReporter, stderr_head: bytearray) -> None:
        self.reporter = reporter
        self.stderr_head = stderr_head
        self._heap: list[tuple[float, int, Stream, bytes, int]] = []
        self._n = itertools.count()
        self._newest = 0.0
        self.last_push = 0.0
        """Loop time of the latest line, so a quiet stream releases what it holds."""

    @property
    def held(self) -> bool:
        return bool(self._heap)

    def push(
        self, ts: float, stream: Stream, data: bytes, *, newest: float = 0.0, mark: int = 0
    ) -> None:
        """A line (or run of lines of one stream) written from ``ts`` until ``newest``; ``mark``:
        the log position (nanosecond time) of its last line."""
        self.last_push = asyncio.get_running_loop().time()
        heapq.heappush(self._heap, (ts, next(self._n), stream, data, mark))
        self._newest = max(self._newest, ts, newest)
        self._release(self._newest - HOLD_S)

    def flush(self) -> None:
        self._release(float("inf"))

    def _release(self, upto: float) -> None:
        while self._heap and self._heap[0][0] <= upto:
            ts, _, stream, data, mark = heapq.heappop(self._heap)
            if stream == "stderr" and len(self.stderr_head) < _STDERR_HEAD:
                self.stderr_head.extend(data[:_STDERR_HEAD])
            self.reporter.log(stream, data, ts, mark or None)


async def follow_logs(
    docker: aiodocker.Docker,
    container_id: str,
    reporter: CappedReporter,
    stderr_head: bytearray,
    *,
    since: float = 0.0,
    after: int = 0,
    follow: bool = True,
) -> None:
    """Pass the container's output (from ``since``, epoch seconds, or after the line at
    ``after``, a log position in nanoseconds) to ``reporter`` in source order until the
    container stops and its log ends (``follow=False``: what the log holds now)."""
    order = SourceOrder(reporter, stderr_head)
    quiet = asyncio.create_task(_release_when_quiet(order))
    reader = _Reader(order)
    try:
        start = _since(after) if after else f"{since:.6f}"
        await reader.read(docker, container_id, follow=follow, since=start, after=after)
        if reader.last_key and follow:
            # Docker 20.10's follow can stop short of the end (a log file rotated under it, or
            # the container exiting mid-read): read once more from the last line seen
            await reader.read(
                docker,
                container_id,
                follow=False,
                since=_since(reader.last_key),
                after=reader.last_key,
            )
    finally:
        quiet.cancel()
        order.flush()


class _Reader:
    """Parses the multiplexed frames (8-byte header: stream, 0, 0, 0, big-endian size; then
    ``<RFC 3339 time> <line>``) into ``order``; remembers the last line's time."""

    def __init__(self, order: SourceOrder) -> None:
        self.order = order
        self.last_key = 0
        """Time of the last line pushed, in nanoseconds: a second read starts after it."""
        self._after = 0

    async def read(
        self, docker: aiodocker.Docker, container_id: str, *, follow: bool, since: str, after: int
    ) -> None:
        """Read the log from ``since`` (Docker's inclusive ``seconds.nanoseconds``), skipping
        lines at or before ``after`` (nanoseconds; 0: none)."""
        params = {
            "follow": "1" if follow else "0",
            "stdout": "1",
            "stderr": "1",
            "timestamps": "1",
            "since": since,
        }
        self._after = after
        buffer = bytearray()
        # aiodocker's own log() decodes lines and drops which stream each came from
        path = f"containers/{container_id}/logs"
        async with docker._query(path, params=params, timeout=None) as r:
            while block := await r.content.read(_READ_BYTES):  # b"": the log ended
                buffer += block
                self._frames(buffer)

    def _frames(self, buffer: bytearray) -> None:
        """Push every whole frame of ``buffer``, keep a partial one at its end. Consecutive
        frames of one stream go as one item (the time of its first line; its last line's time
        moves the release point)."""
        at = 0
        run_stream = -1
        run: list[bytes] = []
        first = last = b""
        while len(buffer) - at >= 8:
            size = int.from_bytes(buffer[at + 4 : at + 8], "big")
            if len(buffer) - at - 8 < size:
                break
            stamp, _, data = bytes(buffer[at + 8 : at + 8 + size]).partition(b" ")
            stream = buffer[at]
            at += 8 + size
            if self._after and _key(stamp) <= self._after:
                continue  # seen in the first read
            if stream != run_stream:
                self._push(run_stream, run, first, last)
                run_stream, run, first = stream, [], stamp
            run.append(data)
            last = stamp
        self._push(run_stream, run, first, last)
        del buffer[:at]

    def _push(self, stream: int, run: list[bytes], first: bytes, last: bytes) -> None:
        if not run:
            return
        ts = parse_docker_ts(first.decode("ascii", "replace")) or 0.0
        newest = parse_docker_ts(last.decode("ascii", "replace")) or ts
        self.last_key = max(self.last_key, _key(last))
        self.order.push(
            ts, "stderr" if stream == 2 else "stdout", b"".join(run), newest=newest, mark=_key(last)
        )


def _since(key: int) -> str:
    """Docker's ``since`` for a nanosecond log position."""
    return f"{key // 10**9}.{key % 10**9:09d}"


def _key(stamp: bytes) -> int:
    """Docker's line time in nanoseconds (0 when it does not parse)."""
    text = stamp.decode("ascii", "replace").rstrip("Z")
    head, _, frac = text.partition(".")
    try:
        return int(_second(head)) * 10**9 + int((frac + "000000000")[:9])
    except ValueError:
        return 0


async def _release_when_quiet(order: SourceOrder) -> None:
    """A line held for ``HOLD_S`` with nothing newer arriving goes out: nothing earlier can come.
    (A timer beside the reader: cancelling a read mid-frame would lose bytes.)"""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(HOLD_S)
        if order.held and loop.time() - order.last_push >= HOLD_S:
            order.flush()
