"""The scheduling loop: claim pending tasks and free nodes with SKIP LOCKED, place, assign.

Several server instances may run this at once on one database: node rows and task rows
are claimed with ``FOR UPDATE SKIP LOCKED`` inside the assignment transaction, so no node's
capacity and no task is handed out twice, and no leader is needed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import structlog
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk.core.background import cancel_and_wait
from unidesk.core.db.tx import in_transaction
from unidesk.core.events.schemas import EventOut
from unidesk.core.events.writer import NewEvent, append_many
from unidesk.core.nodes.models import NodeRow
from unidesk.core.scheduler.placement import Demand, NodeCapacity, never_fits_reason, place
from unidesk.core.tasks.models import ATTEMPT_ACTIVE_STATES, AttemptRow, TaskRow
from unidesk.core.tasks.transitions import task_event

__all__ = ["WAKE_KINDS", "Scheduler"]

log = structlog.get_logger("unidesk.scheduler")

WAKE_KINDS = frozenset(
    {
        "task.submitted",
        "task.retried",
        "task.succeeded",
        "task.failed",
        "task.cancelled",
        "task.attempt_lost",
        "node.online",
        "node.connected",
        "node.undrained",
        "node.healthy",
        "node.registered",
    }
)
_SCHEDULABLE = (NodeRow.state == "online", NodeRow.connection_id.is_not(None))
"""Connected nodes; draining or unhealthy ones (``accepts_work`` False) get only host.ssh maintenance."""


def _accepts_work(n: NodeRow) -> bool:
    return not n.draining and n.unhealthy_reason is None


def _demand(t: TaskRow) -> Demand:
    pinned = t.extra.get("node_id")
    return Demand(
        task_id=t.id,
        cpus=t.cpus,
        memory_mb=t.memory_mb,
        gpus=t.gpus,
        labels=dict(t.labels),
        runtime=str(t.extra.get("runtime", "docker")),
        pinned_node=uuid.UUID(pinned) if pinned else None,
        kind=str(t.extra.get("kind", "container")),
        op=str((t.extra.get("params") or {}).get("op", "")),
    )


async def _capacities(session: AsyncSession, nodes: list[NodeRow]) -> list[NodeCapacity]:
    used_cpu: dict[uuid.UUID, float] = defaultdict(float)
    used_mem: dict[uuid.UUID, int] = defaultdict(int)
    used_gpu: dict[uuid.UUID, set[int]] = defaultdict(set)
    if nodes:
        rows = (
            await session.execute(
                select(AttemptRow.node_id, AttemptRow.gpu_indices, TaskRow.cpus, TaskRow.memory_mb)
                .join(TaskRow, TaskRow.id == AttemptRow.task_id)
                .where(
                    AttemptRow.node_id.in_([n.id for n in nodes]),
                    AttemptRow.state.in_(ATTEMPT_ACTIVE_STATES),
                )
            )
        ).all()
        for node_id, gpus, cpus, mem in rows:
            used_cpu[node_id] += cpus
            used_mem[node_id] += mem
            used_gpu[node_id].update(gpus)
    out = []
    for n in nodes:
        indices = sorted(int(g.get("index", i)) for i, g in enumerate(n.gpus))
        out.append(
            NodeCapacity(
                node_id=n.id,
                name=n.name,
                labels=dict(n.labels),
                cpus=n.cpus,
                memory_mb=n.memory_mb,
                gpu_indices=indices,
                free_cpus=n.cpus - used_cpu[n.id],
                free_memory_mb=n.memory_mb - used_mem[n.id],
                free_gpu_indices=[g for g in indices if g not in used_gpu[n.id]],
                runtimes=list(n.runtimes),
                accepts_work=_accepts_work(n),
            )
        )
    return out


class Scheduler:
    name = "scheduler"

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, batch: int = 500, tick_s: float = 2.0
    ) -> None:
        self._sessions = sessions
        self.batch = batch
        self.tick_s = tick_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.assigned_total = 0

    def wake(self) -> None:
        self._wake.set()

    async def on_events(self, events: list[EventOut]) -> None:
        if any(e.kind in WAKE_KINDS for e in events):
            self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])

    async def _loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.tick_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                while await self.run_pass() >= self.batch:
                    pass
            except Exception:
                log.exception("scheduling pass failed")
                await asyncio.sleep(0.5)

    async def run_pass(self) -> int:
        """One claim-place-assign transaction; returns how many tasks were assigned."""
        assigned = await in_transaction(self._sessions, self._assign, name="schedule")
        self.assigned_total += assigned
        return assigned

    async def _assign(self, session: AsyncSession) -> int:
        pending = (
            await session.scalars(
                select(TaskRow)
                .where(TaskRow.state == "pending")
                .order_by(TaskRow.priority.desc(), TaskRow.seq)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not pending:
            return 0
        nodes = (
            await session.scalars(
                select(NodeRow)
                .where(*_SCHEDULABLE)
                .order_by(NodeRow.name)
                .with_for_update(skip_locked=True)
            )
        ).all()
        capacities = await _capacities(session, list(nodes))
        placements, left = place([_demand(t) for t in pending], capacities)
        by_id = {t.id: t for t in pending}
        events: list[NewEvent] = []
        if placements:
            attempts = []
            task_updates = []
            for p in placements:
                t = by_id[p.task_id]
                attempt_no = t.attempt_count + 1
                attempts.append(
                    {
                        "task_id": t.id,
                        "attempt_no": attempt_no,
                        "node_id": p.node_id,
                        "node_name": p.node_name,
                        "state": "assigned",
                        "gpu_indices": p.gpu_indices,
                        "log_bytes": 0,
                        "log_truncated": False,
                    }
                )
                task_updates.append({"b_id": t.id, "b_attempt": attempt_no})
                events.append(
                    task_event(
                        t.id,
                        "task.assigned",
                        "system:scheduler",
                        attempt_no=attempt_no,
                        node_id=str(p.node_id),
                        node=p.node_name,
                        gpu_indices=p.gpu_indices,
                    )
                )
            await session.execute(AttemptRow.__table__.insert(), attempts)
            tbl = TaskRow.__table__
            await session.execute(
                update(tbl)
                .where(tbl.c.id == bindparam("b_id"))
                .values(
                    state="assigned",
                    attempt_count=bindparam("b_attempt"),
                    unschedulable_reason=None,
                    updated_at=func.now(),
                ),
                task_updates,
            )
        if left:
            events += await self._mark_unschedulable(session, left, by_id)
        if events:
            await append_many(session, events)
        return len(placements)

    async def _mark_unschedulable(
        self, session: AsyncSession, left: list[Demand], by_id: dict[uuid.UUID, TaskRow]
    ) -> list[NewEvent]:
        # Judge "could never fit" against every schedulable node, idle, not just those this pass locked.
        all_nodes = (await session.scalars(select(NodeRow).where(*_SCHEDULABLE))).all()
        idle = [
            NodeCapacity(
                node_id=n.id,
                name=n.name,
                labels=dict(n.labels),
                cpus=n.cpus,
                memory_mb=n.memory_mb,
                gpu_indices=[int(g.get("index", i)) for i, g in enumerate(n.gpus)],
                free_cpus=n.cpus,
                free_memory_mb=n.memory_mb,
                free_gpu_indices=[],
                runtimes=list(n.runtimes),
                accepts_work=_accepts_work(n),
            )
            for n in all_nodes
        ]
        events = []
        for d in left:
            t = by_id[d.task_id]
            reason = never_fits_reason(d, idle)
            if reason != t.unschedulable_reason:
                t.unschedulable_reason = reason
                events.append(
                    task_event(
                        t.id,
                        "task.unschedulable" if reason else "task.schedulable",
                        "system:scheduler",
                        reason=reason,
                    )
                )
        return events
