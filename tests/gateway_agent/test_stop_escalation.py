"""Stops that always end, against the real engine: SIGTERM ignored, Docker's stop not confirmed
(the container's containerd shim is SIGSTOPped, so Docker's stop hangs exactly as it did under a
fork bomb), the cgroup kill, and the infra_error + unhealthy node when even that fails. The pids
limit is shown with a bounded number of sleeping processes, never a real fork bomb."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import aiodocker
import msgspec
import pytest

from tests.gateway_agent.conftest import remove_node_containers
from tests.gateway_agent.fake_reporter import FakeReporter
from unidesk.gateway_agent.container_spec import container_name
from unidesk.gateway_agent.docker_runner import DockerRunner
from unidesk.gateway_agent.exec_config import ExecConfig
from unidesk.protocol import AttemptRef

pytestmark = pytest.mark.docker

LOOP = "trap '' TERM; echo ready; while true; do sleep 1; done"


def shim_pid(container_id: str) -> int:
    """The containerd shim that serves this one container (``-id <container id>`` in its argv)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"containerd-shim" in argv[0] and container_id.encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no containerd shim found for {container_id[:12]}")


@contextlib.contextmanager
def shim_stopped(container_id: str) -> Iterator[int]:
    """SIGSTOP the container's shim (Docker's stop, kill and inspect of it then hang); always
    SIGCONT it again, so the engine finishes what it was asked."""
    pid = shim_pid(container_id)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)


async def remove_eventually(node: str) -> None:
    """The node's containers removed, waiting (bounded) for a removal Docker has in progress."""
    for _ in range(60):
        try:
            await remove_node_containers(node)
            return
        except aiodocker.DockerError as exc:
            if exc.status != 409:
                raise
        await asyncio.sleep(0.5)
    await remove_node_containers(node)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


async def started(runner: DockerRunner, world, reporter: FakeReporter, docker, **kw):  # type: ignore[no-untyped-def]
    dispatch = world.dispatch(["sh", "-c", LOOP], **kw)
    run = asyncio.create_task(runner.run(dispatch, reporter))
    await asyncio.wait_for(reporter.started.wait(), 60)
    ref = AttemptRef(dispatch.task_id, 1)
    info = await docker.containers.container(container_name(ref)).show()
    return run, ref, info["Id"], int(info["State"]["Pid"])


def test_default_pids_limit_contains_a_fork_bomb_on_two_cores() -> None:
    assert ExecConfig().pids_limit == 256


async def test_pids_limit_holds_with_a_bounded_number_of_sleepers(
    exec_config, node_name, world, env_image_cleanup
) -> None:
    config = msgspec.structs.replace(exec_config, pids_limit=ExecConfig().pids_limit)
    runner = DockerRunner(config, node_name=node_name)
    # 300 sleepers (more than the limit, bounded), started by a subshell that stops at the first
    # failed fork; then only shell builtins, which need no process
    script = (
        "(for i in $(seq 1 300); do sleep 20 & done); "
        "d=/sys/fs/cgroup/pids; [ -e $d/pids.max ] || d=/sys/fs/cgroup; "
        'read max < $d/pids.max; read cur < $d/pids.current; echo "pids $cur of $max"'
    )
    reporter = FakeReporter()
    try:
        outcome = await runner.run(world.dispatch(["sh", "-c", script], timeout_s=60), reporter)
    finally:
        await runner.close()
        await remove_node_containers(node_name)
    assert outcome.reason == "succeeded", (outcome, reporter.text("stderr")[-500:])
    line = reporter.text("stdout").strip().splitlines()[-1]
    cur, max_ = int(line.split()[1]), int(line.split()[3])
    assert max_ == 256 and cur <= 256, line
    assert "can't fork" in reporter.text("stderr"), "the limit was reached and held"


async def test_task_ignoring_sigterm_is_killed_at_its_timeout(runner, world, docker) -> None:
    reporter = FakeReporter()
    outcome = await runner.run(world.dispatch(["sh", "-c", LOOP], timeout_s=2), reporter)
    assert outcome.reason == "timed_out", outcome
    assert outcome.exit_code == 137, "SIGKILL after the grace period"
    assert "ready" in reporter.text("stdout")


async def test_stop_docker_does_not_confirm_ends_through_the_cgroup(
    exec_config, node_name, world, docker, env_image_cleanup
) -> None:
    runner = DockerRunner(
        msgspec.structs.replace(exec_config, docker_timeout_s=2.0), node_name=node_name
    )
    reporter = FakeReporter()
    try:
        run, ref, container_id, pid = await started(runner, world, reporter, docker)
        with shim_stopped(container_id):
            await runner.stop(ref, "cancelled")
            outcome = await asyncio.wait_for(run, 60)
            assert not alive(pid), "the container's processes are gone"
        assert outcome.reason == "cancelled", outcome
        assert "Docker's stop was not confirmed" in outcome.message
        assert "killed through the container's cgroup" in outcome.message
        assert "killed through the container's cgroup" in reporter.text("system")
        # the stop ended: nothing makes the node unhealthy (a slow 'docker version' under load
        # with this test's 2 s bound is not what is checked here)
        assert "could not stop" not in (await runner.health() or "")
    finally:
        await runner.close()
        await remove_eventually(node_name)


async def test_stop_that_even_the_cgroup_kill_cannot_end_is_infra_error_and_unhealthy(
    exec_config, node_name, world, docker, env_image_cleanup, tmp_path
) -> None:
    no_cgroups = tmp_path / "no-cgroups"  # a cgroup root that does not show this container
    no_cgroups.mkdir()
    runner = DockerRunner(
        msgspec.structs.replace(exec_config, docker_timeout_s=2.0, cgroup_root=str(no_cgroups)),
        node_name=node_name,
    )
    reporter = FakeReporter()
    try:
        run, _, container_id, _ = await started(runner, world, reporter, docker, timeout_s=2)
        with shim_stopped(container_id):
            outcome = await asyncio.wait_for(run, 60)  # the timeout starts the stop
            assert outcome.reason == "infra_error", outcome
            assert "cgroup kill failed" in outcome.message
            assert "could not stop the container" in reporter.text("system")
            reason = await runner.health()
            assert reason is not None and "could not stop the container" in reason
        # the shim runs again: Docker finishes the stop, and the node is healthy again
        for _ in range(100):
            if "could not stop" not in (await runner.health() or ""):
                break
            await asyncio.sleep(0.3)
        assert "could not stop" not in (await runner.health() or "")
        with pytest.raises(aiodocker.DockerError):
            await docker.containers.container(container_id).show()
    finally:
        await runner.close()
        await remove_eventually(node_name)
