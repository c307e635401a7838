"""The scheduling loop: group pending tasks by shape, plan (backfill.py), claim and assign.

Several server instances may run this on one database, without a leader: a pass takes a
transaction-scoped advisory lock first, so passes run one after another (any instance's), each
planning from what the previous one committed: capacity, and the reservations it stored in
``scheduling_reservations``. Candidate tasks and the nodes placed on are still locked with
``FOR UPDATE SKIP LOCKED``, so a task being cancelled or a node going away at that moment is
left for the next pass; no task and no capacity is handed out twice.

One pass, one transaction:
1. retried tasks get their ``not_before`` (retry backoff);
2. the pending groups (owner, account, shape: the stored ``group_key``) come from a loose
   scan of a partial index, one probe per group, so 100,000 pending tasks in 100 groups cost
   about 200 index probes, not 100,000 rows;
3. for each group, only as many of its best tasks as could start now are read and locked
   (one for a group that cannot start, to rank it for the reservation);
4. ``plan_pass`` decides placements, the reservations and every group's pending reason;
5. attempts are inserted, tasks moved to ``assigned``, and each task whose reason changed
   gets its new reason and one event (``task.waiting`` / ``task.unschedulable``).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from types import SimpleNamespace
from typing import Any

import msgspec
import structlog
from sqlalchemy import Text, bindparam, cast, delete, func, insert, select, text, update
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
    QuotaKey,
    Running,
    Verdict,
    plan_pass,
    quota_keys,
)
from unidesk.core.scheduler.models import QuotaRow, ReservationRow
from unidesk.core.scheduler.placement import Demand, NodeCapacity, fits_now
from unidesk.core.scheduler.shares import share_keys
from unidesk.core.settings import Settings
from unidesk.core.tasks.models import ATTEMPT_ACTIVE_STATES, AttemptRow, TaskRow
from unidesk.core.tasks.transitions import task_event

__all__ = ["WAKE_KINDS", "Scheduler"]

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
_SUBMIT_KINDS = frozenset({"task.submitted"})
"""Wakes that add pending work but free no capacity: after a pass that placed nothing they
need only a light pass (see ``Scheduler.run_pass``)."""
_JUDGED_KINDS = frozenset({"task.waiting", "task.unschedulable"})
_SCHEDULABLE = (NodeRow.state == "online", NodeRow.connection_id.is_not(None))
"""Connected nodes; draining or unhealthy ones (``accepts_work`` False) get only host.ssh work."""

_READY = "t.state = 'pending' AND (t.not_before IS NULL OR t.not_before <= now())"
_EST = "coalesce(t.expected_duration_s, t.timeout_s)"

_GROUPS_SQL = text(
    f"""
    WITH RECURSIVE k AS (
      (SELECT t.group_key FROM tasks t WHERE t.state = 'pending' ORDER BY t.group_key LIMIT 1)
      UNION ALL
      SELECT (SELECT t.group_key FROM tasks t
              WHERE t.state = 'pending' AND t.group_key > k.group_key
              ORDER BY t.group_key LIMIT 1)
      FROM k WHERE k.group_key IS NOT NULL
    )
    SELECT k.group_key, b.*
    FROM k CROSS JOIN LATERAL (
      SELECT t.id, t.owner_id, t.account, t.priority, t.seq, {_EST} AS est, t.pending_reason,
             t.cpus, t.memory_mb, t.gpus, t.labels, t.gpu_model, t.gpu_memory_mb,
             t.avoid_node_ids, t.extra->>'runtime' AS runtime, t.extra->>'node_id' AS node_id,
             t.extra->>'kind' AS kind, t.extra#>>'{{params,op}}' AS op,
             t.extra->'host_mounts' AS host_mounts
      FROM tasks t WHERE t.group_key = k.group_key AND {_READY}
      ORDER BY t.priority DESC, t.seq LIMIT 1
    ) b
    """
)
"""One row per pending group (owner, account, shape; ``tasks.group_key``) with a ready task:
its best task. The groups come from a loose scan of ``ix_tasks_pending_groups`` (one index
probe per group, whatever the number of tasks), each best task from one more probe."""
_CANDIDATES_SQL = text(
    f"""
    SELECT c.* FROM jsonb_to_recordset(CAST(:groups AS jsonb)) AS g(key text, lim int)
    CROSS JOIN LATERAL (
      SELECT t.id, t.group_key, t.priority, t.seq, {_EST} AS est, t.pending_reason
      FROM tasks t WHERE t.group_key = g.key AND {_READY}
      ORDER BY t.priority DESC, t.seq LIMIT g.lim
    ) c
    """
)
_FRESH_SQL = text(
    f"""
    SELECT t.id, t.group_key, t.pending_reason FROM tasks t
    WHERE {_READY} AND (t.pending_reason IS NULL OR t.pending_reason = 'retry_backoff')
      AND NOT (t.id = ANY(CAST(:skip AS uuid[])))
    """
)
"""Ready tasks no pass has given a reason yet (new, or out of retry backoff), on the partial
index ``ix_tasks_pending_fresh``: they need their group's verdict even when it is unchanged."""
_CHANGED_SQL = text(
    f"""
    SELECT t.id, g.code, g.detail, g.message, t.pending_reason
    FROM jsonb_to_recordset(CAST(:verdicts AS jsonb))
      AS g(key text, code text, detail jsonb, message text)
    JOIN tasks t ON t.group_key = g.key
    WHERE {_READY} AND NOT (t.id = ANY(CAST(:skip AS uuid[])))
      AND (t.pending_reason IS DISTINCT FROM g.code
           OR (g.code = 'no_node_fits' AND t.unschedulable_reason IS DISTINCT FROM g.message))
    """
)
_RUNNING_SQL = text(
    f"""
    SELECT a.node_id, a.gpu_indices, t.owner_id, t.account, t.cpus, t.memory_mb, t.gpus,
           CASE WHEN :with_labels THEN n.labels END AS node_labels,
           {_EST} - extract(epoch from now() - coalesce(a.started_at, a.assigned_at)) AS left_s
    FROM task_attempts a JOIN tasks t ON t.id = a.task_id LEFT JOIN nodes n ON n.id = a.node_id
    WHERE a.state = ANY(CAST(:states AS text[]))
    """
).bindparams(states=list(ATTEMPT_ACTIVE_STATES))
"""Active attempts with what they hold, where, and how long they are expected to go on."""
_MAYBE_MORE = 2**31
"""A group's size is not counted (that would read every pending task): at least its candidates."""
_PASS_LOCK = 0x756E6964_6573_6B  # "unidesk" as a number: one pass at a time per database
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
    cast(NodeRow.labels, Text).label("labels"),
    NodeRow.cpus,
    NodeRow.memory_mb,
    cast(NodeRow.gpus, Text).label("gpus"),
    cast(NodeRow.runtimes, Text).label("runtimes"),
    NodeRow.draining,
    NodeRow.unhealthy_reason,
    cast(NodeRow.host_mounts, Text).label("host_mounts"),
)
"""What a pass reads of a node (plain rows: no ORM objects for 1,000 nodes; the JSONB columns
as their text, decoded only when the row is not the one a previous pass turned into a
``NodeCapacity``: see ``_NodeCache``)."""


