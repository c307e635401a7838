"""Scheduling policy on a real PostgreSQL with simulated nodes: no head-of-line starvation,
reservations, pending reasons, fair share between users, quotas, retry backoff and avoidance,
GPU model matching."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from tests.core.sched_helpers import SimCluster
from unidesk.core.db.engine import make_engine, make_sessionmaker
from unidesk.core.events.models import Event
from unidesk.core.scheduler.service import Scheduler
from unidesk.core.settings import Settings


@pytest.fixture
async def sim(database_url: str) -> AsyncIterator[SimCluster]:
    engine = make_engine(database_url, pool_size=4)
    yield SimCluster(make_sessionmaker(engine))
    await engine.dispose()


def scheduler(sim: SimCluster, **settings: Any) -> Scheduler:
    return Scheduler(sim.sessions, Settings(**settings))


async def kinds(sim: SimCluster, task_id: Any) -> list[str]:
    async with sim.sessions() as s:
        return list(
            (
                await s.scalars(
                    select(Event.kind).where(Event.subject_id == str(task_id)).order_by(Event.id)
                )
            ).all()
        )


async def test_a_cpu_task_behind_600_unrunnable_gpu_tasks_is_assigned(sim: SimCluster) -> None:
    alice = await sim.user("alice")
    await sim.nodes(2, cpus=4)  # no GPUs anywhere
    gpu_tasks = await sim.tasks(600, alice, gpus=1, priority=50)
    [cpu_task] = await sim.tasks(1, alice, priority=0)
    assert await scheduler(sim).run_pass() == 1
    assert (await sim.task(cpu_task)).state == "assigned"
    blocked = await sim.task(gpu_tasks[0])
    assert blocked.state == "pending" and blocked.pending_reason == "no_node_fits"
    assert "needs 1 GPUs" in (blocked.unschedulable_reason or "")


async def test_tasks_that_wait_for_busy_gpus_do_not_block_cpu_work(sim: SimCluster) -> None:
    alice = await sim.user("alice")
    await sim.nodes(1, cpus=8, gpus=[{"index": 0, "model": "A100", "memory_mb": 81920}])
    await sim.tasks(1, alice, gpus=1)
    sched = scheduler(sim)
    assert await sched.run_pass() == 1
    waiting = await sim.tasks(600, alice, gpus=1, priority=10)
    [cpu] = await sim.tasks(1, alice)
    assert await sched.run_pass() == 1
    assert (await sim.task(cpu)).state == "assigned"
    top = await sim.task(waiting[0])
    assert top.pending_reason == "waiting_for_resources"
    assert (top.pending_detail or {}).get("reserved_node") == "node-0000"
    assert (await sim.task(waiting[1])).pending_reason == "waiting_for_resources"
    # The reason is recorded once, not on every pass.
    await sched.run_pass()
    assert (await kinds(sim, waiting[1])).count("task.waiting") == 1


async def test_reservation_keeps_long_small_tasks_off_the_node_a_big_task_waits_for(
    sim: SimCluster,
) -> None:
    alice = await sim.user("alice")
    await sim.nodes(1, prefix="big", cpus=4)
    [running] = await sim.tasks(1, alice, cpus=2, timeout_s=100)
    sched = scheduler(sim)
    assert await sched.run_pass() == 1
    # The 4-CPU task waits for the 2 CPUs the running task holds (expected end in 100 s).
    [big] = await sim.tasks(1, alice, cpus=4, priority=100)
    [long_small] = await sim.tasks(1, alice, cpus=1, timeout_s=3600)
    [short_small] = await sim.tasks(1, alice, cpus=1, timeout_s=3600, expected_duration_s=30)
    assert await sched.run_pass() == 1
    assert (await sim.task(short_small)).state == "assigned"  # ends before the big one starts
    held = await sim.task(long_small)
    assert held.state == "pending" and held.pending_reason == "held_for_reservation"
    assert (held.pending_detail or {}).get("node") == "big-0000"
    assert (await sim.task(big)).pending_reason == "waiting_for_resources"
    for a in await sim.active():
        await sim.end(a)
    assert await sched.run_pass() >= 1
    assert (await sim.task(big)).state == "assigned"
    assert (await sim.task(long_small)).state == "pending"
    assert (await sim.task(running)).state == "succeeded"
