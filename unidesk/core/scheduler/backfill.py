"""Pure pass planning: fair-share order, backfill, reservations, quotas. No I/O here.

Pending tasks come grouped by owner and resource shape (a ``Group`` holds the best few
tasks of one owner with one shape, best first). ``plan_pass`` walks them in rank order:

1. The (owner, account) lane with the smallest fair-share key goes next: the owner's key plus
   the account's (``shares`` and ``account_shares``: decayed usage plus committed running
   work, see ``shares.py``; tasks without an account share the default account ''). A placed
   task adds its expected charge to both keys, so one pass interleaves owners and accounts
   instead of serving one entirely.
2. Within a lane, higher priority first, then older (lower ``seq``).
3. A task that fits a node now is placed there (the node with the most CPUs left over),
   unless that node is reserved (below) and the task would still run when the reserved task
   is expected to start, or it lost/failed an earlier attempt there while another node could run it.
4. The first task in rank order of each group that could run on some node but not now gets
   a reservation (at most ``max_reservations``, one per node): the node where it is expected
   to start soonest (running attempts end at start + estimate, estimate =
   ``expected_duration_s`` else ``timeout_s``), or the one it held last pass if still possible.
   Later tasks go there only if they are expected to end before that start, or leave enough
   for it then (backfill); else they wait ``held_for_reservation``.
5. A task that fits nothing never blocks one that fits: it is only given its reason.
6. Quotas (per user or per account, on all nodes or on nodes carrying a label): a task that
   would take a subject over one waits ``over_quota``; a label quota only keeps it off the
   nodes with that label.

Capacity only shrinks during a pass, so a shape that failed once fails for the rest of it.
"""

from __future__ import annotations

import heapq
import operator
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from unidesk.core.scheduler import reasons
from unidesk.core.scheduler.placement import (
    Demand,
    NodeCapacity,
    SuitCache,
    fits_now,
    fitting_nodes,
    matching_free_gpus,
    never_fits_reason,
)

__all__ = [
    "Candidate",
    "Group",
    "Held",
    "Plan",
    "Quota",
    "QuotaKey",
    "Reservation",
    "Running",
    "Verdict",
    "charge_rate",
    "node_classes",
    "plan_pass",
    "quota_excess",
    "quota_keys",
    "shape_key",
]


@dataclass(frozen=True)
class Candidate:
    task_id: uuid.UUID
    priority: int
    seq: int
    estimate_s: float
    pending_reason: str | None = None


@dataclass
class Group:
    """Pending tasks of one owner with one shape; ``candidates`` are the best few, best first."""

    owner: uuid.UUID | None
    demand: Demand
    count: int
    """How many tasks the group has (at least): more than ``candidates`` means some wait."""
    key: Any = None
    account: str | None = None
    candidates: list[Candidate] = field(default_factory=list)


@dataclass
class Running:
    node_id: uuid.UUID
    cpus: float
    memory_mb: int
    gpu_indices: list[int]
    ends_in_s: float


QuotaKey = tuple[str, Any]
"""Whom a quota limits: ``("user", owner id or None)`` or ``("account", name or None)``."""


def quota_keys(owner: uuid.UUID | None, account: str | None) -> tuple[QuotaKey, QuotaKey]:
    """The quota subjects a task of ``owner`` charged to ``account`` counts against."""
    return ("user", owner), ("account", account)


@dataclass(frozen=True)
class Quota:
    max_gpus: int | None = None
    max_cpus: float | None = None
    max_memory_mb: int | None = None
    label: str = ""
    """``key=value``: the quota counts (and limits) only attempts on nodes carrying that label;
    '' counts all."""
    who: str = "owner"
    """How messages name the subject: ``owner``, ``account ml``."""

    def covers(self, n: NodeCapacity) -> bool:
        """Whether attempts on ``n`` count against this quota."""
        if not self.label:
            return True
        key, _, value = self.label.partition("=")
        return n.labels.get(key) == value


@dataclass
class Held:
    """What one owner's active attempts hold now (quotas count this)."""

    cpus: float = 0.0
    memory_mb: int = 0
    gpus: int = 0


@dataclass(frozen=True)
class Verdict:
    code: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reservation:
    task_id: uuid.UUID
    node_id: uuid.UUID
    node_name: str
    starts_in_s: float
    demand: Demand


@dataclass
class Assignment:
    task_id: uuid.UUID
    node_id: uuid.UUID
    node_name: str
    gpu_indices: list[int]
    avoided: list[uuid.UUID]


