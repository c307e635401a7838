"""Faults a new user runs into, each against the real engine and real repositories."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from tests.gateway_agent.conftest import remove_node_containers
from tests.gateway_agent.fake_reporter import FakeReporter
from unidesk.gateway_agent.docker_runner import DockerRunner
from unidesk.protocol import AttemptRef

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


async def ours(docker, node: str) -> list:
    return await docker.containers.list(all=True, filters={"label": [f"unidesk.node={node}"]})


@pytest.mark.parametrize(
    "url, why",
    [
        ("ext::sh -c touch% /tmp/unidesk-pwned", "'<transport>::'"),
        ("--upload-pack=touch /tmp/unidesk-pwned", "starts with '-'"),
        ("-u", "starts with '-'"),
    ],
)
async def test_hostile_repo_urls_end_as_infra_error(
    runner, world, docker, node_name, url, why
) -> None:
    reporter = FakeReporter()
    dispatch = world.dispatch(["true"], code_repo_url=url)
    outcome = await runner.run(dispatch, reporter)
    assert outcome.reason == "infra_error" and why in outcome.message
    assert why in reporter.text("system")
    assert not Path("/tmp/unidesk-pwned").exists()
    assert await ours(docker, node_name) == []
    assert not runner.workspaces.path(AttemptRef(dispatch.task_id, 1)).exists()


async def test_missing_code_commit_names_repo_and_commit(runner, world) -> None:
    missing = "ab" * 20
    outcome = await runner.run(world.dispatch(["true"], code_sha=missing), FakeReporter())
    assert outcome.reason == "infra_error"
    assert f"commit {missing} not found in repository {world.code.url}" == outcome.message


@pytest.mark.parametrize(
    "path, why",
    [
        ("../Dockerfile", "contains '..'"),
        ("/etc/passwd", "is absolute"),
        ("escape/Dockerfile", "resolves outside"),
    ],
)
async def test_bad_dockerfile_path_ends_as_infra_error(runner, world, path, why) -> None:
    env_sha = world.env.commit(symlinks={"escape/Dockerfile": "/etc/hostname"})
    reporter = FakeReporter()
    outcome = await runner.run(
        world.dispatch(["true"], env_sha=env_sha, dockerfile_path=path), reporter
    )
    assert outcome.reason == "infra_error" and why in outcome.message
    assert "running" not in reporter.events


async def test_failing_dockerfile_ends_as_infra_error_with_build_log(runner, world) -> None:
    env_sha = world.env.commit({"bad/Dockerfile": f"FROM {world.image}\nRUN echo nope && false\n"})
    reporter = FakeReporter()
    outcome = await runner.run(
        world.dispatch(["true"], env_sha=env_sha, dockerfile_path="bad/Dockerfile"), reporter
    )
    assert outcome.reason == "infra_error" and "env image build failed" in outcome.message
    assert "nope" in reporter.text("build") and "returned a non-zero code: 1" in reporter.text(
        "build"
    )


async def test_huge_output_is_capped_with_a_marker(
    exec_config, node_name, world, env_image_cleanup
) -> None:
    cap = 2 * 1024 * 1024
    runner = DockerRunner(
        msgspec.structs.replace(exec_config, log_cap_bytes=cap), node_name=node_name
    )
    try:
        reporter = FakeReporter()
        outcome = await runner.run(
            world.dispatch(
                ["sh", "-c", "head -c 20000000 /dev/zero | tr '\\0' x; echo done-writing >&2"]
            ),
            reporter,
        )
    finally:
        await runner.close()
    assert outcome.reason == "succeeded"
    total = sum(len(reporter.logs[s]) for s in ("stdout", "stderr", "build"))
    assert total == cap
    system = reporter.text("system")
    assert f"log truncated: this attempt's output reached the node's cap of {cap} bytes" in system
    assert "bytes of output were discarded" in system
    assert "done-writing" not in reporter.text("stderr")


async def test_docker_unreachable_is_a_health_reason_and_an_infra_error(
    exec_config, world, tmp_path
) -> None:
    config = msgspec.structs.replace(exec_config, docker_url=f"unix://{tmp_path}/no-docker.sock")
    runner = DockerRunner(config, node_name="unreachable")
    try:
        reason = await runner.health()
        assert reason is not None and reason.startswith("docker unreachable:")
        outcome = await runner.run(world.dispatch(["true"]), FakeReporter())
    finally:
        await runner.close()
    assert outcome.reason == "infra_error"
    assert "docker" in outcome.message and "no-docker.sock" in outcome.message


async def test_healthy_runner_has_no_reason(runner) -> None:
    assert await runner.health() is None


async def test_kill_9_then_restart_reconciles_and_leaves_no_orphan(
    exec_config, node_name, world, docker, env_image_cleanup
) -> None:
    keep = world.dispatch(["sh", "-c", "sleep 3; echo after-restart; exit 4"], timeout_s=60)
    orphan = world.dispatch(["sleep", "120"])
    procs = []
    try:
        for dispatch in (keep, orphan):
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.gateway_agent.runner_process",
                    msgspec.json.encode(exec_config).decode(),
                    node_name,
                    msgspec.json.encode(dispatch).decode(),
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            procs.append(proc)
            for line in proc.stdout:  # type: ignore[union-attr]
                if line.startswith("RUNNING"):
                    break
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert len(await ours(docker, node_name)) == 2  # the containers outlived the agent

        runner = DockerRunner(exec_config, node_name=node_name)
        keep_ref, orphan_ref = AttemptRef(keep.task_id, 1), AttemptRef(orphan.task_id, 1)
        try:
            owned = await runner.owned_attempts()
            assert sorted(owned, key=lambda r: r.task_id) == sorted(
                [keep_ref, orphan_ref], key=lambda r: r.task_id
            )
            await runner.remove_orphans({keep_ref})
            left = await ours(docker, node_name)
            assert [c._container["Labels"]["unidesk.task_id"] for c in left] == [keep.task_id]
            assert not runner.workspaces.path(orphan_ref).exists()
            reporter = FakeReporter()
            outcome = await asyncio.wait_for(runner.adopt(keep_ref, reporter), 60)
        finally:
            await runner.close()
        assert (outcome.reason, outcome.exit_code) == ("exit_nonzero", 4)
        assert "after-restart" in reporter.text("stdout")
        assert await ours(docker, node_name) == []
        assert not runner.workspaces.path(keep_ref).exists()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        await remove_node_containers(node_name)


async def test_adopting_an_ended_container_reads_what_it_wrote_while_no_agent_ran(
    exec_config, node_name, world, docker, env_image_cleanup
) -> None:
    """kill -9 of the agent after it logged the first line; the container writes more and ends
    while no agent runs: the adopting runner reads the lines after the logged position (once)
    and reports the exit code."""
    d = world.dispatch(["sh", "-c", "echo one; sleep 2; echo two; echo three >&2; exit 3"])
    ref = AttemptRef(d.task_id, 1)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.gateway_agent.runner_process",
            msgspec.json.encode(exec_config).decode(),
            node_name,
            msgspec.json.encode(d).decode(),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        mark = 0
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("MARK"):
                mark = int(line.split()[1])
                break
        assert mark, "the first line's log position"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for _ in range(100):  # the container ends on its own, with no agent
            states = [c._container["State"] for c in await ours(docker, node_name)]
            if states == ["exited"]:
                break
            await asyncio.sleep(0.1)
        assert states == ["exited"]
        runner = DockerRunner(exec_config, node_name=node_name)
        reporter = FakeReporter()
        try:
            outcome = await asyncio.wait_for(runner.adopt(ref, reporter, log_mark=mark), 60)
        finally:
            await runner.close()
        assert (outcome.reason, outcome.exit_code) == ("exit_nonzero", 3)
        assert reporter.text("stdout") == "two\n"
        assert reporter.text("stderr") == "three\n"
        assert "ended while the agent was down" in reporter.text("system")
        assert await ours(docker, node_name) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        await remove_node_containers(node_name)


async def test_reconcile_calls_survive_docker_being_unreachable(exec_config, tmp_path) -> None:
    config = msgspec.structs.replace(exec_config, docker_url=f"unix://{tmp_path}/no-docker.sock")
    runner = DockerRunner(config, node_name="unreachable")
    try:
        assert await runner.owned_attempts() == []
        await runner.remove_orphans(set())
        await runner.stop(AttemptRef("nope", 1), "cancelled")
    finally:
        await runner.close()


async def test_docker_going_away_and_returning_is_seen_by_health(
    exec_config, world, tmp_path, env_image_cleanup
) -> None:
    from tests.gateway_agent.socket_proxy import SocketProxy

    proxy = SocketProxy(tmp_path / "docker.sock")
    await proxy.start()
    config = msgspec.structs.replace(exec_config, docker_url=f"unix://{proxy.path}")
    runner = DockerRunner(config, node_name=f"proxy-{tmp_path.name}")
    try:
        assert await runner.health() is None
        await proxy.stop()
        reason = await runner.health()
        assert reason is not None and reason.startswith("docker unreachable:")
        outcome = await runner.run(world.dispatch(["true"]), FakeReporter())
        assert outcome.reason == "infra_error" and "docker" in outcome.message
        await proxy.start()
        assert await runner.health() is None
        outcome = await runner.run(world.dispatch(["sh", "-c", "echo back"]), FakeReporter())
        assert outcome.reason == "succeeded"
    finally:
        await runner.close()
        await proxy.stop()
