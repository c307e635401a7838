"""DockerRunner against the real engine: pinned code in a built env, reuse, exit codes, stop."""

from __future__ import annotations

import asyncio
import time

import aiodocker
import pytest

from tests.gateway_agent.fake_reporter import FakeReporter
from unidesk.protocol import AttemptRef

pytestmark = pytest.mark.docker


async def node_containers(docker: aiodocker.Docker, node: str) -> list:
    return await docker.containers.list(all=True, filters={"label": [f"unidesk.node={node}"]})


async def test_pinned_commit_runs_in_built_env_then_env_is_reused(
    runner, world, docker, node_name
) -> None:
    world.code.commit({"hello.txt": "a later commit the task must not see\n"})
    reporter = FakeReporter()
    dispatch = world.dispatch(
        [
            "sh",
            "-c",
            "cat hello.txt; echo to-stderr >&2; echo id=$UNIDESK_TASK_ID/$UNIDESK_ATTEMPT "
            "pwd=$(pwd) mine=$MY_VAR",
        ],
        env={"MY_VAR": "from-the-task"},
        attempt_no=2,
    )
    outcome = await runner.run(dispatch, reporter)
    assert outcome.reason == "succeeded" and outcome.exit_code == 0, outcome
    out = reporter.text("stdout")
    assert "hello from the pinned commit" in out and "later commit" not in out
    assert f"id={dispatch.task_id}/2 pwd=/workspace mine=from-the-task" in out
    assert reporter.text("stderr") == "to-stderr\n"
    assert "env-built" in reporter.text("build")
    assert reporter.events == ["fetch_code", "fetch_env", "build_image", "running"]
    assert await node_containers(docker, node_name) == []
    assert not runner.workspaces.path(AttemptRef(dispatch.task_id, 2)).exists()

    new_code = world.code.commit({"hello.txt": "second task, new code commit\n"})
    second = FakeReporter()
    outcome = await runner.run(world.dispatch(["cat", "hello.txt"], code_sha=new_code), second)
    assert outcome.reason == "succeeded"
    assert second.text("stdout") == "second task, new code commit\n"
    assert second.events == ["fetch_code", "fetch_env", "running"]  # no build_image
    assert not second.logs["build"]
    assert "reused (no build)" in second.text("system")


async def test_failing_command_reports_its_exit_code(runner, world) -> None:
    outcome = await runner.run(world.dispatch(["sh", "-c", "echo failing; exit 3"]), FakeReporter())
    assert (outcome.reason, outcome.exit_code) == ("exit_nonzero", 3)


async def test_command_missing_from_image_is_exit_127_with_message(
    runner, world, docker, node_name
) -> None:
    reporter = FakeReporter()
    outcome = await runner.run(world.dispatch(["no-such-program", "--x"]), reporter)
    assert (outcome.reason, outcome.exit_code) == ("exit_nonzero", 127)
    assert "'no-such-program' not found in image unidesk-env:" in outcome.message
    assert "not found in image" in reporter.text("system")
    assert await node_containers(docker, node_name) == []


async def test_timeout_stops_the_container(runner, world, docker, node_name) -> None:
    reporter = FakeReporter()
    started = time.monotonic()
    outcome = await runner.run(world.dispatch(["sleep", "60"], timeout_s=1), reporter)
    assert outcome.reason == "timed_out", outcome
    assert time.monotonic() - started < 30
    assert "timeout of 1 s reached" in reporter.text("system")
    assert await node_containers(docker, node_name) == []


async def test_cancel_while_running(runner, world, docker, node_name) -> None:
    reporter = FakeReporter()
    dispatch = world.dispatch(["sh", "-c", "echo started; sleep 60"])
    run = asyncio.create_task(runner.run(dispatch, reporter))
    await asyncio.wait_for(reporter.started.wait(), 60)
    assert await runner.owned_attempts() == [AttemptRef(dispatch.task_id, 1)]
    await runner.stop(AttemptRef(dispatch.task_id, 1), "cancelled")
    outcome = await asyncio.wait_for(run, 30)
    assert outcome.reason == "cancelled"
    assert await node_containers(docker, node_name) == []
    assert not runner.workspaces.path(AttemptRef(dispatch.task_id, 1)).exists()