@dataclass
class Plan:
    placements: list[Assignment] = field(default_factory=list)
    group_verdicts: dict[int, Verdict] = field(default_factory=dict)
    """Index into ``groups`` -> the reason of every one of its tasks not placed this pass."""
    task_verdicts: dict[uuid.UUID, Verdict] = field(default_factory=dict)
    """Overrides for single tasks (the reserved one)."""
    reservations: list[Reservation] = field(default_factory=list)
    """At most ``max_reservations``, each on its own node, for the highest-ranked tasks of
    different groups that could run on some node but not now."""

    @property
    def reservation(self) -> Reservation | None:
        """The highest-ranked task's reservation."""
        return self.reservations[0] if self.reservations else None


def shape_key(d: Demand) -> tuple[Any, ...]:
    """Everything that decides where a task may run; tasks with one key place alike."""
    return (
        d.cpus,
        d.memory_mb,
        d.gpus,
        tuple(sorted(d.labels.items())),
        d.runtime,
        d.pinned_node,
        d.kind,
        d.op,
        d.gpu_model,
        d.gpu_memory_mb,
        d.avoid_nodes,
    )


def charge_rate(d: Demand, *, gpu_weight: float, memory_gb_weight: float) -> float:
    """Fair-share charge per second of running ``d``: CPUs + weighted GPUs and memory (GiB)."""
    return d.cpus + d.gpus * gpu_weight + d.memory_mb / 1024 * memory_gb_weight


def quota_excess(quota: Quota | None, held: Held, d: Demand) -> str | None:
    """Why starting ``d`` now would exceed the quota; None if it would not."""
    if quota is None:
        return None
    where = f" on {quota.label}" if quota.label else ""
    checks = (
        ("GPUs", quota.max_gpus, held.gpus, d.gpus),
        ("CPUs", quota.max_cpus, held.cpus, d.cpus),
        ("MB memory", quota.max_memory_mb, held.memory_mb, d.memory_mb),
    )
    for what, limit, used, want in checks:
        if limit is None or want == 0:
            continue
        if want > limit + 1e-9:
            return f"needs {want:g} {what}; the {quota.who}'s quota{where} allows {limit:g}"
        if used + want > limit + 1e-9:
            return (
                f"{quota.who} holds {used:g} of {limit:g} {what}{where}; "
                f"this task needs {want:g} more"
            )
    return None


def _idle(n: NodeCapacity) -> NodeCapacity:
    """``n`` with nothing running on it (every other field kept, new ones included)."""
    return msgspec.structs.replace(
        n, free_cpus=n.cpus, free_memory_mb=n.memory_mb, free_gpu_indices=list(n.gpu_indices)
    )


def node_classes(nodes: list[NodeCapacity]) -> list[NodeCapacity]:
    """One node per set of nodes alike in everything ``never_fits_reason`` looks at (not ids)."""
    seen: dict[tuple[Any, ...], NodeCapacity] = {}
    for n in nodes:
        sig = (
            tuple(sorted(n.labels.items())),
            tuple(n.runtimes),
            n.cpus,
            n.memory_mb,
            tuple(sorted(n.gpu_info.items())),
            tuple(n.gpu_indices),
            n.accepts_work,
            n.host_mounts,
        )
        seen.setdefault(sig, n)
    return list(seen.values())


def _without_avoid(d: Demand) -> Demand:
    return msgspec.structs.replace(d, avoid_nodes=frozenset())


def _starts_in(d: Demand, n: NodeCapacity, running: list[Running]) -> float | None:
    """When ``d`` is expected to fit ``n`` as its running attempts end; None: not by their ends."""
    probe = msgspec.structs.replace(n, free_gpu_indices=list(n.free_gpu_indices))
    if fits_now(d, probe):
        return 0.0
    for r in sorted(running, key=lambda r: r.ends_in_s):
        probe.free_cpus += r.cpus
        probe.free_memory_mb += r.memory_mb
        probe.free_gpu_indices = sorted({*probe.free_gpu_indices, *r.gpu_indices})
        if fits_now(d, probe):
            return max(0.0, r.ends_in_s)
    return None


