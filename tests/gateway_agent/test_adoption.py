"""A restarted agent adopts attempts its predecessor left running, when the server keeps them.

The runner here is a stand-in for the Docker engine (whose containers outlive the agent
process): its jobs live outside the agent, so "crashing" the first agent leaves them running.
``DockerRunner.adopt`` itself is tested with real containers in test_docker_runner.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.gateway_agent.fake_ingress import FakeIngress
from tests.gateway_agent.test_agent import dispatch, finals_of, stored_log
from unidesk.gateway_agent.agent import Agent
from unidesk.gateway_agent.config import load_config
from unidesk.gateway_agent.resources import detect_resources
from unidesk.gateway_agent.runner import Outcome
from unidesk.gateway_agent.state import StateFile
from unidesk.protocol import AttemptRef, LogChunk, Reconcile


class ExternalJobs:
    """Jobs that outlive the agent, like containers: finished by the test, not by the agent."""

    def __init__(self) -> None:
        self.jobs: dict[AttemptRef, asyncio.Future[int]] = {}
        self.stopped: list[AttemptRef] = []
        self.adopted_after: dict[AttemptRef, int] = {}

    async def _wait(self, ref, reporter, text: str) -> Outcome:
        reporter.log("stdout", text.encode(), None, 111)  # its log position, as Docker's
        code = await asyncio.shield(self.jobs[ref])
        reporter.log("stdout", b"end\n")
        return Outcome(reason="succeeded" if code == 0 else "exit_nonzero", exit_code=code)

    async def run(self, d, reporter) -> Outcome:
        ref = AttemptRef(d.task_id, d.attempt_no)
        self.jobs[ref] = asyncio.get_running_loop().create_future()
        await reporter.running()
        return await self._wait(ref, reporter, "first agent\n")

    async def adopt(self, ref, reporter, *, log_mark: int = 0) -> Outcome:
        self.adopted_after[ref] = log_mark
        return await self._wait(ref, reporter, "second agent\n")

    async def stop(self, ref, reason) -> None:
        self.stopped.append(ref)
        if ref in self.jobs and not self.jobs[ref].done():
            self.jobs[ref].set_result(137)

    async def owned_attempts(self):
        return [r for r, f in self.jobs.items() if not f.done()]

    async def remove_orphans(self, keep) -> None:
        for ref in [r for r in self.jobs if r not in keep]:
            await self.stop(ref, "reconcile")

    async def health(self):
        return None


def make_agent(ingress: FakeIngress, tmp_path: Path, runner: ExternalJobs) -> Agent:
    config = load_config(
        {
            "server_url": ingress.url,
            "token": "t",
            "state_dir": str(tmp_path / "st"),
            "cache_dir": str(tmp_path),
            "backoff_cap_s": 0.2,
        },
        env={},
    )
    return Agent(
        config,
        runner,
        state=StateFile(config.state_path),  # type: ignore[arg-type]
        resources=detect_resources(node_name="n"),
    )


async def crash(agent: Agent, task: asyncio.Task[int]) -> None:
    """What kill -9 does to the agent process (but not to the runner's jobs)."""
    for run in agent._runs.values():
        run.task.cancel()
    task.cancel()
    for t in list(agent._background):
        t.cancel()
    if agent._ws is not None:
        agent._ws.transport.abort()
    await asyncio.gather(task, *[r.task for r in agent._runs.values()], return_exceptions=True)


async def test_restarted_agent_adopts_a_kept_attempt(tmp_path: Path):
    jobs = ExternalJobs()
    ref = AttemptRef("t-adopt", 1)
    async with FakeIngress() as ingress:
        first = make_agent(ingress, tmp_path, jobs)
        task = asyncio.create_task(first.run())
        await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello)
        await ingress.send(dispatch("t-adopt", "irrelevant"))
        await ingress.wait_for(lambda: ingress.current.of(LogChunk))
        first_seqs = [c.seq for c in ingress.current.of(LogChunk)]
        # a chunk the server got has its seq on disk already (saved before it was sent), so a
        # crash right now cannot make the next agent reuse it
        assert StateFile(first.state.path).next_log_seq(ref) > max(first_seqs)
        await crash(first, task)

        second = make_agent(ingress, tmp_path, jobs)
        task2 = asyncio.create_task(second.run())
        await ingress.wait_for(lambda: len(ingress.sessions) == 2 and ingress.current.hello)
        assert ingress.current.hello.running == [ref]
        await ingress.wait_for(lambda: ingress.current.of(LogChunk))
        jobs.jobs[ref].set_result(0)
        await ingress.wait_for(lambda: finals_of(ingress, "t-adopt"))
        final = finals_of(ingress, "t-adopt")[0]
        assert (final.phase, final.reason, final.exit_code) == ("exited", "succeeded", 0)
        assert min(c.seq for c in ingress.current.of(LogChunk)) > max(first_seqs)
        assert stored_log(ingress, "t-adopt") == "first agent\nsecond agent\nend\n"
        assert jobs.stopped == []
        # where the first agent's logged output ended (saved with the seqs): the second one
        # reads the job's output from there (what it wrote while no agent ran)
        assert jobs.adopted_after == {ref: 111}
        second.request_stop()
        assert await asyncio.wait_for(task2, 10) == 0


