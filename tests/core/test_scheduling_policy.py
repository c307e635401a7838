"""Scheduling policy on a real PostgreSQL with simulated nodes: no head-of-line starvation,
reservations, pending reasons, fair share between users, quotas, retry backoff and avoidance,
GPU model matching."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.core.sched_helpers import SimCluster
from unidesk.core.db.engine import make_engine, make_sessionmaker
from unidesk.core.events.models import Event
from unidesk.core.scheduler.service import Scheduler
from unidesk.core.settings import Settings
from unidesk.core.tasks.models import AttemptRow, TaskRow


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


async def test_fair_share_the_second_user_starts_within_one_turnover(sim: SimCluster) -> None:
    alice, bob = await sim.user("alice"), await sim.user("bob")
    await sim.nodes(2, cpus=1)
    sweep = await sim.tasks(200, alice, priority=50)  # queued first, and at a higher priority
    sched = scheduler(sim)
    assert await sched.run_pass() == 2
    [single] = await sim.tasks(1, bob)
    assert await sched.run_pass() == 0
    assert (await sim.task(single)).pending_reason == "waiting_for_resources"
    await sim.end((await sim.active())[0])  # one task turnover
    assert await sched.run_pass() == 1
    assert (await sim.task(single)).state == "assigned"
    states = await sim.states(sweep)
    assert sum(1 for s in states.values() if s != "pending") == 2


async def test_one_pass_interleaves_users_with_equal_shares(sim: SimCluster) -> None:
    alice, bob = await sim.user("alice"), await sim.user("bob")
    await sim.nodes(2, cpus=2)
    a = await sim.tasks(30, alice)
    b = await sim.tasks(30, bob)
    assert await scheduler(sim).run_pass() == 4
    sa, sb = await sim.states(a), await sim.states(b)
    assert list(sa.values()).count("assigned") == 2 and list(sb.values()).count("assigned") == 2


async def test_quota_holds_and_the_task_says_over_quota(sim: SimCluster) -> None:
    alice, bob = await sim.user("alice"), await sim.user("bob")
    gpus = [{"index": i, "model": "A100", "memory_mb": 81920} for i in range(2)]
    await sim.nodes(1, cpus=8, gpus=gpus)
    await sim.quota(alice, max_gpus=1)
    mine = await sim.tasks(3, alice, gpus=1)
    [too_big] = await sim.tasks(1, alice, gpus=2, priority=-1)
    sched = scheduler(sim)
    assert await sched.run_pass() == 1
    [theirs] = await sim.tasks(1, bob, gpus=1)
    assert await sched.run_pass() == 1
    assert (await sim.task(theirs)).state == "assigned"
    waiting = [await sim.task(t) for t in mine if (await sim.task(t)).state == "pending"]
    assert len(waiting) == 2 and {t.pending_reason for t in waiting} == {"over_quota"}
    assert "holds 1 of 1 GPUs" in waiting[0].pending_detail["message"]
    big = await sim.task(too_big)
    assert big.pending_reason == "over_quota"
    assert "quota allows 1" in big.pending_detail["message"]


async def test_retry_waits_out_its_backoff_then_avoids_the_node_that_lost_it(
    sim: SimCluster,
) -> None:
    alice = await sim.user("alice")
    await sim.nodes(2, cpus=2)
    [task] = await sim.tasks(1, alice)
    sched = scheduler(sim, retry_backoff_base_s=60, retry_backoff_cap_s=120)
    assert await sched.run_pass() == 1
    [first] = await sim.active()
    await sim.end(first, "node_lost")
    assert await sched.run_pass() == 0
    row = await sim.task(task)
    assert row.state == "pending" and row.pending_reason == "retry_backoff"
    assert row.not_before is not None and row.avoid_node_ids == [str(first.node_id)]
    await sim.age_backoff()
    assert await sched.run_pass() == 1
    [second] = await sim.active()
    assert second.attempt_no == 2 and second.node_id != first.node_id
    async with sim.sessions() as s:
        evs = (
            await s.execute(
                select(Event.kind, Event.payload)
                .where(Event.subject_id == str(task))
                .order_by(Event.id)
            )
        ).all()
    retried = next(p for k, p in evs if k == "task.retried")
    assert retried["avoid_nodes"][0]["node"] == first.node_name
    assert "node_lost" in retried["avoid_nodes"][0]["why"]
    assigned = [p for k, p in evs if k == "task.assigned"][-1]
    assert assigned["avoided_node_ids"] == [str(first.node_id)]
    assert any(k == "task.waiting" and p.get("until") for k, p in evs)


async def test_retry_goes_back_to_the_only_node_that_can_run_it(sim: SimCluster) -> None:
    alice = await sim.user("alice")
    await sim.nodes(1, cpus=2)
    [task] = await sim.tasks(1, alice)
    sched = scheduler(sim, retry_backoff_base_s=0)
    assert await sched.run_pass() == 1
    [first] = await sim.active()
    await sim.end(first, "infra_error")
    assert await sched.run_pass() == 1
    assert (await sim.task(task)).attempt_count == 2


async def test_gpu_model_and_memory_matching(sim: SimCluster) -> None:
    alice = await sim.user("alice")
    a100 = [{"index": i, "model": "NVIDIA A100-SXM4-80GB", "memory_mb": 81920} for i in range(2)]
    rtx = [{"index": i, "model": "NVIDIA GeForce RTX 4090", "memory_mb": 24564} for i in range(2)]
    await sim.nodes(1, prefix="a100", cpus=8, gpus=a100)
    await sim.nodes(1, prefix="rtx", cpus=8, gpus=rtx)
    [by_model] = await sim.tasks(1, alice, gpus=1, gpu_model="*a100*")
    [by_memory] = await sim.tasks(1, alice, gpus=1, gpu_memory_mb=40000)
    [any_gpu] = await sim.tasks(1, alice, gpus=2, gpu_model="*RTX*")
    [h100] = await sim.tasks(1, alice, gpus=1, gpu_model="*H100*")
    assert await scheduler(sim).run_pass() == 3
    async with sim.sessions() as s:
        nodes = dict((await s.execute(select(AttemptRow.task_id, AttemptRow.node_name))).all())
    assert nodes[by_model] == "a100-0000" and nodes[by_memory] == "a100-0000"
    assert nodes[any_gpu] == "rtx-0000"
    row = await sim.task(h100)
    assert row.pending_reason == "no_node_fits"
    assert "model *H100*" in (row.unschedulable_reason or "")


async def test_account_fair_share_ranks_a_busy_project_after_an_idle_one(sim: SimCluster) -> None:
    alice, bob = await sim.user("alice"), await sim.user("bob")
    await sim.nodes(1, cpus=5)
    sched = scheduler(sim)
    # Bob runs two tasks charged to apollo and one to the default account (1 CPU-hour
    # committed each): keys bob 3 h, apollo 2 h, default 1 h; Alice's own key is 0.
    await sim.tasks(2, bob, account="apollo", timeout_s=3600)
    await sim.tasks(1, bob, timeout_s=3600)
    assert await sched.run_pass() == 3
    [busy] = await sim.tasks(1, alice, account="apollo", priority=50)
    [idle] = await sim.tasks(1, alice, account="gemini")
    theirs = await sim.tasks(5, bob)
    assert await sched.run_pass() == 2
    # Lanes: alice+gemini 0 h, alice+apollo 2 h, bob+default 4 h. Within Alice, the idle
    # account goes first despite the priority; then Alice's apollo task before Bob's.
    assert (await sim.task(idle)).state == "assigned"
    assert (await sim.task(busy)).state == "assigned"
    assert set((await sim.states(theirs)).values()) == {"pending"}


async def test_account_quota_holds_across_its_users(sim: SimCluster) -> None:
    alice, bob = await sim.user("alice"), await sim.user("bob")
    await sim.nodes(1, cpus=8)
    await sim.quota(account="apollo", max_cpus=2)
    a = await sim.tasks(2, alice, account="apollo")
    b = await sim.tasks(2, bob, account="apollo")
    [free] = await sim.tasks(1, bob)
    assert await scheduler(sim).run_pass() == 3
    assert (await sim.task(free)).state == "assigned"
    waiting = [await sim.task(t) for t in a + b if (await sim.task(t)).state == "pending"]
    assert len(waiting) == 2 and {t.pending_reason for t in waiting} == {"over_quota"}
    assert "account apollo holds 2 of 2 CPUs" in waiting[0].pending_detail["message"]


async def test_label_quota_keeps_tasks_off_the_pool_only(sim: SimCluster) -> None:
    alice = await sim.user("alice")
    gpus = [{"index": i, "model": "A100", "memory_mb": 81920} for i in range(2)]
    await sim.nodes(1, prefix="a100", cpus=8, gpus=gpus, labels={"pool": "a100"})
    await sim.nodes(1, prefix="cpu", cpus=1)
    await sim.quota(alice, label="pool=a100", max_cpus=1)
    cpu_tasks = await sim.tasks(3, alice)
    [gpu_task] = await sim.tasks(1, alice, gpus=1, priority=-1)
    sched = scheduler(sim)
    # One CPU task on the pool (its quota), one on the CPU node; the third and the GPU task
    # could only go to the pool: over its quota there.
    assert await sched.run_pass() == 2
    states = await sim.states(cpu_tasks)
    assert list(states.values()).count("assigned") == 2
    waiting = await sim.task(gpu_task)
    assert waiting.pending_reason == "over_quota"
    assert "holds 1 of 1 CPUs on pool=a100" in waiting.pending_detail["message"]
    # Raising the quota lets them start: the reason follows.
    async with sim.sessions() as s:
        from unidesk.core.scheduler.models import QuotaRow

        q = await s.scalar(select(QuotaRow).where(QuotaRow.user_id == alice))
        assert q is not None
        q.max_cpus = 8
        await s.commit()
    assert await sched.run_pass() == 2
    assert (await sim.task(gpu_task)).state == "assigned"


async def test_two_schedulers_share_one_reservation(sim: SimCluster) -> None:
    alice, bob = await sim.user("alice"), await sim.user("bob")
    a, b = await sim.nodes(2, prefix="n", cpus=4)
    [on_a] = await sim.tasks(1, alice, cpus=2, timeout_s=100, extra={"node_id": str(a)})
    await sim.tasks(2, alice, cpus=2, timeout_s=300, extra={"node_id": str(b)})
    one, two = scheduler(sim), scheduler(sim)
    assert await one.run_pass() == 3
    [big] = await sim.tasks(1, bob, cpus=4)
    assert await one.run_pass() == 0
    assert (await sim.task(big)).pending_detail["reserved_node"] == "n-0000"  # a frees first
    # Now a's task is expected to run long: a fresh choice would be b (frees at 300 s). The
    # other instance keeps the reservation where the first one took it, and holds a long
    # small task off a's free CPUs.
    async with sim.sessions() as s:
        await s.execute(update(TaskRow).where(TaskRow.id == on_a).values(timeout_s=1000))
        await s.commit()
    [small] = await sim.tasks(1, alice, cpus=2, timeout_s=3600, priority=-1)
    assert await two.run_pass() == 0
    assert (await sim.task(big)).pending_detail["reserved_node"] == "n-0000"
    held = await sim.task(small)
    assert held.pending_reason == "held_for_reservation"
    assert held.pending_detail["node"] == "n-0000"