def _would_delay(res: Reservation, d: Demand, n: NodeCapacity, running: list[Running]) -> bool:
    """Whether ``d`` on ``n``, still running at the reserved start, leaves too little for it."""
    taken = matching_free_gpus(d, n)[: d.gpus]
    probe = msgspec.structs.replace(
        n,
        free_cpus=n.free_cpus - d.cpus,
        free_memory_mb=n.free_memory_mb - d.memory_mb,
        free_gpu_indices=[g for g in n.free_gpu_indices if g not in taken],
    )
    for r in running:
        if r.ends_in_s <= res.starts_in_s:
            probe.free_cpus += r.cpus
            probe.free_memory_mb += r.memory_mb
            probe.free_gpu_indices = sorted({*probe.free_gpu_indices, *r.gpu_indices})
    return not fits_now(res.demand, probe)


def plan_pass(
    groups: list[Group],
    nodes: list[NodeCapacity],
    *,
    running: list[Running],
    shares: dict[uuid.UUID | None, float],
    quotas: dict[QuotaKey, list[Quota]],
    held: dict[tuple[QuotaKey, str], Held],
    account_shares: dict[str, float] | None = None,
    gpu_weight: float = 10.0,
    memory_gb_weight: float = 0.1,
    charge_horizon_s: float = 86400.0,
    limit: int = 500,
    reserved: dict[uuid.UUID, uuid.UUID] | None = None,
    max_reservations: int = 8,
) -> Plan:
    """Decide this pass: which tasks go where, the reservations, and every group's reason.

    ``nodes`` carry free capacity and are consumed as tasks are placed; ``running`` lists active
    attempts (for reservations); ``shares`` the owners' and ``account_shares`` the accounts'
    fair-share keys ('' is the default account; a lane's key is their sum, smaller goes
    first); ``quotas`` the limits of each subject (``quota_keys``) and ``held`` what each
    subject's active attempts hold now, per quota label ('' for all nodes); ``reserved`` the
    node each task held a reservation on before (kept while still feasible, so a reservation
    does not wander between nodes and lose what it has gathered). At most ``limit``
    placements."""
    plan = Plan()
    idle = [_idle(n) for n in nodes]
    classes = node_classes(idle)
    by_node = {n.node_id: n for n in nodes}
    running_on: dict[uuid.UUID, list[Running]] = {}
    for r in running:
        running_on.setdefault(r.node_id, []).append(r)
    max_cpus = max((n.free_cpus for n in nodes if n.accepts_work), default=0.0)
    max_mem = max((n.free_memory_mb for n in nodes if n.accepts_work), default=0)
    max_gpus = max((len(n.free_gpu_indices) for n in nodes if n.accepts_work), default=0)
    never: dict[Any, str | None] = {}
    failed: dict[Any, Verdict] = {}
    suits: SuitCache = {}
    share = dict(shares)
    acc_share = dict(account_shares or {})
    held = {k: Held(v.cpus, v.memory_mb, v.gpus) for k, v in held.items()}

    # Per lane (owner, account), a heap of its groups' next candidates:
    # (-priority, seq, group index, position).
    per_lane: dict[tuple[uuid.UUID | None, str], list[tuple[int, int, int, int]]] = {}
    for gi, g in enumerate(groups):
        key = g.key if g.key is not None else shape_key(g.demand)
        g.key = key
        if key not in never:
            d0 = _without_avoid(g.demand)
            never[key] = never_fits_reason(d0, idle if d0.pinned_node else classes)
        if never[key] is not None:
            plan.group_verdicts[gi] = Verdict(reasons.NO_NODE_FITS, {"message": never[key]})
            continue
        if g.candidates:
            c = g.candidates[0]
            per_lane.setdefault((g.owner, g.account or ""), []).append((-c.priority, c.seq, gi, 0))

    def lane_key(lane: tuple[uuid.UUID | None, str]) -> float:
        return share.get(lane[0], 0.0) + acc_share.get(lane[1], 0.0)

    lanes: list[tuple[float, str, tuple[uuid.UUID | None, str]]] = []
    for lane, heap in per_lane.items():
        heapq.heapify(heap)
        lanes.append((lane_key(lane), f"{lane[0]}|{lane[1]}", lane))
    heapq.heapify(lanes)

    while lanes and len(plan.placements) < limit:
        stored, tiebreak, lane = heapq.heappop(lanes)
        if lane_key(lane) > stored + 1e-9:  # keys only grow in a pass: re-rank lazily
            heapq.heappush(lanes, (lane_key(lane), tiebreak, lane))
            continue
        owner, account = lane
        heap = per_lane[lane]
        _, _, gi, pos = heapq.heappop(heap)
        g = groups[gi]
        c = g.candidates[pos]
        d = msgspec.structs.replace(g.demand, task_id=c.task_id)
        subjects = quota_keys(owner, g.account)
        on_labels = [
            (sub, q) for sub in subjects for q in quotas.get(sub, ()) if q.label
        ]  # quotas that only some nodes count against
        blocked = _blocker(on_labels, held, d) if on_labels else None
        verdict = None if blocked else failed.get(g.key)
        placed = None
        if verdict is None:
            excess = next(
                (
                    e
                    for sub in subjects
                    for q in quotas.get(sub, ())
                    if not q.label
                    and (e := quota_excess(q, held.setdefault((sub, ""), Held()), d)) is not None
                ),
                None,
            )
            if excess is not None:
                verdict = Verdict(reasons.OVER_QUOTA, {"message": excess})
            else:
                placed, verdict = _try_place(
                    d,
                    c,
                    nodes,
                    idle,
                    plan,
                    running_on,
                    by_node,
                    (max_cpus, max_mem, max_gpus),
                    suits,
                    blocked,
                )
                if (
                    blocked is None
                    and verdict is not None
                    and verdict.code == reasons.WAITING_FOR_RESOURCES
                ):
                    failed[g.key] = Verdict(
                        reasons.WAITING_FOR_RESOURCES,
                        {k: v for k, v in verdict.detail.items() if k == "avoiding"},
                    )
        if placed is not None:
            plan.placements.append(placed)
            node = by_node[placed.node_id]
            for sub in subjects:
                _add(held.setdefault((sub, ""), Held()), d)
            for sub, q in on_labels:
                if q.covers(node):
                    _add(held.setdefault((sub, q.label), Held()), d)
            running_on.setdefault(placed.node_id, []).append(
                Running(placed.node_id, d.cpus, d.memory_mb, placed.gpu_indices, c.estimate_s)
            )
            rate = charge_rate(d, gpu_weight=gpu_weight, memory_gb_weight=memory_gb_weight)
            charge = rate * min(c.estimate_s, charge_horizon_s)
            share[owner] = share.get(owner, 0.0) + charge
            acc_share[account] = acc_share.get(account, 0.0) + charge
            if pos + 1 < len(g.candidates):
                nxt = g.candidates[pos + 1]
                heapq.heappush(heap, (-nxt.priority, nxt.seq, gi, pos + 1))
            elif g.count > len(g.candidates) and gi not in plan.group_verdicts:
                # The group's tasks not read this pass wait (a held one keeps its reason).
                plan.group_verdicts[gi] = Verdict(reasons.WAITING_FOR_RESOURCES)
        else:
            assert verdict is not None
            if verdict.code == reasons.WAITING_FOR_RESOURCES and "avoiding" not in verdict.detail:
                # Same shape failed before in this pass: it may still take a reservation.
                verdict = _reserve(
                    d,
                    plan,
                    nodes,
                    running_on,
                    (reserved or {}).get(c.task_id),
                    max_reservations,
                    blocked,
                )
            if verdict.detail.get("reserved_node"):
                plan.task_verdicts[c.task_id] = verdict  # the reserved one; its group waits
                verdict = Verdict(reasons.WAITING_FOR_RESOURCES)
            plan.group_verdicts[gi] = verdict
            if verdict.code == reasons.HELD_FOR_RESERVATION and pos + 1 < len(g.candidates):
                nxt = g.candidates[pos + 1]  # a shorter one of the same shape may still backfill
                heapq.heappush(heap, (-nxt.priority, nxt.seq, gi, pos + 1))
        if heap:
            heapq.heappush(lanes, (lane_key(lane), tiebreak, lane))
    return plan