async def test_restarted_agent_stops_what_the_server_no_longer_expects(tmp_path: Path):
    jobs = ExternalJobs()
    ref = AttemptRef("t-stale", 3)
    async with FakeIngress() as ingress:
        first = make_agent(ingress, tmp_path, jobs)
        task = asyncio.create_task(first.run())
        await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello)
        await ingress.send(dispatch("t-stale", "x", attempt_no=3))
        await ingress.wait_for(lambda: ingress.current.of(LogChunk))
        await crash(first, task)

        ingress.reconcile = lambda hello: Reconcile(keep=[], kill=list(hello.running))
        second = make_agent(ingress, tmp_path, jobs)
        task2 = asyncio.create_task(second.run())
        await ingress.wait_for(lambda: finals_of(ingress, "t-stale"))
        assert ingress.sessions[-1].hello.running == [ref]
        assert finals_of(ingress, "t-stale")[0].reason == "killed"
        assert ref in jobs.stopped and second.running == []
        second.request_stop()
        assert await asyncio.wait_for(task2, 10) == 0


class StuckSeqSave(StateFile):
    """A state file whose save of log seqs never completes: a kill -9 during that write."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.stuck = asyncio.Event()

    async def set_log_seqs(
        self, seqs: dict[AttemptRef, int], marks: dict[AttemptRef, int] | None = None
    ) -> None:
        if seqs:
            self.stuck.set()
            await asyncio.Event().wait()  # until the crash cancels it
        await super().set_log_seqs(seqs, marks)


async def test_crash_before_the_log_seqs_are_saved_reuses_no_seq(tmp_path: Path):
    jobs = ExternalJobs()
    ref = AttemptRef("t-seq", 1)
    async with FakeIngress() as ingress:
        first = make_agent(ingress, tmp_path, jobs)
        first.state = StuckSeqSave(first.state.path)
        sent: list[LogChunk] = []
        send_locked = first._send_locked

        async def recording(msg):  # type: ignore[no-untyped-def]
            if isinstance(msg, LogChunk):
                sent.append(msg)
            return await send_locked(msg)

        first._send_locked = recording  # type: ignore[method-assign]
        task = asyncio.create_task(first.run())
        await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello)
        await ingress.send(dispatch("t-seq", "irrelevant"))
        await asyncio.wait_for(first.state.stuck.wait(), 10)
        assert sent == []  # nothing goes out before its seq is on disk
        await crash(first, task)

        second = make_agent(ingress, tmp_path, jobs)
        task2 = asyncio.create_task(second.run())
        await ingress.wait_for(lambda: len(ingress.sessions) == 2 and ingress.current.hello)
        assert ingress.current.hello.running == [ref]
        await ingress.wait_for(lambda: ingress.current.of(LogChunk))
        jobs.jobs[ref].set_result(0)
        await ingress.wait_for(lambda: finals_of(ingress, "t-seq"))
        first_seqs = {c.seq for c in ingress.sessions[0].of(LogChunk)}
        assert not first_seqs & {c.seq for c in ingress.current.of(LogChunk)}
        assert stored_log(ingress, "t-seq") == "second agent\nend\n"
        second.request_stop()
        assert await asyncio.wait_for(task2, 10) == 0