class _NodeCache:
    """The ``NodeCapacity`` each node row was last turned into, keyed by the whole row read this
    pass (so any change to a node is a miss): decoding its JSON and building it was most of a
    pass's node phase (~10 of 13 ms for 1,000 nodes). Each pass gets fresh copies with all
    capacity free; only the rows of the latest pass are kept."""

    def __init__(self) -> None:
        self._by_row: dict[tuple[Any, ...], NodeCapacity] = {}

    def capacities(self, rows: Sequence[Any]) -> list[NodeCapacity]:
        seen: dict[tuple[Any, ...], NodeCapacity] = {}
        out = []
        for r in rows:
            key = tuple(r)
            tpl = self._by_row.get(key)
            if tpl is None:
                tpl = _capacity(_decoded(r))
            seen[key] = tpl
            out.append(
                msgspec.structs.replace(
                    tpl,
                    free_cpus=tpl.cpus,
                    free_memory_mb=tpl.memory_mb,
                    free_gpu_indices=list(tpl.gpu_indices),
                    gpu_indices=list(tpl.gpu_indices),
                )
            )
        self._by_row = seen
        return out


def _decoded(r: Any) -> Any:
    return SimpleNamespace(
        id=r.id,
        name=r.name,
        labels=msgspec.json.decode(r.labels),
        cpus=r.cpus,
        memory_mb=r.memory_mb,
        gpus=msgspec.json.decode(r.gpus),
        runtimes=msgspec.json.decode(r.runtimes),
        draining=r.draining,
        unhealthy_reason=r.unhealthy_reason,
        host_mounts=msgspec.json.decode(r.host_mounts) if r.host_mounts is not None else None,
    )