def _add(h: Held, d: Demand) -> None:
    h.cpus += d.cpus
    h.memory_mb += d.memory_mb
    h.gpus += d.gpus


Blocker = Callable[[NodeCapacity], "str | None"]
"""Why a label quota keeps a task off a node; None: it does not."""


def _blocker(
    on_labels: list[tuple[QuotaKey, Quota]], held: dict[tuple[QuotaKey, str], Held], d: Demand
) -> Blocker:
    def blocked(n: NodeCapacity) -> str | None:
        for sub, q in on_labels:
            if q.covers(n):
                excess = quota_excess(q, held.get((sub, q.label), Held()), d)
                if excess is not None:
                    return excess
        return None

    return blocked


_SPREAD = operator.attrgetter("free_cpus", "free_memory_mb", "name")
"""Placement spreads load: of the nodes a task may take, the one with the most free CPU."""


def _try_place(
    d: Demand,
    c: Candidate,
    nodes: list[NodeCapacity],
    idle: list[NodeCapacity],
    plan: Plan,
    running_on: dict[uuid.UUID, list[Running]],
    by_node: dict[uuid.UUID, NodeCapacity],
    maxima: tuple[float, int, int],
    suits: SuitCache,
    blocked: Blocker | None = None,
) -> tuple[Assignment | None, Verdict | None]:
    """Place ``d`` now if a node allows it (fits, within label quotas, respects reservations);
    else the reason."""
    fitting: list[NodeCapacity] = []
    if d.runtime == "host.ssh" or (
        d.cpus <= maxima[0] + 1e-9 and d.memory_mb <= maxima[1] and d.gpus <= maxima[2]
    ):
        fitting = fitting_nodes(d, nodes, suits)
    if blocked is not None:
        # Over a label quota everywhere it could go (now, or ever): that is why it waits.
        could = fitting or [i for i in idle if fits_now(d, i)]
        why = [blocked(n) for n in could]
        if could and all(why):
            return None, Verdict(reasons.OVER_QUOTA, {"message": why[0]})
        fitting = [n for n, w in zip(could, why, strict=True) if w is None] if fitting else []
    on_node = {r.node_id: r for r in plan.reservations}

    def respects(n: NodeCapacity) -> bool:
        r = on_node.get(n.node_id)
        return (
            r is None
            or c.estimate_s <= r.starts_in_s
            or not _would_delay(r, d, n, running_on.get(n.node_id, []))
        )

    allowed = [n for n in fitting if respects(n)] if on_node else fitting
    avoided: list[uuid.UUID] = []
    if d.avoid_nodes and allowed:
        others = [n for n in allowed if n.node_id not in d.avoid_nodes]
        if others:
            avoided = sorted({n.node_id for n in allowed} - {n.node_id for n in others})
            allowed = others
        elif never_fits_reason(d, [n for n in idle if n.node_id not in d.avoid_nodes]) is None:
            # Another node could run it: wait for one rather than go back where it failed.
            return None, Verdict(
                reasons.WAITING_FOR_RESOURCES,
                {"avoiding": sorted(by_node[n].name for n in d.avoid_nodes if n in by_node)},
            )
    if allowed:
        n = max(allowed, key=_SPREAD)  # the most free CPU, then memory, then name
        gpus = matching_free_gpus(d, n)[: d.gpus]
        n.free_cpus -= d.cpus
        n.free_memory_mb -= d.memory_mb
        n.free_gpu_indices = [g for g in n.free_gpu_indices if g not in gpus]
        return Assignment(d.task_id, n.node_id, n.name, gpus, avoided), None
    if fitting:
        return None, Verdict(
            reasons.HELD_FOR_RESERVATION, {"node": on_node[fitting[0].node_id].node_name}
        )
    return None, Verdict(reasons.WAITING_FOR_RESOURCES)


