"""The scheduling loop: group pending tasks by shape, plan (backfill.py), claim and assign.

Several server instances may run this at once on one database: node rows and candidate
task rows are claimed with ``FOR UPDATE SKIP LOCKED`` inside the assignment transaction, so
no node's capacity and no task is handed out twice, and no leader is needed.

One pass, one transaction:
1. retried tasks get their ``not_before`` (retry backoff);
2. pending tasks are counted per (owner, shape) in SQL, so 100,000 pending cost one
   aggregate, not 100,000 rows in Python;
3. for each group, only as many of its best tasks as could start now are read and locked
   (one for a group that cannot start, to rank it for the reservation);
4. ``plan_pass`` decides placements, the reservation and every group's pending reason;
5. attempts are inserted, tasks moved to ``assigned``, and each task whose reason changed
   gets its new reason and one event (``task.waiting`` / ``task.unschedulable``).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from typing import Any

import structlog
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk.core.background import cancel_and_wait
from unidesk.core.db.base import table_of
from unidesk.core.db.tx import in_transaction
from unidesk.core.events.kinds import EventKind
from unidesk.core.events.schemas import EventOut
from unidesk.core.events.writer import NewEvent, append_many
from unidesk.core.nodes.models import NodeRow
from unidesk.core.scheduler import reasons
from unidesk.core.scheduler.backfill import (
    Candidate,
    Group,
    Held,
    Plan,
    Quota,
    Running,
    Verdict,
    plan_pass,
)
from unidesk.core.scheduler.models import QuotaRow
from unidesk.core.scheduler.placement import Demand, NodeCapacity, fits_now
from unidesk.core.scheduler.shares import share_keys
from unidesk.core.settings import Settings
from unidesk.core.tasks.models import ATTEMPT_ACTIVE_STATES, AttemptRow, TaskRow
from unidesk.core.tasks.transitions import task_event

__all__ = ["SHAPE_SQL", "WAKE_KINDS", "Scheduler"]

log = structlog.get_logger("unidesk.scheduler")

WAKE_KINDS: frozenset[EventKind] = frozenset(
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
        "quota.set",
    }
)
_SCHEDULABLE = (NodeRow.state == "online", NodeRow.connection_id.is_not(None))
"""Connected nodes; draining or unhealthy ones (``accepts_work`` False) get only host.ssh work."""

_SHAPE_COLS = (
    "t.cpus, t.memory_mb, t.gpus, t.labels, t.gpu_model, t.gpu_memory_mb, t.avoid_node_ids,"
    " t.extra->>'runtime', t.extra->>'node_id', t.extra->>'kind', t.extra#>>'{params,op}',"
    " t.extra->'host_mounts'"
)
SHAPE_SQL = (
    "concat_ws('|', t.cpus, t.memory_mb, t.gpus, t.labels::text, coalesce(t.gpu_model, ''),"
    " coalesce(t.gpu_memory_mb, 0), t.avoid_node_ids::text, coalesce(t.extra->>'runtime', ''),"
    " coalesce(t.extra->>'node_id', ''), coalesce(t.extra->>'kind', ''),"
    " coalesce(t.extra#>>'{params,op}', ''), coalesce(t.extra->'host_mounts', '[]'::jsonb)::text)"
)
"""One text per resource shape: tasks with equal shapes place alike."""
_READY = "t.state = 'pending' AND (t.not_before IS NULL OR t.not_before <= now())"

_GROUPS_SQL = text(
    f"""
    SELECT * FROM (
      SELECT coalesce(t.owner_id::text, '') AS owner, {SHAPE_SQL} AS shape,
             count(*) OVER g AS n, max(t.seq) OVER g AS max_seq,
             row_number() OVER (g ORDER BY t.priority DESC, t.seq) AS rn,
             t.id, t.priority, t.seq, coalesce(t.expected_duration_s, t.timeout_s) AS est,
             t.pending_reason,
             t.cpus, t.memory_mb, t.gpus, t.labels, t.gpu_model, t.gpu_memory_mb,
             t.avoid_node_ids, t.extra->>'runtime' AS runtime, t.extra->>'node_id' AS node_id,
             t.extra->>'kind' AS kind, t.extra#>>'{{params,op}}' AS op,
             t.extra->'host_mounts' AS host_mounts
      FROM tasks t WHERE {_READY}
      WINDOW g AS (PARTITION BY t.owner_id, {SHAPE_SQL})
    ) x WHERE x.rn = 1
    """
)
"""One row per (owner, shape) group: its size, its best task, and its shape."""
_CANDIDATES_SQL = text(
    f"""
    SELECT x.id, x.owner, x.shape, x.priority, x.seq, x.est, x.pending_reason
    FROM (
      SELECT t.id, coalesce(t.owner_id::text, '') AS owner, {SHAPE_SQL} AS shape, t.priority,
             t.seq, coalesce(t.expected_duration_s, t.timeout_s) AS est, t.pending_reason,
             row_number() OVER (PARTITION BY t.owner_id, {SHAPE_SQL}
                                ORDER BY t.priority DESC, t.seq) AS rn
      FROM tasks t WHERE {_READY}
    ) x
    JOIN jsonb_to_recordset(CAST(:groups AS jsonb)) AS g(owner text, shape text, lim int)
      ON g.owner = x.owner AND g.shape = x.shape
    WHERE x.rn <= g.lim
    """
)
_CHANGED_SQL = text(
    f"""
    SELECT t.id, g.code, g.detail, g.message, t.pending_reason
    FROM tasks t
    JOIN jsonb_to_recordset(CAST(:verdicts AS jsonb))
      AS g(owner text, shape text, code text, detail jsonb, message text)
      ON g.owner = coalesce(t.owner_id::text, '') AND g.shape = {SHAPE_SQL}
    WHERE {_READY} AND NOT (t.id = ANY(CAST(:skip AS uuid[])))
      AND (t.pending_reason IS DISTINCT FROM g.code
           OR (g.code = 'no_node_fits' AND t.unschedulable_reason IS DISTINCT FROM g.message))
    """
)
_SET_REASON_SQL = text(
    """
    UPDATE tasks SET pending_reason = r.code, pending_detail = r.detail,
                     unschedulable_reason = r.message
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
      AS r(id uuid, code text, detail jsonb, message text)
    WHERE tasks.id = r.id AND tasks.state = 'pending'
      AND tasks.id IN (SELECT id FROM tasks WHERE id = ANY(CAST(:ids AS uuid[]))
                       FOR UPDATE SKIP LOCKED)
    RETURNING tasks.id
    """
)
_BACKOFF_SQL = text(
    """
    UPDATE tasks SET not_before = updated_at
        + make_interval(secs => least(:cap, :base * power(2, greatest(attempt_count - 1, 0))))
    WHERE state = 'pending' AND pending_reason = 'retry_backoff' AND not_before IS NULL
    RETURNING id, not_before
    """
)


def _accepts_work(n: Any) -> bool:
    return not n.draining and n.unhealthy_reason is None


def _group_demand(r: Any) -> Demand:
    return Demand(
        task_id=uuid.UUID(int=0),
        cpus=r.cpus,
        memory_mb=r.memory_mb,
        gpus=r.gpus,
        labels=dict(r.labels),
        runtime=r.runtime or "docker",
        pinned_node=uuid.UUID(r.node_id) if r.node_id else None,
        kind=r.kind or "container",
        op=r.op or "",
        gpu_model=r.gpu_model,
        gpu_memory_mb=r.gpu_memory_mb,
        avoid_nodes=frozenset(uuid.UUID(n) for n in r.avoid_node_ids),
        host_mounts=frozenset(r.host_mounts or ()),
    )


_NODE_COLS = (
    NodeRow.id,
    NodeRow.name,
    NodeRow.labels,
    NodeRow.cpus,
    NodeRow.memory_mb,
    NodeRow.gpus,
    NodeRow.runtimes,
    NodeRow.draining,
    NodeRow.unhealthy_reason,
    NodeRow.host_mounts,
)
"""What a pass reads of a node (plain rows: no ORM objects for 1,000 nodes)."""


def _capacity(n: Any, *, locked: bool) -> NodeCapacity:
    indices = sorted(int(g.get("index", i)) for i, g in enumerate(n.gpus))
    info = {
        int(g.get("index", i)): (str(g.get("model", "")), int(g.get("memory_mb", 0)))
        for i, g in enumerate(n.gpus)
    }
    return NodeCapacity(
        node_id=n.id,
        name=n.name,
        labels=dict(n.labels),
        cpus=n.cpus,
        memory_mb=n.memory_mb,
        gpu_indices=indices,
        free_cpus=n.cpus if locked else 0.0,
        free_memory_mb=n.memory_mb if locked else 0,
        free_gpu_indices=list(indices) if locked else [],
        runtimes=list(n.runtimes),
        accepts_work=_accepts_work(n),
        gpu_info=info,
        host_mounts=frozenset(n.host_mounts or {}),
    )


def _slots(d: Demand, nodes: list[NodeCapacity], cap: int, maxima: tuple[float, int, int]) -> int:
    """How many tasks of shape ``d`` the free capacity could start now (at most ``cap``)."""
    if d.runtime != "host.ssh" and (
        d.cpus > maxima[0] + 1e-9 or d.memory_mb > maxima[1] or d.gpus > maxima[2]
    ):
        return 0
    total = 0
    for n in nodes:
        if not fits_now(d, n):
            continue
        k = int((n.free_cpus + 1e-9) // d.cpus) if d.cpus > 0 else cap
        k = min(k, n.free_memory_mb // d.memory_mb if d.memory_mb > 0 else cap)
        if d.gpus:
            k = min(k, len(n.free_gpu_indices) // d.gpus)
        if d.runtime == "host.ssh":
            k = cap
        total += max(k, 1)
        if total >= cap:
            return cap
    return total


class _Laps:
    """Milliseconds spent in each phase of a pass (``Scheduler.last_timings``, for the bench)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._t = time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self.ms[phase] = round((now - self._t) * 1000, 1)
        self._t = now