def _capacity(n: Any) -> NodeCapacity:
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
        free_cpus=n.cpus,
        free_memory_mb=n.memory_mb,
        free_gpu_indices=list(indices),
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


RETRY_LOCKED_S = 0.05
"""Delay before the pass after one that skipped a locked node or task row (the lock holders,
heartbeat flushes and report batches, commit within milliseconds)."""


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
        self._retry = False
        """This pass skipped a row another transaction held: a full pass follows shortly."""
        self._retries = 0
        self._task: asyncio.Task[None] | None = None
        self.assigned_total = 0
        self.last_plan: Plan | None = None
        self.last_timings: dict[str, float] = {}
        self._verdicts: dict[str, tuple[str, str]] = {}
        """Last committed verdict per group key: the tasks of a group whose verdict is unchanged
        already carry it; only its fresh tasks (``_FRESH_SQL``) are given it."""
        self._next_verdicts: dict[str, tuple[str, str]] = {}
        self._after_commit: dict[str, tuple[str, str]] | None = None
        self.on_assigned: Callable[[list[tuple[uuid.UUID, int, uuid.UUID]]], Awaitable[Any]] | None
        self.on_assigned = None
        """Called after a pass commits with its ``(task_id, attempt_no, node_id)`` assignments:
        this instance delivers to the nodes it holds at once, without waiting for the event
        to come back through NOTIFY (the ``task.assigned`` event still reaches every instance)."""
        self._assigned: list[tuple[uuid.UUID, int, uuid.UUID]] = []
        self._cached: dict[str, Verdict] = {}
        """``_verdicts`` as Verdicts: what a light pass gives a fresh task of a known group."""
        self._next_cached: dict[str, Verdict] = {}
        self._full = True
        """The next pass must be a full one: capacity may have been freed (an attempt ended, a
        node came, a quota changed), the timer ticked, or the last full pass placed tasks."""
        self.epoch = 0
        """Counts the times something asked for a full pass (see ``judge_submitted``)."""
        self.passes = {"full": 0, "light": 0}
        self._nodes = _NodeCache()
        self._woken_at = 0.0
        """When the last ``wake``/``wake_submitted`` came (perf_counter; the debug trace)."""

    def _request_full(self) -> None:
        self._full = True
        self.epoch += 1

    def wake(self) -> None:
        """Run a full pass soon (capacity, nodes or quotas may have changed)."""
        self._request_full()
        self._woken_at = time.perf_counter()
        self._wake.set()

    def wake_submitted(self) -> None:
        """New pending tasks were committed: a pass soon, a light one if nothing can be placed."""
        self._woken_at = time.perf_counter()
        self._wake.set()

    async def on_events(self, events: list[EventOut]) -> None:
        kinds = {e.kind for e in events} & WAKE_KINDS
        if kinds - _SUBMIT_KINDS:
            self._request_full()
            self._wake.set()
        elif kinds:
            # Submits whose transaction gave them their reason already need no pass.
            new = {e.subject_id for e in events if e.kind in _SUBMIT_KINDS}
            judged = {e.subject_id for e in events if e.kind in _JUDGED_KINDS}
            if new - judged:
                self._wake.set()

    def judge_submitted(self, rows: list[Any]) -> dict[uuid.UUID, Verdict] | None:
        """The reasons new tasks (rows with ``id`` and ``group_key``) get in their submit's own
        transaction, where a light pass would give them the same: while only submits came
        since a full pass that placed nothing, and every task is of a group it judged. None:
        a pass must judge them (the submitter wakes it)."""
        if self._full:
            return None
        out = {}
        for r in rows:
            v = self._cached.get(r.group_key)
            if v is None:
                return None
            out[r.id] = v
        return out

    async def reason_events(
        self, session: AsyncSession, verdicts: dict[uuid.UUID, Verdict]
    ) -> list[NewEvent]:
        """Store ``judge_submitted``'s reasons in the submit's transaction; their events."""
        _, events = await self._set_reasons(session, {t: (v, None) for t, v in verdicts.items()})
        return events

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
                self._request_full()  # the timer's pass re-reads everything (backoffs end)
            self._wake.clear()
            try:
                while await self.run_pass(light_ok=True) >= self.batch:
                    pass
            except Exception:
                self._request_full()
                log.exception("scheduling pass failed")
                await asyncio.sleep(0.5)

    async def run_pass(self, *, light_ok: bool = False) -> int:
        """One claim-place-assign transaction; returns how many tasks were assigned.

        ``light_ok`` (the loop's passes): a light pass instead when nothing but new submits
        came since a full pass that placed nothing (every node full, or none fits): it reads
        only the fresh tasks and gives each its group's verdict of that pass, or turns into a
        full pass if one belongs to a group that pass did not judge."""
        # ``_full`` stays False during a light pass: it changes no verdict, so submits written
        # during it are still judged in their own transactions.
        if (
            light_ok
            and not self._full
            and await in_transaction(self._sessions, self._light, name="schedule-light")
        ):
            self.passes["light"] += 1
            return 0
        self._full = True  # during a full pass verdicts may change: submits wake a pass
        self._after_commit = None
        self._retry = False
        self._assigned = []
        started = time.perf_counter()
        assigned = await in_transaction(self._sessions, self._assign, name="schedule")
        committed = time.perf_counter()
        self.passes["full"] += 1
        if self._after_commit is not None:  # the cache follows only what was committed
            self._verdicts = self._after_commit
            self._cached = self._next_cached
            # Placed nothing and every verdict stored: until capacity may have changed, a new
            # submit can only wait like its group (or be of a new group: then a full pass).
            self._full = assigned > 0 or not self._verdicts
        self.assigned_total += assigned
        if self._retry:
            # A placement or candidate was skipped because another writer held its row (a
            # heartbeat flush on the node, a report on the task): nothing else will wake a
            # pass for it, so another full one follows shortly rather than at the timer's.
            # Doubling while rows stay held (a long transaction), never past the timer.
            delay = min(RETRY_LOCKED_S * 2**self._retries, self.tick_s)
            self._retries += 1
            self._request_full()
            asyncio.get_running_loop().call_later(delay, self._wake.set)
        else:
            self._retries = 0
        if self._assigned and self.on_assigned is not None:
            try:
                await self.on_assigned(self._assigned)
            except Exception:  # delivery's own redelivery pass sends them later
                log.exception("direct delivery after a pass failed")
            # Where a dispatch's milliseconds go (docs/scheduling.md "Latency"): the wake, the
            # pass's phases, its commit, the frames handed to the sockets.
            log.debug(
                "pass assigned",
                assigned=assigned,
                wake_to_pass_ms=round((started - self._woken_at) * 1000, 1),
                phases_ms=self.last_timings,
                commit_ms=round((committed - started) * 1000 - sum(self.last_timings.values()), 1),
                deliver_ms=round((time.perf_counter() - committed) * 1000, 1),
            )
        return assigned

    async def _assign(self, session: AsyncSession) -> int:
        s = self.settings
        lap = _Laps()
        self.last_timings = lap.ms
        # One pass at a time on this database, whichever instance runs it: a second waits
        # for the first to commit, then plans from what it wrote (capacity, reservations).
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PASS_LOCK})
        # The pass joins a few rows (running attempts, candidates) to tasks by key: with the
        # default random_page_cost (4, spinning disks) the planner scanned every task instead
        # of probing its primary key (0.3 s vs 0.06 s at 100,000 tasks here).
        await session.execute(text("SET LOCAL random_page_cost = 1.1"))
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
        nodes = self._nodes.capacities(all_nodes)
        lap("nodes")
        quota_rows = (await session.scalars(select(QuotaRow))).all()
        quotas: dict[QuotaKey, list[Quota]] = defaultdict(list)
        for q in quota_rows:
            sub: QuotaKey = ("user", q.user_id) if q.user_id else ("account", q.account)
            who = "owner" if q.user_id else f"account {q.account}"
            quotas[sub].append(Quota(q.max_gpus, q.max_cpus, q.max_memory_mb, q.label, who))
        running, held = await self._running(
            session, nodes, sorted({q.label for q in quota_rows if q.label})
        )
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
                    owner=r.owner_id,
                    account=r.account,
                    demand=d,
                    count=_MAYBE_MORE,
                )
            )
            lim = max(1, min(self.batch, _slots(d, nodes, self.batch, maxima)))
            lims.append({"key": r.group_key, "lim": lim})
            cand_rows[r.id] = r
            if lim > 1:
                more.append(lims[-1])
        index = {g["key"]: i for i, g in enumerate(lims)}
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
        if len(mine) < len(cand_rows):
            self._retry = True  # a pending task locked by another writer right now
        for c in sorted(cand_rows.values(), key=lambda c: (-c.priority, c.seq)):
            if c.id in mine:
                groups[index[c.group_key]].candidates.append(
                    Candidate(c.id, c.priority, c.seq, float(c.est), c.pending_reason)
                )
        shares = await share_keys(session, s)
        reserved: dict[uuid.UUID, uuid.UUID] = dict(
            (await session.execute(select(ReservationRow.task_id, ReservationRow.node_id))).all()
        )
        lap("quotas_shares")
        plan = plan_pass(
            groups,
            nodes,
            running=running,
            shares=shares.users,
            account_shares=shares.accounts,
            quotas=quotas,
            held=held,
            gpu_weight=s.fairshare_gpu_weight,
            memory_gb_weight=s.fairshare_memory_gb_weight,
            charge_horizon_s=s.fairshare_half_life_h * 3600.0,
            limit=self.batch,
            reserved=reserved,
        )
        lap("plan")
        await self._claim_nodes(session, plan)
        self.last_plan = plan
        events = backoffs + await self._write_assignments(session, plan)
        lap("assign")
        events += await self._write_reasons(session, plan, groups, lims, reserved)
        await self._write_reservations(session, plan, reserved)
        self._after_commit = self._next_verdicts
        if events:
            await append_many(session, events)
        lap("reasons")
        return len(plan.placements)

    async def _light(self, session: AsyncSession) -> bool:
        """Give the fresh tasks their group's last verdict; False (nothing written): a fresh
        task is of a group the last full pass did not judge, so a full pass is needed."""
        lap = _Laps()
        self.last_timings = lap.ms
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PASS_LOCK})
        rows = (await session.execute(_FRESH_SQL, {"skip": []})).all()
        lap("fresh")
        changed: dict[uuid.UUID, tuple[Verdict, str | None]] = {}
        for row in rows:
            v = self._cached.get(row.group_key)
            if v is None:
                return False
            changed[row.id] = (v, row.pending_reason)
        _, events = await self._set_reasons(session, changed)
        if events:
            await append_many(session, events)
        lap("reasons")
        return True

    async def _claim_nodes(self, session: AsyncSession, plan: Plan) -> None:
        """Lock the nodes the plan places on; a placement on a node that went away (or is
        locked by a change to it right now) is dropped, its task tries again next pass."""
        if not plan.placements:
            return
        ids = list({p.node_id for p in plan.placements})
        ok = set(
            (
                await session.scalars(
                    select(NodeRow.id)
                    .where(NodeRow.id.in_(ids), *_SCHEDULABLE)
                    .with_for_update(skip_locked=True)
                )
            ).all()
        )
        kept = [p for p in plan.placements if p.node_id in ok]
        if len(kept) < len(plan.placements):
            self._retry = True
        plan.placements = kept

    async def _write_reservations(
        self, session: AsyncSession, plan: Plan, before: dict[uuid.UUID, uuid.UUID]
    ) -> None:
        """Store this pass's reservations for every instance's next pass (only if changed)."""
        now = {r.task_id: r.node_id for r in plan.reservations}
        if now == before:
            return
        await session.execute(delete(ReservationRow))
        if now:
            await session.execute(
                insert(ReservationRow), [{"task_id": t, "node_id": n} for t, n in now.items()]
            )

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
        self, session: AsyncSession, nodes: list[NodeCapacity], quota_labels: list[str]
    ) -> tuple[list[Running], dict[tuple[QuotaKey, str], Held]]:
        """Active attempts: consume node capacity, feed reservations, and count toward quotas
        (per user and per account, on all nodes and on the nodes of each quota's label)."""
        rows = (await session.execute(_RUNNING_SQL, {"with_labels": bool(quota_labels)})).all()
        by_id = {n.node_id: n for n in nodes}
        labels = [(q, *q.partition("=")[::2]) for q in quota_labels]
        running: list[Running] = []
        held: dict[tuple[QuotaKey, str], Held] = defaultdict(Held)
        for r in rows:
            on = [""] + [q for q, k, v in labels if r.node_labels and r.node_labels.get(k) == v]
            for sub in quota_keys(r.owner_id, r.account):
                for label in on:
                    h = held[(sub, label)]
                    h.cpus += r.cpus
                    h.memory_mb += r.memory_mb
                    h.gpus += r.gpus
            n = by_id.get(r.node_id) if r.node_id is not None else None
            if n is None:
                continue
            n.free_cpus -= r.cpus
            n.free_memory_mb -= r.memory_mb
            n.free_gpu_indices = [g for g in n.free_gpu_indices if g not in r.gpu_indices]
            running.append(
                Running(n.node_id, r.cpus, r.memory_mb, list(r.gpu_indices), max(0.0, r.left_s))
            )
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
            self._assigned.append((p.task_id, attempt_no, p.node_id))
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
        # The moment of assignment, not the pass's transaction start (now()): a pass may wait
        # for the advisory lock and read capacity a previous attempt freed after its start, and
        # an attempt must not look assigned before the one whose place it took had finished.
        await session.execute(
            table_of(AttemptRow).insert().values(assigned_at=func.clock_timestamp()), attempts
        )
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
        self,
        session: AsyncSession,
        plan: Plan,
        groups: list[Group],
        lims: list[dict[str, Any]],
        reserved: dict[uuid.UUID, uuid.UUID],
    ) -> list[NewEvent]:
        """Give every waiting task its reason; an event only where the reason changed.

        A group whose verdict and size are what they were last pass is not looked at again
        (its tasks already carry that reason), so a quiet pass scans no pending tasks here."""
        verdicts = []
        seen: dict[str, tuple[str, str]] = {}
        same: dict[str, Verdict] = {}
        self._next_cached = {}
        for gi, v in plan.group_verdicts.items():
            key = lims[gi]["key"]
            seen[key] = (v.code, json.dumps(v.detail, sort_keys=True))
            self._next_cached[key] = v
            if self._verdicts.get(key) == seen[key]:
                same[key] = v
                continue
            verdicts.append(
                {
                    "key": key,
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
        if same:
            for row in (await session.execute(_FRESH_SQL, {"skip": skip})).all():
                if row.group_key in same:
                    changed[row.id] = (same[row.group_key], row.pending_reason)
        current = {c.task_id: c.pending_reason for g in groups for c in g.candidates}
        for task_id, v in plan.task_verdicts.items():
            changed[task_id] = (v, current.get(task_id, "?"))
        for task_id in set(reserved) - set(plan.task_verdicts) - set(changed):
            if task_id in current:  # no longer reserved for: drop the stale reserved_node
                changed[task_id] = (Verdict(reasons.WAITING_FOR_RESOURCES), current[task_id])
        if not changed:
            self._next_verdicts = seen
            return []
        done, events = await self._set_reasons(session, changed)
        self._next_verdicts = seen if done >= set(changed) else {}
        return events

    async def _set_reasons(
        self, session: AsyncSession, changed: dict[uuid.UUID, tuple[Verdict, str | None]]
    ) -> tuple[set[uuid.UUID], list[NewEvent]]:
        """Store each task's new reason (tasks locked elsewhere are skipped); the tasks done and
        an event for each whose reason changed."""
        if not changed:
            return set(), []
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
        return done, events