def _reserve(
    d: Demand,
    plan: Plan,
    nodes: list[NodeCapacity],
    running_on: dict[uuid.UUID, list[Running]],
    sticky: uuid.UUID | None,
    max_reservations: int,
    blocked: Blocker | None = None,
) -> Verdict:
    """Reserve for ``d`` the free node where it is expected to start soonest (its previous one
    while still feasible), if fewer than ``max_reservations`` are taken."""
    on_node = {r.node_id for r in plan.reservations}
    if len(plan.reservations) < max_reservations:

        def start(n: NodeCapacity) -> float | None:
            if n.node_id in on_node or n.node_id in d.avoid_nodes or not fits_now(d, _idle(n)):
                return None
            if blocked is not None and blocked(n) is not None:
                return None
            return _starts_in(d, n, running_on.get(n.node_id, []))

        best: tuple[float, str, NodeCapacity] | None = None
        kept = next((n for n in nodes if n.node_id == sticky), None) if sticky else None
        if kept is not None and (t0 := start(kept)) is not None:
            best = (t0, kept.name, kept)
        else:
            for n in nodes:
                t = start(n)
                if t is not None and (best is None or (t, n.name) < best[:2]):
                    best = (t, n.name, n)
        if best is not None:
            r = Reservation(d.task_id, best[2].node_id, best[2].name, best[0], d)
            plan.reservations.append(r)
            return Verdict(
                reasons.WAITING_FOR_RESOURCES,
                {"reserved_node": r.node_name, "expected_start_in_s": round(r.starts_in_s)},
            )
    return Verdict(reasons.WAITING_FOR_RESOURCES)
