"""Light passes: after a full pass that placed nothing, a submit wake only gives the new tasks
their group's verdict (single submits get it in their own transaction); capacity events, new
groups and direct ``run_pass`` calls are full."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from tests.core.sched_helpers import SimCluster
from unidesk.core.db.engine import make_engine, make_sessionmaker
from unidesk.core.events.hub import to_out
from unidesk.core.events.models import Event
from unidesk.core.events.schemas import EventOut
from unidesk.core.scheduler.service import Scheduler
from unidesk.core.settings import Settings
from unidesk.core.tasks.submitqueue import SubmitQueue
from unidesk.core.tasks.transitions import task_event


@pytest.fixture
async def sim(database_url: str) -> AsyncIterator[SimCluster]:
    engine = make_engine(database_url, pool_size=4)
    yield SimCluster(make_sessionmaker(engine))
    await engine.dispose()


def _event(kind: str) -> EventOut:
    return EventOut(
        id=1,
        ts=datetime.now(UTC),
        kind=kind,
        subject_type="task",
        subject_id=str(uuid.uuid4()),
        actor="test",
        payload={},
    )


async def _kinds(sim: SimCluster, task_id: uuid.UUID) -> list[str]:
    async with sim.sessions() as s:
        stmt = select(Event.kind).where(Event.subject_id == str(task_id)).order_by(Event.id)
        return list((await s.scalars(stmt)).all())


async def test_submits_onto_a_full_cluster_take_light_passes_until_capacity_frees(
    sim: SimCluster,
) -> None:
    alice = await sim.user("alice")
    await sim.nodes(1, cpus=1)
    sched = Scheduler(sim.sessions, Settings())
    [first] = await sim.tasks(1, alice)
    assert await sched.run_pass(light_ok=True) == 1  # the first pass is always full
    [second] = await sim.tasks(1, alice)
    sched.wake_submitted()
    assert await sched.run_pass(light_ok=True) == 0  # full: the last pass placed a task
    assert sched.passes == {"full": 2, "light": 0}
    assert (await sim.task(second)).pending_reason == "waiting_for_resources"

    more = await sim.tasks(2, alice)  # same group, another instance's submit heard as an event
    await sched.on_events([_event("task.submitted")])
    assert await sched.run_pass(light_ok=True) == 0
    assert sched.passes == {"full": 2, "light": 1}
    for t in more:  # given the group's verdict, with its event, like a full pass does
        assert (await sim.task(t)).pending_reason == "waiting_for_resources"
        assert await _kinds(sim, t) == ["task.submitted", "task.waiting"]
    # A light pass changes no verdict: single submits are still judged in their transactions.
    assert sched.judge_submitted([await sim.task(more[0])]) is not None

    [big] = await sim.tasks(1, alice, cpus=2)  # a group the last full pass did not judge
    sched.wake_submitted()
    assert await sched.run_pass(light_ok=True) == 0
    assert sched.passes == {"full": 3, "light": 1}
    assert (await sim.task(big)).pending_reason == "no_node_fits"
    assert await _kinds(sim, big) == ["task.submitted", "task.unschedulable"]

    await sim.end((await sim.active())[0])  # capacity freed: heard as the task's final event
    await sched.on_events([_event("task.succeeded")])
    assert await sched.run_pass(light_ok=True) == 1
    assert sched.passes == {"full": 4, "light": 1}
    assert (await sim.task(first)).state == "succeeded"
    assert (await sim.task(second)).state == "assigned"  # the oldest waiting one


async def test_a_direct_pass_is_full_and_a_timer_wake_needs_a_full_one(sim: SimCluster) -> None:
    alice = await sim.user("alice")
    await sim.nodes(1, cpus=1)
    sched = Scheduler(sim.sessions, Settings())
    await sim.tasks(2, alice)
    assert await sched.run_pass(light_ok=True) == 1
    assert await sched.run_pass(light_ok=True) == 0  # full, placed nothing: light from now on
    await sim.tasks(1, alice)
    assert await sched.run_pass() == 0  # tests and tools: always full
    assert sched.passes == {"full": 3, "light": 0}
    sched.wake()  # a node came, a quota changed…
    assert await sched.run_pass(light_ok=True) == 0
    assert sched.passes == {"full": 4, "light": 0}


def _values(owner: uuid.UUID, **fields: object) -> dict[str, object]:
    return {
        "id": uuid.uuid4(),
        "name": "single",
        "owner_id": owner,
        "state": "pending",
        "code_repo_url": "https://example.org/c.git",
        "code_commit_id": "a" * 40,
        "env_repo_url": "https://example.org/e.git",
        "env_commit_id": "a" * 40,
        "dockerfile_path": "Dockerfile",
        "command": ["true"],
        "env": {},
        "memory_mb": 256,
        "labels": {},
        "extra": {},
        **fields,
    }


async def test_a_single_submit_onto_a_full_cluster_gets_its_reason_in_its_transaction(
    sim: SimCluster,
) -> None:
    alice = await sim.user("alice")
    await sim.nodes(1, cpus=1)
    sched = Scheduler(sim.sessions, Settings())
    await sim.tasks(2, alice)
    assert await sched.run_pass(light_ok=True) == 1
    assert await sched.run_pass(light_ok=True) == 0  # full, placed nothing
    queue = SubmitQueue(sim.sessions)
    queue.scheduler = sched

    v = _values(alice)
    row = await queue.submit(v, task_event(v["id"], "task.submitted", "test"))  # type: ignore[arg-type]
    assert queue.passes_saved == 1 and not sched._wake.is_set()  # no pass needed
    assert (await sim.task(row.id)).pending_reason == "waiting_for_resources"
    assert await _kinds(sim, row.id) == ["task.submitted", "task.waiting"]
    async with sim.sessions() as s:  # another instance hears both events: it needs no pass
        heard = list((await s.scalars(select(Event).where(Event.subject_id == str(row.id)))).all())
    other = Scheduler(sim.sessions, Settings())
    await other.on_events([to_out(e) for e in heard])
    assert not other._wake.is_set()

    v = _values(alice, cpus=2)  # a shape the last full pass did not judge
    row = await queue.submit(v, task_event(v["id"], "task.submitted", "test"))  # type: ignore[arg-type]
    assert queue.passes_saved == 1 and sched._wake.is_set()  # woken: a pass judges it
    assert (await sim.task(row.id)).pending_reason is None
    assert await sched.run_pass(light_ok=True) == 0
    assert (await sim.task(row.id)).pending_reason == "no_node_fits"


async def test_a_placement_dropped_on_a_locked_node_is_retried_before_the_timer(
    sim: SimCluster,
) -> None:
    """A pass that finds its chosen node's row held by another transaction (a heartbeat flush,
    a report batch) drops that placement; the next pass follows shortly, not at the timer's
    tick (which was a 2 s submit→dispatch outlier in the single-task latency bench)."""
    import asyncio

    from sqlalchemy import text

    alice = await sim.user("alice")
    [node] = await sim.nodes(1, cpus=1)
    sched = Scheduler(sim.sessions, Settings(), tick_s=120)  # the timer never fires here
    await sched.start()
    try:
        async with sim.sessions() as holder:  # holds the node row like a heartbeat flush
            await holder.execute(
                text("SELECT id FROM nodes WHERE id = :id FOR UPDATE"), {"id": node}
            )
            [task] = await sim.tasks(1, alice)
            sched.wake_submitted()
            for _ in range(100):  # the pass ran and dropped its placement
                if sched.passes["full"] >= 1:
                    break
                await asyncio.sleep(0.05)
            assert sched.passes["full"] >= 1 and sched.assigned_total == 0
            await holder.rollback()
        for _ in range(200):  # bounded: 10 s, far below the 120 s timer
            if (await sim.task(task)).state == "assigned":
                break
            await asyncio.sleep(0.05)
        assert (await sim.task(task)).state == "assigned"
    finally:
        await sched.stop()
