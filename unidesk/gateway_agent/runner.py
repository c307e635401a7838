"""What the agent needs from an executor: run one attempt, report its progress, stop it.

The connection layer (``agent.py``) owns dispatch, acks and reporting over the socket; a
``Runner`` owns how an attempt actually executes. ``DockerRunner`` (``docker_runner.py``) is
the production implementation; ``SubprocessTestRunner`` exists only for tests of the
connection layer and is never the default.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import msgspec

from unidesk.protocol import AttemptRef, Dispatch

__all__ = ["AdoptingRunner", "Outcome", "Reporter", "Runner", "StopReason"]

StopReason = Literal["cancelled", "timed_out", "reconcile", "shutdown", "fenced"]
"""``fenced``: the node lost contact with the server for longer than its offline timeout."""


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """How an attempt ended, as the runner saw it."""

    reason: Literal["succeeded", "exit_nonzero", "timed_out", "cancelled", "infra_error", "killed"]
    exit_code: int | None = None
    message: str | None = None


class Reporter(Protocol):
    """The runner's channel back to the server for one attempt."""

    async def stage(self, stage: str) -> None:
        """Entered a preparing stage: fetch_code, fetch_env, build_image, fetch_inputs."""

    async def running(self) -> None:
        """The user's command started."""

    def log(
        self,
        stream: Literal["stdout", "stderr", "build", "system"],
        data: bytes,
        ts: float | None = None,
        mark: int | None = None,
    ) -> None:
        """Append output written at ``ts`` (source time, epoch seconds; None: now). Calls come
        in the order of writing across streams; buffered and flushed by the connection layer.
        ``mark``: the position in the container's log this output reaches (Docker's nanosecond
        time of its last line), where an adopting agent resumes; None for other output."""

    # Optional (called through ``datafeed.watch_data``/``drain_data``, so test reporters may
    # omit them): ``watch_data(channel, path)`` follows a JSON-lines file the attempt writes
    # (``$UNIDESK_METRICS_FILE``); ``async drain_data()`` reads it a last time before cleanup.


class Runner(Protocol):
    async def run(self, dispatch: Dispatch, reporter: Reporter) -> Outcome:
        """Run the attempt to its end and return how it ended. Must not raise for task
        failures: an infrastructure problem is ``Outcome(reason="infra_error", message=...)``."""

    async def stop(self, ref: AttemptRef, reason: StopReason) -> None:
        """Ask a running attempt to stop (grace period, then kill); ``run`` then returns."""

    async def owned_attempts(self) -> list[AttemptRef]:
        """Attempts this node still has running (e.g. containers found by label after a restart)."""

    async def remove_orphans(self, keep: set[AttemptRef]) -> None:
        """Kill and remove anything of ours that is not in ``keep``."""

    async def health(self) -> str | None:
        """None when able to take work, else the reason (e.g. 'docker unreachable')."""

    # Optional: ``adopt`` (see ``AdoptingRunner``).


@runtime_checkable
class AdoptingRunner(Protocol):
    """A runner that can also follow an attempt a previous agent process left running."""

    async def adopt(self, ref: AttemptRef, reporter: Reporter, *, log_mark: int = 0) -> Outcome:
        """Follow ``ref`` (e.g. its container) to its end, once the server's Reconcile keeps
        it; runners without ``adopt`` have such attempts stopped. ``log_mark``: where the
        previous agent's output ended (the ``mark`` of its last logged output; 0: unknown, so
        only output from now on)."""
        ...
