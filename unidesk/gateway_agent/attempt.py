"""One accepted attempt on this node: its reporter for the runner and its latest reported state."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal

from unidesk.masking import SecretMasker
from unidesk.protocol import AttemptRef, AttemptState, Dispatch

from .confine import Beneath
from .logbuffer import AttemptLog
from .runner import Outcome, StopReason

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["AttemptRun", "final_state"]


class AttemptRun:
    """Bookkeeping for one ``(task_id, attempt_no)``; also the ``Reporter`` handed to the runner."""

    def __init__(
        self,
        agent: Agent,
        ref: AttemptRef,
        dispatch: Dispatch | None = None,
        *,
        first_log_seq: int = 1,
    ) -> None:
        self.agent = agent
        self.dispatch = dispatch
        """None for an attempt adopted after an agent restart (its container already runs)."""
        self.ref = ref
        self.masker = SecretMasker(dispatch.secret_values() if dispatch is not None else [])
        """Masks this attempt's secret values in its logs and its reports' messages."""
        self.log_buffer = AttemptLog(ref.task_id, ref.attempt_no, self.masker)
        self.log_buffer.next_seq = first_log_seq
        self.last_state: AttemptState | None = None
        """The latest non-final state, re-sent after a reconnect."""
        self.stop_reason: StopReason | None = None
        self.in_runner = False
        self.command_started = False
        self.task: asyncio.Task[None] | None = None

    def _state(
        self, phase: Literal["preparing", "running"], stage: str | None = None
    ) -> AttemptState:
        return AttemptState(
            task_id=self.ref.task_id, attempt_no=self.ref.attempt_no, phase=phase, stage=stage
        )

    async def preparing(self) -> None:
        """Accepted and given a slot; the runner's stages follow."""
        self.last_state = self._state("preparing")
        await self.agent.send_state(self.last_state)

    async def stage(self, stage: str) -> None:
        self.last_state = self._state("preparing", stage)
        await self.agent.send_state(self.last_state)

    async def running(self) -> None:
        self.command_started = True
        self.last_state = self._state("running")
        await self.agent.send_state(self.last_state)

    def log(
        self,
        stream: Literal["stdout", "stderr", "build", "system"],
        data: bytes,
        ts: float | None = None,
        mark: int | None = None,
    ) -> None:
        if self.log_buffer.append(stream, data, ts, mark):
            self.agent.flush_soon()

    def watch_data(self, channel: str, path: Beneath) -> None:
        """Forward the JSON lines the attempt appends to ``path`` (see ``datafeed``)."""
        self.agent.watch_data(self.ref, channel, path)

    async def drain_data(self) -> None:
        await self.agent.drain_data(self.ref)


def final_state(run: AttemptRun, outcome: Outcome) -> AttemptState:
    """Map the runner's outcome to the final report: ``exited`` once the command started, else
    ``failed``."""
    phase: Literal["exited", "failed"] = "exited" if run.command_started else "failed"
    if outcome.reason == "infra_error":
        phase = "failed"
    return AttemptState(
        task_id=run.ref.task_id,
        attempt_no=run.ref.attempt_no,
        phase=phase,
        exit_code=outcome.exit_code,
        reason=outcome.reason,
        message=run.masker.mask(outcome.message) if outcome.message else outcome.message,
    )
