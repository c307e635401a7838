"""The agent's local state file: node identity, attempts it owns, final reports not yet confirmed.

A restarted agent reads it to know which attempts were its own (and cleans up what it can
no longer follow) and re-reports outcomes the server may not have received. Written
atomically (temporary file + rename) so a crash never leaves half a file; the write and its
fsync run in a worker thread, so the agent's loop (heartbeats, logs) never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import uuid
from pathlib import Path

import msgspec

from unidesk.protocol import AttemptRef, AttemptState

__all__ = ["AgentState", "StateFile"]

log = logging.getLogger(__name__)

MAX_FINALS = 1000
"""Unacknowledged final reports kept at most; the oldest go first (a server that never acks)."""


class AgentState(msgspec.Struct, kw_only=True):
    instance_id: str = msgspec.field(default_factory=lambda: uuid.uuid4().hex)
    """Stable per state directory: the server tells a reconnecting agent from a second one."""
    node_id: str | None = None
    owned: list[AttemptRef] = []
    """Attempts accepted and not yet reported final."""
    finals: list[AttemptState] = []
    """Final reports the server has not acknowledged yet; re-sent after every (re)connect."""
    log_seqs: dict[str, int] = {}
    """Next log seq per owned attempt (``task_id/attempt_no``), so output of an attempt adopted
    after a restart continues the numbering instead of repeating seqs the server already has."""
    log_marks: dict[str, int] = {}
    """Per owned attempt, the container log position (Docker's nanosecond time of the newest
    line) its numbered chunks reach, so an agent adopting it after a restart reads the lines
    written while no agent ran, and none twice."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AgentState)


class StateFile:
    """Load/modify/save helper around one ``AgentState``; every mutation is persisted before
    its coroutine returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state = self._load()
        self._turn = asyncio.Lock()
        self._writing = threading.Lock()  # a cancelled save's thread may still be writing

    def _load(self) -> AgentState:
        try:
            return _decoder.decode(self.path.read_bytes())
        except FileNotFoundError:
            return AgentState()
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            broken = self.path.with_suffix(".broken")
            log.error(
                "agent state file %s is unreadable (%s); moved to %s, starting empty",
                self.path,
                exc,
                broken,
            )
            with contextlib.suppress(OSError):
                self.path.replace(broken)
            return AgentState()

    async def save(self) -> None:
        """Write the state as it is when this save's turn comes (saves go one at a time, so the
        file always ends at the newest state); encoded here, written and fsynced in a thread."""
        async with self._turn:
            await asyncio.to_thread(self._write, _encoder.encode(self.state))

    def _write(self, data: bytes) -> None:
        with self._writing:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)

    async def set_node_id(self, node_id: str) -> None:
        if self.state.node_id != node_id:
            self.state.node_id = node_id
            await self.save()

    async def own(self, ref: AttemptRef) -> None:
        if ref not in self.state.owned:
            self.state.owned = [*self.state.owned, ref]
            await self.save()

    def next_log_seq(self, ref: AttemptRef) -> int:
        return self.state.log_seqs.get(_key(ref), 1)

    def log_mark(self, ref: AttemptRef) -> int:
        """Where a previous agent's numbered output of ``ref`` ended in its container's log
        (nanoseconds; 0: unknown)."""
        return self.state.log_marks.get(_key(ref), 0)

    async def set_log_seqs(
        self, seqs: dict[AttemptRef, int], marks: dict[AttemptRef, int] | None = None
    ) -> None:
        """Persist each attempt's next log seq and (when known) its log mark, in one write."""
        changed = {_key(r): n for r, n in seqs.items() if self.state.log_seqs.get(_key(r)) != n}
        moved = {
            _key(r): m
            for r, m in (marks or {}).items()
            if m and self.state.log_marks.get(_key(r)) != m
        }
        if changed or moved:
            self.state.log_seqs = {**self.state.log_seqs, **changed}
            self.state.log_marks = {**self.state.log_marks, **moved}
            await self.save()

    async def finish(self, report: AttemptState) -> None:
        """The attempt ended: it is no longer owned, and its final report awaits delivery."""
        ref = AttemptRef(report.task_id, report.attempt_no)
        self.state.owned = [r for r in self.state.owned if r != ref]
        self.state.log_seqs = {k: v for k, v in self.state.log_seqs.items() if k != _key(ref)}
        self.state.log_marks = {k: v for k, v in self.state.log_marks.items() if k != _key(ref)}
        self.state.finals = ([f for f in self.state.finals if _ref(f) != ref] + [report])[
            -MAX_FINALS:
        ]
        await self.save()

    async def disown(self, refs: set[AttemptRef]) -> None:
        self.state.owned = [r for r in self.state.owned if r not in refs]
        await self.save()

    async def confirm(self, refs: set[AttemptRef]) -> None:
        """The server acknowledged these final reports; forget them."""
        kept = [f for f in self.state.finals if _ref(f) not in refs]
        if len(kept) != len(self.state.finals):
            self.state.finals = kept
            await self.save()


def _key(ref: AttemptRef) -> str:
    return f"{ref.task_id}/{ref.attempt_no}"


def _ref(report: AttemptState) -> AttemptRef:
    return AttemptRef(report.task_id, report.attempt_no)