async def test_cancel_during_image_build_aborts_the_build(runner, world, docker) -> None:
    env_sha = world.env.commit(
        {"slow/Dockerfile": f"FROM {world.image}\nRUN echo build-begins && sleep 30\n"}
    )
    reporter = FakeReporter()
    dispatch = world.dispatch(["true"], env_sha=env_sha, dockerfile_path="slow/Dockerfile")
    run = asyncio.create_task(runner.run(dispatch, reporter))
    await asyncio.wait_for(reporter.stage_seen["build_image"].wait(), 60)
    for _ in range(100):
        if "build-begins" in reporter.text("build"):
            break
        await asyncio.sleep(0.1)
    started = time.monotonic()
    await runner.stop(AttemptRef(dispatch.task_id, 1), "cancelled")
    outcome = await asyncio.wait_for(run, 30)
    assert outcome.reason == "cancelled" and time.monotonic() - started < 10
    assert "running" not in reporter.events
    from unidesk.gateway_agent.envbuild import env_tag

    assert not await runner.envs.image_exists(
        docker, env_tag(world.env.url, env_sha, "slow/Dockerfile")
    )
    for _ in range(50):  # the engine removes the intermediate build container
        busy = [
            c
            for c in await docker.containers.list(all=True)
            if "sleep 30" in " ".join(c._container.get("Command", "").split())
        ]
        if not busy:
            break
        await asyncio.sleep(0.2)
    assert not busy


async def test_duplicate_dispatch_runs_once(runner, world) -> None:
    dispatch = world.dispatch(["sh", "-c", "echo once"])
    first, second = FakeReporter(), FakeReporter()
    a, b = await asyncio.gather(runner.run(dispatch, first), runner.run(dispatch, second))
    assert a == b and a.reason == "succeeded"
    assert first.text("stdout") + second.text("stdout") == "once\n"


async def test_container_is_hardened_and_limited(runner, world) -> None:
    reporter = FakeReporter()
    script = (
        "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; "
        "echo pids=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max); "
        "echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat "
        "/sys/fs/cgroup/memory.max); "
        "echo links=$(ls /sys/class/net | tr '\\n' ' '); "
        "test -e /var/run/docker.sock && echo HAS-DOCKER-SOCK; "
        "touch /workspace/written && echo wrote"
    )
    outcome = await runner.run(world.dispatch(["sh", "-c", script], memory_mb=64), reporter)
    out = reporter.text("stdout")
    assert outcome.reason == "succeeded", (outcome, out, reporter.text("stderr"))
    assert "CapEff:\t0000000000000000" in out
    assert "NoNewPrivs:\t1" in out
    assert f"pids={runner.config.pids_limit}" in out
    assert f"mem={64 * 1024 * 1024}" in out
    assert "links=lo\n" in out  # network mode none: loopback only
    assert "HAS-DOCKER-SOCK" not in out and "wrote" in out


async def test_output_reaches_the_reporter_in_the_order_it_was_written(runner, world) -> None:
    script = (
        "for i in 1 2 3 4 5; do echo out-$i; sleep 0.2; echo err-$i >&2; sleep 0.2; done; "
        "printf 'no-newline'"
    )
    reporter = FakeReporter()
    outcome = await runner.run(world.dispatch(["sh", "-c", script]), reporter)
    assert outcome.reason == "succeeded", outcome
    calls = [c for c in reporter.calls if c[0] in ("stdout", "stderr")]
    lines = [(stream, data.decode()) for stream, data, _ in calls]
    expected = [
        (stream, f"{name}-{n}\n")
        for n in range(1, 6)
        for stream, name in (("stdout", "out"), ("stderr", "err"))
    ]
    assert lines == [*expected, ("stdout", "no-newline")], lines
    stamps = [ts for _, _, ts in calls]
    assert all(ts is not None for ts in stamps) and stamps == sorted(stamps)  # type: ignore[type-var]