class Scheduler:
    name = "scheduler"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings | None = None,
        *,
        batch: int | None = None,
        tick_s: float = 2.0,
    ) -> None:
        self._sessions = sessions
        self.settings = settings or Settings()
        self.batch = batch or self.settings.scheduler_batch
        self.tick_s = tick_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.assigned_total = 0
        self.last_plan: Plan | None = None
        self.last_timings: dict[str, float] = {}
        self._reserved: dict[uuid.UUID, uuid.UUID] = {}
        self._verdicts: dict[tuple[str, str], tuple[str, str, tuple[int, int]]] = {}
        """Last pass's verdict and size per (owner, shape) group: unchanged groups are skipped."""
        self._next_verdicts: dict[tuple[str, str], tuple[str, str, tuple[int, int]]] = {}
        self._after_commit: (
            tuple[
                dict[uuid.UUID, uuid.UUID], dict[tuple[str, str], tuple[str, str, tuple[int, int]]]
            ]
            | None
        ) = None
        """Last pass's reservations (task -> node): kept while feasible so they do not wander."""

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
        self._after_commit = None
        assigned = await in_transaction(self._sessions, self._assign, name="schedule")
        if self._after_commit is not None:  # caches follow only what was committed
            self._reserved, self._verdicts = self._after_commit
        self.assigned_total += assigned
        return assigned

    async def _assign(self, session: AsyncSession) -> int:
        s = self.settings
        lap = _Laps()
        self.last_timings = lap.ms
        await session.execute(text("SET LOCAL work_mem = '64MB'"))  # the groups sort, in memory
        backoffs = await self._start_backoffs(session)
        group_rows = (await session.execute(_GROUPS_SQL)).all()
        lap("groups")
        if not group_rows:
            if backoffs:
                await append_many(session, backoffs)
            return 0
        all_nodes = (
            await session.execute(select(*_NODE_COLS).where(*_SCHEDULABLE).order_by(NodeRow.name))
        ).all()
        locked = set(
            (
                await session.scalars(
                    select(NodeRow.id).where(*_SCHEDULABLE).with_for_update(skip_locked=True)
                )
            ).all()
        )
        nodes = [_capacity(n, locked=n.id in locked) for n in all_nodes]
        lap("nodes")
        running, held = await self._running(session, nodes)
        lap("running")
        groups: list[Group] = []
        lims: list[dict[str, Any]] = []
        maxima = (
            max((n.free_cpus for n in nodes), default=0.0),
            max((n.free_memory_mb for n in nodes), default=0),
            max((len(n.free_gpu_indices) for n in nodes), default=0),
        )
        more: list[dict[str, Any]] = []
        cand_rows: dict[uuid.UUID, Any] = {}
        for r in group_rows:
            d = _group_demand(r)
            groups.append(
                Group(
                    owner=uuid.UUID(r.owner) if r.owner else None,
                    demand=d,
                    count=r.n,
                    version=(r.n, r.max_seq),
                )
            )
            lim = max(1, min(self.batch, r.n, _slots(d, nodes, self.batch, maxima)))
            lims.append({"owner": r.owner, "shape": r.shape, "lim": lim})
            cand_rows[r.id] = r
            if lim > 1:
                more.append(lims[-1])
        index = {(g["owner"], g["shape"]): i for i, g in enumerate(lims)}
        if more:  # groups with room for more than their best task
            for c in (await session.execute(_CANDIDATES_SQL, {"groups": json.dumps(more)})).all():
                cand_rows[c.id] = c
        lap("candidates")
        mine = set(
            (
                await session.scalars(
                    select(TaskRow.id)
                    .where(TaskRow.id.in_(list(cand_rows)), TaskRow.state == "pending")
                    .with_for_update(skip_locked=True)
                )
            ).all()
        )
        for c in sorted(cand_rows.values(), key=lambda c: (-c.priority, c.seq)):
            if c.id in mine:
                groups[index[(c.owner, c.shape)]].candidates.append(
                    Candidate(c.id, c.priority, c.seq, float(c.est), c.pending_reason)
                )
        quotas: dict[uuid.UUID | None, Quota] = {
            q.user_id: Quota(q.max_gpus, q.max_cpus, q.max_memory_mb)
            for q in (await session.scalars(select(QuotaRow))).all()
        }
        shares = await share_keys(session, s)
        lap("quotas_shares")
        plan = plan_pass(
            groups,
            nodes,
            running=running,
            shares=shares,
            quotas=quotas,
            held=held,
            gpu_weight=s.fairshare_gpu_weight,
            memory_gb_weight=s.fairshare_memory_gb_weight,
            charge_horizon_s=s.fairshare_half_life_h * 3600.0,
            limit=self.batch,
            reserved=self._reserved,
        )
        lap("plan")
        self.last_plan = plan
        events = backoffs + await self._write_assignments(session, plan)
        lap("assign")
        events += await self._write_reasons(session, plan, groups, lims)
        self._after_commit = (
            {r.task_id: r.node_id for r in plan.reservations},
            self._next_verdicts,
        )
        if events:
            await append_many(session, events)
        lap("reasons")
        return len(plan.placements)

    async def _start_backoffs(self, session: AsyncSession) -> list[NewEvent]:
        """Retried tasks wait base·2^(attempts-1) seconds (capped) from their retry."""
        s = self.settings
        rows = (
            await session.execute(
                _BACKOFF_SQL, {"base": s.retry_backoff_base_s, "cap": s.retry_backoff_cap_s}
            )
        ).all()
        return [
            task_event(
                task_id,
                "task.waiting",
                "system:scheduler",
                pending_reason=reasons.RETRY_BACKOFF,
                until=until.isoformat(),
            )
            for task_id, until in rows
        ]

    async def _running(
        self, session: AsyncSession, nodes: list[NodeCapacity]
    ) -> tuple[list[Running], dict[uuid.UUID | None, Held]]:
        """Active attempts: consume node capacity, feed reservations, and count toward quotas."""
        rows = (
            await session.execute(
                select(
                    AttemptRow.node_id,
                    AttemptRow.gpu_indices,
                    AttemptRow.assigned_at,
                    AttemptRow.started_at,
                    TaskRow.owner_id,
                    TaskRow.cpus,
                    TaskRow.memory_mb,
                    TaskRow.gpus,
                    func.coalesce(TaskRow.expected_duration_s, TaskRow.timeout_s),
                    func.now(),
                )
                .join(TaskRow, TaskRow.id == AttemptRow.task_id)
                .where(AttemptRow.state.in_(ATTEMPT_ACTIVE_STATES))
            )
        ).all()
        by_id = {n.node_id: n for n in nodes}
        running: list[Running] = []
        held: dict[uuid.UUID | None, Held] = defaultdict(Held)
        for node_id, gpus, assigned_at, started_at, owner, cpus, mem, ngpus, est, now in rows:
            h = held[owner]
            h.cpus += cpus
            h.memory_mb += mem
            h.gpus += ngpus
            n = by_id.get(node_id) if node_id is not None else None
            if n is None:
                continue
            n.free_cpus -= cpus
            n.free_memory_mb -= mem
            n.free_gpu_indices = [g for g in n.free_gpu_indices if g not in gpus]
            elapsed = (now - (started_at or assigned_at)).total_seconds()
            running.append(Running(n.node_id, cpus, mem, list(gpus), max(0.0, est - elapsed)))
        return running, held

    async def _write_assignments(self, session: AsyncSession, plan: Plan) -> list[NewEvent]:
        if not plan.placements:
            return []
        counts = dict(
            (
                await session.execute(
                    select(TaskRow.id, TaskRow.attempt_count).where(
                        TaskRow.id.in_([p.task_id for p in plan.placements])
                    )
                )
            ).all()
        )
        attempts, task_updates, events = [], [], []
        for p in plan.placements:
            attempt_no = counts[p.task_id] + 1
            attempts.append(
                {
                    "task_id": p.task_id,
                    "attempt_no": attempt_no,
                    "node_id": p.node_id,
                    "node_name": p.node_name,
                    "state": "assigned",
                    "gpu_indices": p.gpu_indices,
                    "log_bytes": 0,
                    "log_truncated": False,
                }
            )
            task_updates.append({"b_id": p.task_id, "b_attempt": attempt_no})
            extra = {"avoided_node_ids": [str(n) for n in p.avoided]} if p.avoided else {}
            events.append(
                task_event(
                    p.task_id,
                    "task.assigned",
                    "system:scheduler",
                    attempt_no=attempt_no,
                    node_id=str(p.node_id),
                    node=p.node_name,
                    gpu_indices=p.gpu_indices,
                    **extra,
                )
            )
        await session.execute(table_of(AttemptRow).insert(), attempts)
        tbl = table_of(TaskRow)
        await session.execute(
            update(tbl)
            .where(tbl.c.id == bindparam("b_id"))
            .values(
                state="assigned",
                attempt_count=bindparam("b_attempt"),
                unschedulable_reason=None,
                pending_reason=None,
                pending_detail=None,
                not_before=None,
                updated_at=func.now(),
            ),
            task_updates,
        )
        return events

    async def _write_reasons(
        self, session: AsyncSession, plan: Plan, groups: list[Group], lims: list[dict[str, Any]]
    ) -> list[NewEvent]:
        """Give every waiting task its reason; an event only where the reason changed.

        A group whose verdict and size are what they were last pass is not looked at again
        (its tasks already carry that reason), so a quiet pass scans no pending tasks here."""
        verdicts = []
        seen: dict[tuple[str, str], tuple[str, str, tuple[int, int]]] = {}
        for gi, v in plan.group_verdicts.items():
            key = (lims[gi]["owner"], lims[gi]["shape"])
            seen[key] = (v.code, json.dumps(v.detail, sort_keys=True), groups[gi].version)
            if self._verdicts.get(key) == seen[key]:
                continue
            verdicts.append(
                {
                    "owner": key[0],
                    "shape": key[1],
                    "code": v.code,
                    "detail": v.detail or None,
                    "message": v.detail.get("message") if v.code == reasons.NO_NODE_FITS else None,
                }
            )
        skip = [str(t) for t in plan.task_verdicts]
        changed: dict[uuid.UUID, tuple[Verdict, str | None]] = {}
        if verdicts:
            for row in (
                await session.execute(
                    _CHANGED_SQL, {"verdicts": json.dumps(verdicts), "skip": skip}
                )
            ).all():
                changed[row.id] = (Verdict(row.code, row.detail or {}), row.pending_reason)
        current = {c.task_id: c.pending_reason for g in groups for c in g.candidates}
        for task_id, v in plan.task_verdicts.items():
            changed[task_id] = (v, current.get(task_id, "?"))
        for task_id in set(self._reserved) - set(plan.task_verdicts) - set(changed):
            if task_id in current:  # no longer reserved for: drop the stale reserved_node
                changed[task_id] = (Verdict(reasons.WAITING_FOR_RESOURCES), current[task_id])
        if not changed:
            self._next_verdicts = seen
            return []
        rows = [
            {
                "id": str(t),
                "code": v.code,
                "detail": v.detail or None,
                "message": v.detail.get("message") if v.code == reasons.NO_NODE_FITS else None,
            }
            for t, (v, _) in changed.items()
        ]
        done = set(
            (
                await session.scalars(
                    _SET_REASON_SQL, {"rows": json.dumps(rows), "ids": [r["id"] for r in rows]}
                )
            ).all()
        )
        self._next_verdicts = seen if done >= set(changed) else {}
        events = []
        for t, (v, before) in changed.items():
            if t not in done or (before == v.code and v.code != reasons.NO_NODE_FITS):
                continue
            if v.code == reasons.NO_NODE_FITS:
                events.append(
                    task_event(
                        t,
                        "task.unschedulable",
                        "system:scheduler",
                        reason=v.detail.get("message"),
                        pending_reason=v.code,
                    )
                )
            else:
                events.append(
                    task_event(
                        t,
                        "task.waiting",
                        "system:scheduler",
                        pending_reason=v.code,
                        previous=before,
                        **v.detail,
                    )
                )
        return events
