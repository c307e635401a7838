"""A batch of reports from many nodes is applied in one transaction: every attempt's leading ack
and running state together (one statement per table), the rest in order, with the same guarded
moves, fencing and events as one at a time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from tests.core.sched_helpers import SimCluster
from unidesk import protocol
from unidesk.core.db.engine import make_engine, make_sessionmaker
from unidesk.core.events.models import Event
from unidesk.core.ingress.reports import Report, ReportWriter
from unidesk.core.logs.models import LogChunkRow
from unidesk.core.scheduler.service import Scheduler
from unidesk.core.tasks.models import AttemptRow


@pytest.fixture
async def sim(database_url: str) -> AsyncIterator[SimCluster]:
    engine = make_engine(database_url, pool_size=2)
    yield SimCluster(make_sessionmaker(engine))
    await engine.dispose()


def _report(node_id: uuid.UUID, msg: Any, results: dict[int, object], i: int) -> Report:
    async def done(result: object) -> None:
        results[i] = result

    return Report(node_id=node_id, node_name=f"n-{node_id.hex[:4]}", msg=msg, done=done)


async def _kinds(sim: SimCluster, subject: uuid.UUID) -> list[str]:
    async with sim.sessions() as s:
        return list(
            (
                await s.scalars(
                    select(Event.kind).where(Event.subject_id == str(subject)).order_by(Event.id)
                )
            ).all()
        )


async def test_a_batch_of_acks_states_and_stale_or_foreign_reports(sim: SimCluster) -> None:
    nodes = await sim.nodes(2)
    tasks = await sim.tasks(3, None)
    assert await Scheduler(sim.sessions).run_pass() == 3
    attempts = {a.task_id: a for a in await sim.active()}
    results: dict[int, object] = {}
    batch: list[Report] = []

    def add(node: uuid.UUID, msg: Any) -> int:
        batch.append(_report(node, msg, results, len(batch)))
        return len(batch) - 1

    acks, runs, exits = {}, {}, {}
    for t in tasks:  # per attempt in order; attempts interleaved
        a = attempts[t]
        acks[t] = add(a.node_id, protocol.Ack(task_id=str(t), attempt_no=a.attempt_no))
    for t in tasks:
        a = attempts[t]
        runs[t] = add(
            a.node_id,
            protocol.AttemptState(task_id=str(t), attempt_no=a.attempt_no, phase="running"),
        )
    late_ack = add(
        attempts[tasks[0]].node_id, protocol.Ack(task_id=str(tasks[0]), attempt_no=1)
    )  # after running: a no-op
    other = next(n for n in nodes if n != attempts[tasks[1]].node_id)
    foreign = add(other, protocol.Ack(task_id=str(tasks[1]), attempt_no=1))
    for t in tasks:
        a = attempts[t]
        exits[t] = add(
            a.node_id,
            protocol.AttemptState(
                task_id=str(t), attempt_no=1, phase="exited", exit_code=0, reason="succeeded"
            ),
        )
    writer = ReportWriter(sim.sessions, log_cap=1 << 20)
    await writer._apply(batch)

    assert all(results[acks[t]] is True and results[runs[t]] is True for t in tasks)
    assert results[late_ack] is False
    assert results[foreign] is None  # fenced: recorded as a fact, changes nothing
    assert set((await sim.states(tasks)).values()) == {"succeeded"}
    for t in tasks:
        assert await _kinds(sim, t) == [
            "task.submitted",
            "task.assigned",
            "task.acked",
            "task.preparing",
            "task.started",
            "task.exited",
            "task.succeeded",
        ]
    assert "node.foreign_report" in await _kinds(sim, other)
    async with sim.sessions() as s:
        rows = (await s.scalars(select(AttemptRow))).all()
    assert all(
        a.state == "succeeded" and a.acked_at and a.started_at and a.finished_at for a in rows
    )
    assert all(a.acked_at <= a.started_at <= a.finished_at for a in rows)  # type: ignore[operator]  # all set, checked above


async def test_nul_characters_from_a_task_are_stored_as_replacement_characters(
    sim: SimCluster,
) -> None:
    """A task's output may hold U+0000, which PostgreSQL text cannot: the chunk is stored with
    U+FFFD in its place (like undecodable bytes), not refused and resent for ever."""
    await sim.nodes(1)
    (task,) = await sim.tasks(1, None)
    assert await Scheduler(sim.sessions).run_pass() == 1
    (a,) = await sim.active()
    results: dict[int, object] = {}
    batch = [
        _report(a.node_id, protocol.Ack(task_id=str(task), attempt_no=1), results, 0),
        _report(
            a.node_id,
            protocol.LogChunk(
                task_id=str(task), attempt_no=1, seq=0, stream="stdout", data="a\x00b\n"
            ),
            results,
            1,
        ),
    ]
    await ReportWriter(sim.sessions, log_cap=1 << 20)._apply(batch)
    assert results[1] is not None and not isinstance(results[1], Exception)
    async with sim.sessions() as s:
        data = await s.scalar(select(LogChunkRow.data).where(LogChunkRow.task_id == task))
    assert data == "a\ufffdb\n"
