"""A batch of reports from many nodes is applied in one transaction: every attempt's leading ack
and running state together (one statement per table), the rest in order, with the same guarded
moves, fencing and events as one at a time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.core.sched_helpers import SimCluster
from unidesk import protocol
from unidesk.core.db.engine import make_engine, make_sessionmaker
from unidesk.core.events.models import Event
from unidesk.core.events.writer import append_many
from unidesk.core.ingress.reports import Report, ReportWriter
from unidesk.core.logs.models import LogChunkRow
from unidesk.core.scheduler.service import Scheduler
from unidesk.core.tasks.models import AttemptRow, TaskRow
from unidesk.core.tasks.transitions import task_event


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


async def test_one_batch_ends_attempts_every_way_once_and_stores_logs_under_the_cap(
    sim: SimCluster,
) -> None:
    """Exits of every kind in one batch, applied by set: success, failure, a killed attempt
    retried elsewhere, a cancelling task cancelled, an exit sent twice (the second a stale
    report); log chunks with a resend and past the cap. A redelivered batch changes nothing."""
    await sim.nodes(3)
    ok, bad, killed, cancel, twice = await sim.tasks(5, None)
    assert await Scheduler(sim.sessions).run_pass() == 5
    att = {a.task_id: a for a in await sim.active()}
    async with sim.sessions() as s:  # a cancel requested while it runs
        await s.execute(update(TaskRow).where(TaskRow.id == cancel).values(state="cancelling"))
        await append_many(s, [task_event(cancel, "task.cancel_requested", "test")])
        await s.commit()

    def state(t: uuid.UUID, phase: str, **kw: Any) -> Any:
        return protocol.AttemptState(task_id=str(t), attempt_no=1, phase=phase, **kw)  # type: ignore[arg-type]  # phase: a literal

    def chunk(seq: int, data: str) -> protocol.LogChunk:
        return protocol.LogChunk(task_id=str(ok), attempt_no=1, seq=seq, stream="stdout", data=data)

    msgs: list[tuple[uuid.UUID, Any]] = [
        (ok, protocol.Ack(task_id=str(ok), attempt_no=1)),
        (ok, state(ok, "running")),
        (ok, chunk(0, "hello\n")),
        (ok, chunk(1, "world and more\n")),
        (ok, chunk(1, "world and more\n")),  # a resend
        (ok, chunk(2, "dropped\n")),
        (ok, state(ok, "exited", exit_code=0, reason="succeeded")),
        (bad, state(bad, "exited", exit_code=3, reason="exit_nonzero", message="boom")),
        (killed, state(killed, "exited", reason="killed")),
        (cancel, state(cancel, "exited", exit_code=137, reason="cancelled")),
        (twice, state(twice, "exited", exit_code=0, reason="succeeded")),
        (twice, state(twice, "exited", exit_code=0, reason="succeeded")),
    ]
    results: dict[int, object] = {}
    batch = [_report(att[t].node_id, m, results, i) for i, (t, m) in enumerate(msgs)]
    writer = ReportWriter(sim.sessions, log_cap=10)
    await writer._apply(batch)

    assert [results[i] for i in range(len(msgs))] == [
        True, True, 0, 1, 1, 2, True, True, True, True, True, True,
    ]  # fmt: skip
    assert await sim.states([ok, bad, killed, cancel, twice]) == {
        ok: "succeeded",
        bad: "failed",
        killed: "pending",
        cancel: "cancelled",
        twice: "succeeded",
    }
    kinds = {t: (await _kinds(sim, t))[2:] for t in (ok, bad, killed, cancel, twice)}
    assert kinds[ok] == [
        "task.acked",
        "task.preparing",
        "task.started",
        "task.exited",
        "task.succeeded",
    ]
    assert kinds[bad] == ["task.exited", "task.failed"]
    assert kinds[killed] == ["task.exited", "task.retried"]
    assert kinds[cancel] == ["task.cancel_requested", "task.exited", "task.cancelled"]
    assert kinds[twice] == ["task.exited", "task.succeeded", "task.stale_report"]
    async with sim.sessions() as s:
        rows = {a.task_id: a for a in (await s.scalars(select(AttemptRow))).all()}
        tasks = {t.id: t for t in (await s.scalars(select(TaskRow))).all()}
        chunks = (
            await s.scalars(
                select(LogChunkRow.data).where(LogChunkRow.task_id == ok).order_by(LogChunkRow.seq)
            )
        ).all()
    assert {t: rows[t].state for t in rows} == {
        ok: "succeeded",
        bad: "failed",
        killed: "lost",
        cancel: "cancelled",
        twice: "succeeded",
    }
    assert rows[killed].reason == "node_lost" and rows[bad].exit_code == 3
    assert rows[bad].message == "boom"
    assert tasks[bad].message == "command exited with code 3: boom"
    assert tasks[killed].pending_reason == "retry_backoff"
    assert tasks[killed].avoid_node_ids == [str(att[killed].node_id)]
    assert tasks[ok].finished_at is not None and tasks[killed].finished_at is None
    assert rows[ok].acked_at == rows[ok].started_at == rows[ok].finished_at  # one instant
    note = "\n[unidesk] log truncated: this attempt's output passed 10 bytes\n"
    assert chunks == ["hello\n", "worl" + note]  # 10 bytes kept, the resend and the rest not
    assert rows[ok].log_truncated and rows[ok].log_bytes == 21

    # The same batch again (the agents resend what they had no answer for): nothing moves.
    again: dict[int, object] = {}
    await writer._apply([_report(att[t].node_id, m, again, i) for i, (t, m) in enumerate(msgs)])
    assert again[0] is False and again[1] is False and again[6] is True
    assert (await _kinds(sim, ok))[-1] == "task.stale_report"
    assert (await _kinds(sim, killed))[-1] == "task.stale_report"
    assert (await sim.states([killed]))[killed] == "pending"


async def test_numbers_out_of_the_columns_range_are_fenced_not_a_failed_batch(
    sim: SimCluster,
) -> None:
    """An attempt number or log seq no column can hold names nothing stored: that report is
    fenced (or refused) and answered, the rest of its batch applies, nothing is Nacked."""
    await sim.nodes(1)
    (task,) = await sim.tasks(1, None)
    assert await Scheduler(sim.sessions).run_pass() == 1
    (a,) = await sim.active()
    results: dict[int, object] = {}
    huge = 2**40
    batch = [
        _report(a.node_id, protocol.Ack(task_id=str(task), attempt_no=huge), results, 0),
        _report(a.node_id, protocol.Ack(task_id=str(task), attempt_no=1), results, 1),
        _report(
            a.node_id,
            protocol.LogChunk(task_id=str(task), attempt_no=1, seq=huge, stream="stdout", data="x"),
            results,
            2,
        ),
    ]
    await ReportWriter(sim.sessions, log_cap=1 << 20)._apply(batch)
    assert results == {0: None, 1: True, 2: huge}
    assert "node.foreign_report" in await _kinds(sim, a.node_id)
    async with sim.sessions() as s:
        assert await s.scalar(select(LogChunkRow.seq).where(LogChunkRow.task_id == task)) is None
