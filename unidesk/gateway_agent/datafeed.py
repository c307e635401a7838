"""Tail a file an attempt appends JSON lines to (e.g. ``$UNIDESK_METRICS_FILE``) and forward them.

The container needs no network: it appends one JSON object per line to a file in its
workspace; the agent reads complete lines as they appear, numbers them into ``AttemptData``
batches per (attempt, channel), and keeps each batch until the server's ``AttemptDataAck``
(resent after a reconnect, like log chunks). Lines that are not JSON objects are skipped, named
on the attempt's ``system`` log stream, and counted (with a few samples) on the next batch
(``AttemptData.skipped_lines``/``skipped_samples``: a batch with no items when nothing else came).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from unidesk.gateway_agent.confine import Beneath, WorkspaceEscape, open_file
from unidesk.protocol import MAX_SKIPPED_SAMPLE_CHARS, MAX_SKIPPED_SAMPLES, AttemptData

__all__ = [
    "BATCH_ITEMS",
    "MAX_FILE_BYTES",
    "METRICS_CHANNEL",
    "METRICS_IN_WORKSPACE",
    "METRICS_PATH_IN_CONTAINER",
    "DataFeed",
    "drain_data",
    "watch_data",
]

log = logging.getLogger(__name__)

METRICS_CHANNEL = "metrics"
METRICS_IN_WORKSPACE = ".unidesk/metrics.jsonl"
METRICS_PATH_IN_CONTAINER = "/workspace/" + METRICS_IN_WORKSPACE
BATCH_ITEMS = 2000
"""Items per AttemptData message (keeps frames far below the protocol's frame limit)."""
READ_BYTES = 4 * 1024 * 1024
"""Bytes read per poll; the rest waits for the next one."""
MAX_LINE_BYTES = 64 * 1024
MAX_FILE_BYTES = 1024 * 1024 * 1024
"""Past this much of one file, the rest is ignored (named once on the system log)."""
MAX_UNACKED_ITEMS = 2_000_000
_MAX_COMPLAINTS = 10


class DataFeed:
    """One attempt's data file for one channel: read offset, numbered batches kept until acked."""

    def __init__(self, task_id: str, attempt_no: int, channel: str, path: Beneath) -> None:
        self.task_id = task_id
        self.attempt_no = attempt_no
        self.channel = channel
        self.path = path
        self.offset = 0
        self.line_no = 0
        self.next_seq = 1
        self._partial = b""
        self._unacked: dict[int, AttemptData] = {}
        self._unacked_items = 0
        self._complaints = 0
        self.skipped_lines = 0
        self._skipped_since = 0
        self._samples: list[str] = []
        self.closed = False

    @property
    def idle(self) -> bool:
        return self.closed and not self._unacked

    def _skip(self, line_no: int, why: str, raw: bytes) -> None:
        """Count a skipped line; keep a sample of the first few for the next batch."""
        self.skipped_lines += 1
        self._skipped_since += 1
        if len(self._samples) < MAX_SKIPPED_SAMPLES:
            text = raw[:MAX_SKIPPED_SAMPLE_CHARS].decode("utf-8", "replace").strip()
            self._samples.append(f"line {line_no}: {why}: {text}"[:MAX_SKIPPED_SAMPLE_CHARS])

    def _complain(self, text: str) -> list[str]:
        self._complaints += 1
        if self._complaints <= _MAX_COMPLAINTS:
            return [text]
        return (
            ["further bad lines are not named"] if self._complaints == _MAX_COMPLAINTS + 1 else []
        )

    def read(self, *, final: bool = False) -> tuple[list[AttemptData], list[str]]:
        """New complete lines as batches, plus problems to show the user. ``final``: the attempt
        ended, so a last line without a newline counts too, and the feed closes."""
        if self.closed:
            return [], []
        problems: list[str] = []
        data = b""
        try:
            if self.offset < MAX_FILE_BYTES:
                with os.fdopen(open_file(self.path), "rb") as f:
                    f.seek(self.offset)
                    data = f.read(min(READ_BYTES, MAX_FILE_BYTES - self.offset))
        except FileNotFoundError:
            pass
        except WorkspaceEscape as exc:
            self.closed = True  # the task pointed it elsewhere: never read it again
            return [], [f"{self.channel} file not read: {exc.detail}"]
        except OSError as exc:
            problems.append(f"cannot read {self.channel} file: {exc}")
        self.offset += len(data)
        if self.offset >= MAX_FILE_BYTES and data:
            problems.append(
                f"{self.channel} file passed {MAX_FILE_BYTES} bytes; the rest is ignored"
            )
        buf = self._partial + data
        lines = buf.split(b"\n")
        self._partial = lines.pop()
        if final:
            if self._partial.strip():
                lines.append(self._partial)
            self._partial = b""
            self.closed = True
        elif len(self._partial) > MAX_LINE_BYTES:
            problems += self._complain(
                f"{self.channel} file line {self.line_no + 1} is longer than {MAX_LINE_BYTES} "
                "bytes; skipped"
            )
            self._skip(self.line_no + 1, f"longer than {MAX_LINE_BYTES} bytes", self._partial)
            self._partial = b""
        items: list[dict[str, Any]] = []
        for raw in lines:
            self.line_no += 1
            if not raw.strip():
                continue
            try:
                item = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                item, why = None, "not UTF-8 text"
            except json.JSONDecodeError as exc:
                item, why = None, f"not JSON ({exc.msg})"
            else:
                why = "not a JSON object"
            if not isinstance(item, dict):
                self._skip(self.line_no, why, raw)
                problems += self._complain(
                    f"{self.channel} file line {self.line_no} is {why}; skipped"
                )
                continue
            items.append(item)
        chunks = [items[i : i + BATCH_ITEMS] for i in range(0, len(items), BATCH_ITEMS)]
        if self._skipped_since and not chunks:
            chunks = [[]]  # only skipped lines came: a batch that just counts them
        return [self._number(chunk) for chunk in chunks], problems

    def _number(self, items: list[dict[str, Any]]) -> AttemptData:
        batch = AttemptData(
            task_id=self.task_id,
            attempt_no=self.attempt_no,
            channel=self.channel,
            seq=self.next_seq,
            items=items,
            skipped_lines=self._skipped_since,
            skipped_samples=self._samples,
        )
        self._skipped_since, self._samples = 0, []
        self.next_seq += 1
        self._unacked[batch.seq] = batch
        self._unacked_items += len(items)
        while self._unacked_items > MAX_UNACKED_ITEMS and len(self._unacked) > 1:
            seq, old = next(iter(self._unacked.items()))
            del self._unacked[seq]
            self._unacked_items -= len(old.items)
            log.warning(
                "dropping unacknowledged %s batch %s of %s/%s: the server is not acking",
                self.channel,
                seq,
                self.task_id,
                self.attempt_no,
            )
        return batch

    def ack(self, seq: int) -> None:
        batch = self._unacked.pop(seq, None)
        if batch is not None:
            self._unacked_items -= len(batch.items)

    def unacked(self) -> list[AttemptData]:
        return list(self._unacked.values())

    def get(self, seq: int) -> AttemptData | None:
        return self._unacked.get(seq)


def watch_data(reporter: Any, channel: str, path: Beneath) -> None:
    """Ask the reporter (when it can forward data) to follow ``path`` for ``channel``; the
    file is opened beneath its root without following symlinks (``confine.py``)."""
    fn = getattr(reporter, "watch_data", None)
    if fn is not None:
        fn(channel, path)


async def drain_data(reporter: Any) -> None:
    """Read the watched files one last time (before the workspace goes) and send what is left."""
    fn = getattr(reporter, "drain_data", None)
    if fn is not None:
        await fn()
