"""TEST ONLY: ``SubprocessTestRunner`` runs ``dispatch.command`` as a plain local process.

It exists so the connection layer (dispatch, acks, logs, cancel, reconnect) can be tested
without Docker. It ignores the repositories, the image and every isolation and resource
limit, so it must never run real work: it is never the default and is selected only by
``unidesk-agent run --runner subprocess-test``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from pathlib import Path

from unidesk.protocol import AttemptRef, Dispatch

from .confine import Beneath
from .datafeed import METRICS_CHANNEL, drain_data, watch_data
from .runner import Outcome, Reporter, StopReason

__all__ = ["SubprocessTestRunner"]

_READ_BYTES = 64 * 1024


class SubprocessTestRunner:
    """Runner for tests of the agent only: no container, no isolation, no resource limits."""

    def __init__(self, *, grace_s: float = 2.0) -> None:
        self.grace_s = grace_s
        self._procs: dict[AttemptRef, asyncio.subprocess.Process | None] = {}
        self._stops: dict[AttemptRef, StopReason] = {}

    async def run(self, dispatch: Dispatch, reporter: Reporter) -> Outcome:
        ref = AttemptRef(dispatch.task_id, dispatch.attempt_no)
        self._procs[ref] = None  # registered before the first await, so stop() always finds it
        try:
            if not dispatch.command:
                return Outcome(reason="infra_error", message="empty command")
            with tempfile.TemporaryDirectory(prefix="unidesk-test-attempt-") as workdir:
                metrics = Path(workdir) / ".unidesk" / "metrics.jsonl"
                metrics.parent.mkdir()
                watch_data(
                    reporter, METRICS_CHANNEL, Beneath(Path(workdir), ".unidesk/metrics.jsonl")
                )
                try:
                    proc = await asyncio.create_subprocess_exec(
                        *dispatch.command,
                        cwd=workdir,
                        start_new_session=True,
                        env={
                            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                            **dispatch.env,
                            **dispatch.secret_env,
                            "UNIDESK_METRICS_FILE": str(metrics),
                        },
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.PIPE,
                    )
                except OSError as exc:
                    return Outcome(reason="infra_error", message=f"cannot start command: {exc}")
                self._procs[ref] = proc
                if ref in self._stops:
                    self._signal(proc, signal.SIGKILL)
                await reporter.running()
                try:
                    return await self._follow(ref, proc, dispatch.timeout_s, reporter)
                finally:
                    await drain_data(reporter)
        finally:
            proc_left = self._procs.pop(ref, None)
            if proc_left is not None and proc_left.returncode is None:
                self._signal(proc_left, signal.SIGKILL)
            self._stops.pop(ref, None)

    async def _follow(
        self, ref: AttemptRef, proc: asyncio.subprocess.Process, timeout_s: int, reporter: Reporter
    ) -> Outcome:
        async def pump(stream: asyncio.StreamReader, name: str) -> None:
            while data := await stream.read(_READ_BYTES):
                reporter.log(name, data)  # type: ignore[arg-type]  # "stdout" or "stderr"

        assert proc.stdout is not None and proc.stderr is not None  # both are PIPEs
        pumps = [
            asyncio.create_task(pump(proc.stdout, "stdout")),
            asyncio.create_task(pump(proc.stderr, "stderr")),
        ]
        try:
            code = await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            self._stops.setdefault(ref, "timed_out")
            self._signal(proc, signal.SIGKILL)
            code = await proc.wait()
        await asyncio.gather(*pumps)
        stop = self._stops.get(ref)
        if stop == "timed_out":
            return Outcome(reason="timed_out", exit_code=code, message=f"exceeded {timeout_s} s")
        if stop == "cancelled":
            return Outcome(reason="cancelled", exit_code=code)
        if stop is not None:
            return Outcome(reason="killed", exit_code=code, message=f"stopped: {stop}")
        return Outcome(reason="succeeded" if code == 0 else "exit_nonzero", exit_code=code)

    async def stop(self, ref: AttemptRef, reason: StopReason) -> None:
        if ref not in self._procs:
            return
        self._stops.setdefault(ref, reason)
        proc = self._procs.get(ref)
        if proc is None or proc.returncode is not None:
            return
        self._signal(proc, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.grace_s)
        except TimeoutError:
            self._signal(proc, signal.SIGKILL)

    async def owned_attempts(self) -> list[AttemptRef]:
        return list(self._procs)

    async def remove_orphans(self, keep: set[AttemptRef]) -> None:
        for ref in [r for r in self._procs if r not in keep]:
            await self.stop(ref, "reconcile")

    async def health(self) -> str | None:
        return None

    @staticmethod
    def _signal(proc: asyncio.subprocess.Process, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
