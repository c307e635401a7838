"""Hostile tasks on a node, against the real engine: a memory hog is reported as out of memory,
a task that closes its stdout and stderr and sleeps is still cancelled."""

from __future__ import annotations

import asyncio

import pytest

from tests.gateway_agent.fake_reporter import FakeReporter
from unidesk.gateway_agent.docker_runner import DockerRunner
from unidesk.protocol import AttemptRef

pytestmark = pytest.mark.docker

# busybox: a shell variable doubled until the memory limit kills the shell (PID 1's child)
HOG = 'echo start; x=aaaaaaaaaaaaaaaa; while true; do x="$x$x"; done'


async def test_memory_hog_is_reported_as_out_of_memory(runner: DockerRunner, world) -> None:
    reporter = FakeReporter()
    outcome = await runner.run(
        world.dispatch(["sh", "-c", HOG], memory_mb=16, timeout_s=60), reporter
    )
    assert outcome.reason == "exit_nonzero", outcome
    assert outcome.exit_code == 137, outcome
    assert "out of memory" in (outcome.message or ""), outcome


async def test_memory_hog_in_a_child_is_reported_as_out_of_memory(
    runner: DockerRunner, world
) -> None:
    reporter = FakeReporter()
    script = f"( {HOG} ); echo child-ended-$?; exit 3"
    outcome = await runner.run(
        world.dispatch(["sh", "-c", script], memory_mb=16, timeout_s=60),
        reporter,
    )
    assert outcome.reason == "exit_nonzero", outcome
    assert "child-ended-137" in reporter.text("stdout")
    assert "out of memory" in (outcome.message or ""), outcome


async def test_task_closing_its_output_and_sleeping_is_cancelled(
    runner: DockerRunner, world
) -> None:
    reporter = FakeReporter()
    dispatch = world.dispatch(
        ["sh", "-c", "echo before; exec >&- 2>&-; trap '' TERM; sleep 600"], timeout_s=120
    )
    run = asyncio.create_task(runner.run(dispatch, reporter))
    await asyncio.wait_for(reporter.started.wait(), 60)
    for _ in range(100):
        if "before" in reporter.text("stdout"):
            break
        await asyncio.sleep(0.1)
    await runner.stop(AttemptRef(dispatch.task_id, 1), "cancelled")
    outcome = await asyncio.wait_for(run, 60)
    assert outcome.reason == "cancelled", outcome
    assert "before" in reporter.text("stdout")
