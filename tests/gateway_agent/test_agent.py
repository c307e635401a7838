"""The agent against a protocol-speaking loopback server: hello, dispatch, logs, cancel,
reconnect."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.gateway_agent.fake_ingress import FakeIngress
from unidesk.gateway_agent.agent import Agent
from unidesk.gateway_agent.config import load_config
from unidesk.gateway_agent.resources import detect_resources
from unidesk.gateway_agent.state import StateFile
from unidesk.gateway_agent.testing_runner import SubprocessTestRunner
from unidesk.protocol import (
    PROTOCOL_VERSION,
    Ack,
    AttemptRef,
    AttemptState,
    Cancel,
    Dispatch,
    Error,
    Heartbeat,
    LogChunk,
    Reconcile,
)

SHA = "a" * 40


def dispatch(task_id: str, script: str, *, attempt_no: int = 1, timeout_s: int = 60) -> Dispatch:
    return Dispatch(
        task_id=task_id,
        attempt_no=attempt_no,
        code_repo_url="file:///x",
        code_commit_id=SHA,
        env_repo_url="file:///x",
        env_commit_id=SHA,
        dockerfile_path="Dockerfile",
        command=["/bin/sh", "-c", script],
        timeout_s=timeout_s,
    )


class Running:
    """An in-process agent on its own asyncio task."""

    def __init__(self, ingress: FakeIngress, tmp_path: Path, **overrides: object) -> None:
        flags = {
            "server_url": ingress.url,
            "token": "udn_secret",
            "node_name": "n1",
            "labels": {"zone": "lab"},
            "state_dir": str(tmp_path / "state"),
            "cache_dir": str(tmp_path / "cache"),
            "runner": "subprocess-test",
            "backoff_cap_s": 0.2,
            "shutdown_grace_s": 2.0,
            **overrides,
        }
        self.config = load_config(flags, env={})
        self.state = StateFile(self.config.state_path)
        self.agent = Agent(
            self.config,
            SubprocessTestRunner(grace_s=1.0),
            state=self.state,
            resources=detect_resources(node_name="n1", labels=self.config.labels),
        )
        self.task: asyncio.Task[int] | None = None

    def start(self) -> Running:
        self.task = asyncio.create_task(self.agent.run())
        return self

    async def stop(self) -> int:
        assert self.task is not None
        if not self.task.done():
            self.agent.request_stop()
        return await asyncio.wait_for(self.task, 15)


@pytest.fixture
async def ingress():
    async with FakeIngress() as server:
        yield server


@pytest.fixture
async def agents(tmp_path: Path):
    started: list[Running] = []

    def make(ingress: FakeIngress, **overrides: object) -> Running:
        run = Running(ingress, tmp_path, **overrides).start()
        started.append(run)
        return run

    yield make
    for run in started:
        await run.stop()


def finals_of(ingress: FakeIngress, task_id: str) -> list[AttemptState]:
    return [f for f in ingress.finals() if f.task_id == task_id]


def stored_log(ingress: FakeIngress, task_id: str) -> str:
    """What a server that keeps each seq once (dropping repeats) would have stored."""
    kept: dict[int, LogChunk] = {}
    for m in ingress.all_received():
        if isinstance(m, LogChunk) and m.task_id == task_id:
            assert kept.setdefault(m.seq, m) == m, "a resent chunk differs from the first copy"
    return "".join(kept[s].data for s in sorted(kept))


async def test_hello_declares_node_and_token_goes_in_header(ingress, agents):
    agents(ingress)
    await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello)
    session = ingress.current
    hello = session.hello
    assert session.authorization == "Bearer udn_secret"
    assert session.path == "/api/agent/ws" and "udn_secret" not in session.path
    assert hello.protocol_version == PROTOCOL_VERSION
    assert hello.node_name == "n1" and hello.labels == {"zone": "lab"}
    assert hello.cpus >= 1 and hello.memory_mb > 0 and hello.os in ("Linux", "WSL")
    assert hello.running == [] and len(hello.instance_id) == 32
    await ingress.wait_for(lambda: session.of(Heartbeat), 5)
    beat = session.of(Heartbeat)[0]
    assert beat.usage.memory_total_mb > 0 and beat.running == [] and beat.unhealthy_reason is None


async def test_duplicate_dispatch_is_acked_twice_and_runs_once(ingress, agents):
    agents(ingress)
    await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello)
    d = dispatch("t-dup", "echo ran; sleep 0.3")
    await ingress.send(d)
    await ingress.send(d)
    await ingress.wait_for(lambda: finals_of(ingress, "t-dup"))
    session = ingress.current
    assert len(session.of(Ack)) == 2
    running = [m for m in session.of(AttemptState) if m.phase == "running"]
    assert len(running) == 1
    final = finals_of(ingress, "t-dup")[0]
    assert (final.phase, final.reason, final.exit_code) == ("exited", "succeeded", 0)
    assert stored_log(ingress, "t-dup") == "ran\n"
    # Redelivered after it ended: acked again, the final state repeated, nothing run again.
    await ingress.send(d)
    await ingress.wait_for(lambda: len(finals_of(ingress, "t-dup")) == 2)
    assert len(session.of(Ack)) == 3
    assert len([m for m in session.of(AttemptState) if m.phase == "running"]) == 1


async def test_nonzero_exit_and_states_in_order(ingress, agents):
    agents(ingress)
    await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello)
    await ingress.send(dispatch("t-fail", "echo oops >&2; exit 3"))
    await ingress.wait_for(lambda: finals_of(ingress, "t-fail"))
    phases = [m.phase for m in ingress.current.of(AttemptState) if m.task_id == "t-fail"]
    assert phases == ["preparing", "running", "exited"]
    final = finals_of(ingress, "t-fail")[0]
    assert (final.reason, final.exit_code) == ("exit_nonzero", 3)
    chunks = [m for m in ingress.current.of(LogChunk) if m.task_id == "t-fail"]
    assert [c.stream for c in chunks] == ["stderr"] and chunks[0].data == "oops\n"


async def test_logs_resent_after_reconnect_in_order_without_duplicates(ingress, agents):
    agent = agents(ingress)
    await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello)
    script = "for i in $(seq 1 80); do echo line$i; sleep 0.05; done"  # about 4 s: several flushes
    await ingress.send(dispatch("t-log", script))
    first = ingress.current
    await ingress.wait_for(lambda: first.of(LogChunk))
    ingress.ack_logs = False  # from now on chunks stay unacked
    acked_up_to = max(c.seq for c in first.of(LogChunk))
    await ingress.wait_for(lambda: max(c.seq for c in first.of(LogChunk)) > acked_up_to)
    first.ws.transport.abort()  # the network goes away: no close frame
    await ingress.wait_for(lambda: len(ingress.sessions) == 2 and ingress.current.hello)
    second = ingress.current
    assert second.hello.running == [AttemptRef("t-log", 1)]
    ingress.ack_logs = True
    await ingress.wait_for(lambda: finals_of(ingress, "t-log"))
    resent = [c.seq for c in second.of(LogChunk)]
    assert resent == sorted(resent) and len(resent) == len(set(resent))
    assert min(resent) > acked_up_to, "acked chunks must not be sent again"
    assert stored_log(ingress, "t-log") == "".join(f"line{i}\n" for i in range(1, 81))
    # Every chunk of the attempt reaches the server before its final state.
    last_log = max(i for i, m in enumerate(second.received) if isinstance(m, LogChunk))
    final_at = next(
        i
        for i, m in enumerate(second.received)
        if isinstance(m, AttemptState) and m.phase == "exited"
    )
    assert last_log < final_at
    await ingress.wait_for(lambda: not agent.agent._logs)


async def test_cancel_stops_the_attempt(ingress, agents):
    agents(ingress)
    await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello)
    await ingress.send(dispatch("t-cancel", "echo started; sleep 30"))
    await ingress.wait_for(
        lambda: any(m.phase == "running" for m in ingress.current.of(AttemptState))
    )
    await ingress.send(Cancel(task_id="t-cancel", attempt_no=1))
    await ingress.wait_for(lambda: finals_of(ingress, "t-cancel"), 5)
    assert finals_of(ingress, "t-cancel")[0].reason == "cancelled"
    # Cancel of an attempt this node never had: reported, not ignored.
    await ingress.send(Cancel(task_id="t-unknown", attempt_no=2))
    await ingress.wait_for(lambda: finals_of(ingress, "t-unknown"))
    assert finals_of(ingress, "t-unknown")[0].phase == "failed"


async def test_reconcile_kill_list_stops_attempts(ingress, agents):
    agents(ingress)
    await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello)
    await ingress.send(dispatch("t-keep", "sleep 30"))
    await ingress.send(dispatch("t-kill", "sleep 30"))
    await ingress.wait_for(
        lambda: len([m for m in ingress.current.of(AttemptState) if m.phase == "running"]) == 2
    )
    await ingress.send(Reconcile(keep=[AttemptRef("t-keep", 1)], kill=[AttemptRef("t-kill", 1)]))
    await ingress.wait_for(lambda: finals_of(ingress, "t-kill"), 5)
    assert finals_of(ingress, "t-kill")[0].reason == "killed"
    assert not finals_of(ingress, "t-keep")
    await ingress.send(Cancel(task_id="t-keep", attempt_no=1))
    await ingress.wait_for(lambda: finals_of(ingress, "t-keep"), 5)


async def test_concurrency_limit_queues_dispatches(ingress, agents):
    agents(ingress, concurrency=1)
    await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello)
    await ingress.send(dispatch("t-a", "sleep 0.4"))
    await ingress.send(dispatch("t-b", "sleep 0.1"))
    await ingress.wait_for(lambda: finals_of(ingress, "t-b"), 10)
    order = [(m.task_id, m.phase) for m in ingress.current.of(AttemptState)]
    assert len(ingress.current.of(Ack)) == 2
    assert order.index(("t-a", "exited")) < order.index(("t-b", "preparing"))


async def test_auth_refusal_is_final(tmp_path: Path):
    async with FakeIngress(refuse_with=4401) as ingress:
        run = Running(ingress, tmp_path).start()
        code = await asyncio.wait_for(run.task, 10)
        await asyncio.sleep(0.5)  # a retrying agent would have dialed again by now (cap 0.2 s)
        assert code == 77
        assert len(ingress.sessions) == 1


async def test_restart_reports_leftovers_and_unsent_finals(ingress, tmp_path: Path):
    state = StateFile(tmp_path / "state" / "agent-state.json")
    await state.own(AttemptRef("t-left", 1))
    await state.finish(
        AttemptState(
            task_id="t-done", attempt_no=2, phase="exited", reason="succeeded", exit_code=0
        )
    )
    run = Running(ingress, tmp_path).start()
    try:
        await ingress.wait_for(
            lambda: {f.task_id for f in ingress.finals()} == {"t-left", "t-done"}
        )
        left = finals_of(ingress, "t-left")[0]
        assert (left.phase, left.reason) == ("failed", "killed")
        # Ended attempts whose finals are unconfirmed are declared, so reconcile keeps them.
        assert set(ingress.current.hello.running) == {
            AttemptRef("t-left", 1),
            AttemptRef("t-done", 2),
        }
        await ingress.wait_for(lambda: not StateFile(run.config.state_path).state.finals)
        assert StateFile(run.config.state_path).state.owned == []
        # A redelivered dispatch of the finished attempt is not run again.
        await ingress.send(dispatch("t-done", "echo again", attempt_no=2))
        await ingress.wait_for(lambda: len(finals_of(ingress, "t-done")) == 2)
        assert not [m for m in ingress.current.of(AttemptState) if m.phase == "running"]
    finally:
        await run.stop()


async def test_graceful_stop_finishes_reports_and_closes_1000(ingress, tmp_path: Path):
    run = Running(ingress, tmp_path, shutdown_grace_s=0.5).start()
    await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello)
    await ingress.send(dispatch("t-short", "sleep 0.2; echo done"))
    await ingress.send(dispatch("t-long", "sleep 30"))
    await ingress.wait_for(
        lambda: len([m for m in ingress.current.of(AttemptState) if m.phase == "running"]) == 2
    )
    run.agent.request_stop()
    await ingress.send(dispatch("t-late", "echo never"))
    assert await asyncio.wait_for(run.task, 10) == 0
    await ingress.wait_for(lambda: ingress.current.close_code is not None)
    session = ingress.current
    assert session.close_code == 1000
    assert any(isinstance(m, Error) and m.code == "draining" for m in session.received)
    assert not [m for m in session.of(Ack) if m.task_id == "t-late"]
    assert finals_of(ingress, "t-short")[0].reason == "succeeded"
    assert finals_of(ingress, "t-long")[0].reason == "killed"
    assert stored_log(ingress, "t-short") == "done\n"
    assert StateFile(run.config.state_path).state.finals == []


async def test_unacked_final_is_kept_and_resent_after_reconnect(tmp_path: Path):
    async with FakeIngress(ack_finals=False) as ingress:
        run = Running(ingress, tmp_path).start()
        try:
            await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello)
            await ingress.send(dispatch("t-final", "exit 4"))
            await ingress.wait_for(lambda: finals_of(ingress, "t-final"))
            await asyncio.sleep(0.3)
            assert [f.task_id for f in StateFile(run.config.state_path).state.finals] == ["t-final"]
            ingress.ack_finals = True
            ingress.current.ws.transport.abort()
            await ingress.wait_for(
                lambda: len(ingress.sessions) == 2 and finals_of(ingress, "t-final")[1:]
            )
            assert finals_of(ingress, "t-final")[1].exit_code == 4
            await ingress.wait_for(lambda: not StateFile(run.config.state_path).state.finals)
        finally:
            await run.stop()
