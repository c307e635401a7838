"""Scheduling policy benchmark (prints figures; not a test).

1. Pass time. An embedded PostgreSQL, 1,000 simulated nodes (800 CPU nodes, 200 with four
   A100s), every node busy with a running attempt, then 10,000 (and 100,000) pending tasks of
   10 users in 100 resource shapes. Prints the first pass (which gives every task its reason,
   one event each; then ANALYZE, as autovacuum would within a minute of so many changed
   rows) and the median steady pass (nothing changed) of the real ``Scheduler``, and
   as a baseline in the same run the previous scheduler's pass (top 500 by priority, then
   place). Then one idle node joins and one 1-CPU probe is submitted behind the backlog:
   whether each scheduler assigns it in one pass (the starvation case).
2. Fairness. A simulated day on 16 nodes x 4 GPUs: four users with different habits (one
   queues 5,000 tasks first, one 200 an hour, one 2-GPU tasks, one 4-GPU tasks), each always
   backlogged, so equal shares mean equal GPU time. Prints Jain's index of GPU-hours per user
   for ``plan_pass`` (fair share) and for the previous order (priority, then age).

    .venv/bin/python bench/bench_scheduling_policy.py            # 10,000 and 100,000 pending
    .venv/bin/python bench/bench_scheduling_policy.py --pending 10000 --skip-fairness
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import math
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.core.sched_helpers import SimCluster
from unidesk.core.db.embedded import EmbeddedPostgres
from unidesk.core.db.engine import make_engine, make_sessionmaker
from unidesk.core.db.migrate import upgrade
from unidesk.core.nodes.models import NodeRow
from unidesk.core.scheduler.backfill import (
    Candidate,
    Group,
    Held,
    Running,
    plan_pass,
)
from unidesk.core.scheduler.placement import Demand, NodeCapacity, place
from unidesk.core.scheduler.service import Scheduler, _capacity
from unidesk.core.settings import Settings
from unidesk.core.tasks.models import TaskRow

SHAPES = [
    (cpus, mem, gpus)
    for cpus in (0.5, 1, 2, 4)
    for mem in (256, 512, 1024, 2048, 4096)
    for gpus in (0, 1, 2, 4, 8)
]
A100 = [{"index": i, "model": "NVIDIA A100-SXM4-80GB", "memory_mb": 81920} for i in range(4)]


# ---------------------------------------------------------------- 1. pass time on PostgreSQL


async def old_pass(sessions, batch: int = 500) -> int:  # type: ignore[no-untyped-def]
    """The previous scheduler's read-and-place (top ``batch`` by priority), rolled back."""
    async with sessions() as s:
        pending = (
            await s.scalars(
                select(TaskRow)
                .where(TaskRow.state == "pending")
                .order_by(TaskRow.priority.desc(), TaskRow.seq)
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        ).all()
        nodes = (
            await s.scalars(
                select(NodeRow)
                .where(NodeRow.state == "online")
                .order_by(NodeRow.name)
                .with_for_update(skip_locked=True)
            )
        ).all()
        caps = [_capacity(n) for n in nodes]
        sched = Scheduler(sessions)
        await sched._running(s, caps, [])
        demands = [
            Demand(task_id=t.id, cpus=t.cpus, memory_mb=t.memory_mb, gpus=t.gpus, labels={})
            for t in pending
        ]
        placed, _ = place(demands, caps)
        await s.rollback()
        return len(placed)


async def timed(coro_fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await coro_fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def pass_time(url: str, pending: int, repeat: int) -> None:
    engine = make_engine(url, pool_size=4)
    sessions = make_sessionmaker(engine)
    sim = SimCluster(sessions)
    users = [await sim.user(f"u{pending}-{i}") for i in range(10)]
    await sim.nodes(800, prefix=f"cpu{pending}", cpus=8, memory_mb=32768)
    await sim.nodes(200, prefix=f"gpu{pending}", cpus=8, memory_mb=65536, gpus=A100)
    sched = Scheduler(sessions, Settings())
    await sim.tasks(1000, users[0], cpus=8, memory_mb=1024)  # fill every node's CPUs
    while await sched.run_pass() >= sched.batch:
        pass
    per_shape = pending // len(SHAPES)
    rng = random.Random(1)
    for k, (cpus, mem, gpus) in enumerate(SHAPES):
        await sim.tasks(
            per_shape,
            users[k % 10],
            cpus=cpus,
            memory_mb=mem,
            gpus=gpus,
            priority=rng.randint(0, 5),
        )
    first = (await timed(sched.run_pass, 1))[0]
    async with sessions() as s:  # the statistics autovacuum would have within its next minute
        await s.execute(text("ANALYZE tasks"))
        await s.commit()
    steady = await timed(sched.run_pass, repeat)
    phases = dict(sched.last_timings)
    old = await timed(lambda: old_pass(sessions), repeat)
    new_ms, old_ms = statistics.median(steady), statistics.median(old)
    print(
        f"  {pending:>7} pending, 1000 busy nodes: first pass {first:8.1f} ms (reasons + events), "
        f"steady pass median {new_ms:7.1f} ms; previous scheduler's pass "
        f"{old_ms:7.1f} ms (ratio {new_ms / old_ms:.2f})"
    )
    print(f"    phases of the last steady pass, ms: {phases}")
    await sim.nodes(1, prefix=f"idle{pending}", cpus=8, memory_mb=32768)
    [probe] = await sim.tasks(1, users[1], cpus=1, memory_mb=256, priority=-10)
    old_placed = await old_pass(sessions)
    t0 = time.perf_counter()
    await sched.run_pass()
    ms = (time.perf_counter() - t0) * 1000
    state = (await sim.task(probe)).state
    print(
        f"  probe (1 CPU, lowest priority) behind the backlog, one idle node: new scheduler -> "
        f"{state} ({ms:.1f} ms); previous scheduler placed {old_placed} task(s) in its pass"
    )
    await engine.dispose()


# ---------------------------------------------------------------- 2. fairness over a day


@dataclass
class SimTask:
    id: uuid.UUID
    user: str
    gpus: int
    duration_s: float
    seq: int
    priority: int = 0


def jain(xs: list[float]) -> float:
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs)) if any(xs) else 0.0


def submissions(rng: random.Random) -> list[tuple[float, SimTask]]:
    out: list[tuple[float, SimTask]] = []
    seq = 0

    def add(t: float, user: str, gpus: int, lo: float, hi: float, prio: int = 0) -> None:
        nonlocal seq
        seq += 1
        out.append((t, SimTask(uuid.uuid4(), user, gpus, rng.uniform(lo, hi), seq, prio)))

    for _ in range(5000):  # the sweep, queued first, at a high priority
        add(0.0, "sweeper", 1, 600, 3600, prio=100)
    for h in range(24):
        for _ in range(200):
            add(h * 3600.0 + 1, "hourly", 1, 900, 2700)
        for _ in range(60):
            add(h * 3600.0 + 2, "wide", 4, 1200, 3600)
    for _ in range(2000):
        add(3.0, "pairs", 2, 1800, 5400)
    out.sort(key=lambda a: (a[0], a[1].seq))
    return out


def simulate(policy: str, *, nodes: int = 16, day_s: float = 86400.0) -> dict[str, float]:
    sticky: dict[uuid.UUID, uuid.UUID] = {}
    """GPU-seconds per user over a simulated day; ``policy`` is 'fair' or 'fifo' (previous)."""
    rng = random.Random(7)
    half_life = 24 * 3600.0
    gpu_weight = 10.0
    caps = [
        NodeCapacity(
            node_id=uuid.UUID(int=i + 1),
            name=f"g{i:02d}",
            labels={},
            cpus=64,
            memory_mb=512_000,
            gpu_indices=[0, 1, 2, 3],
            free_cpus=64,
            free_memory_mb=512_000,
            free_gpu_indices=[0, 1, 2, 3],
            runtimes=["docker"],
            gpu_info=dict.fromkeys(range(4), ("A100", 81920)),
        )
        for i in range(nodes)
    ]
    by_id = {c.node_id: c for c in caps}
    arrivals = submissions(rng)
    pending: dict[str, list[SimTask]] = {}
    running: dict[uuid.UUID, tuple[SimTask, uuid.UUID, list[int], float]] = {}
    ends: list[tuple[float, uuid.UUID]] = []
    usage: dict[str, float] = {}
    gpu_s: dict[str, float] = {}
    now = 0.0
    ai = 0
    while now < day_s:
        nxt = min(
            arrivals[ai][0] if ai < len(arrivals) else math.inf, ends[0][0] if ends else math.inf
        )
        nxt = min(nxt, day_s)
        dt = nxt - now
        decay = 2 ** (-dt / half_life)
        for t, _, _, _ in running.values():
            gpu_s[t.user] = gpu_s.get(t.user, 0.0) + t.gpus * dt
        for u in list(usage):
            usage[u] *= decay
        for t, _, _, _ in running.values():
            usage[t.user] = usage.get(t.user, 0.0) + (
                1 + t.gpus * gpu_weight
            ) * half_life / math.log(2) * (1 - decay)
        now = nxt
        while ai < len(arrivals) and arrivals[ai][0] <= now:
            t = arrivals[ai][1]
            pending.setdefault(t.user, []).append(t)
            ai += 1
        while ends and ends[0][0] <= now:
            _, tid = heapq.heappop(ends)
            t, node_id, gpus, _ = running.pop(tid)
            n = by_id[node_id]
            n.free_cpus += 1
            n.free_memory_mb += 1024
            n.free_gpu_indices = sorted([*n.free_gpu_indices, *gpus])
        placed = _sim_pass(
            policy, pending, caps, running, usage, now, half_life, gpu_weight, sticky
        )
        for t, node_id, gpus in placed:
            running[t.id] = (t, node_id, gpus, now)
            heapq.heappush(ends, (now + t.duration_s, t.id))
            pending[t.user].remove(t)
    return gpu_s


def _sim_pass(policy, pending, caps, running, usage, now, half_life, gpu_weight, sticky):  # type: ignore[no-untyped-def]
    free_slots = sum(len(c.free_gpu_indices) for c in caps)
    if free_slots == 0:
        return []
    demand = {
        t.id: Demand(task_id=t.id, cpus=1, memory_mb=1024, gpus=t.gpus, labels={})
        for ts in pending.values()
        for t in ts
    }
    tasks = {t.id: t for ts in pending.values() for t in ts}
    if policy == "fifo":
        order = heapq.nsmallest(500, tasks.values(), key=lambda t: (-t.priority, t.seq))
        placed, _ = place([demand[t.id] for t in order], caps)
        return [(tasks[p.task_id], p.node_id, p.gpu_indices) for p in placed]
    groups = []
    for user, ts in pending.items():
        by_shape: dict[int, list[SimTask]] = {}
        for t in ts:
            by_shape.setdefault(t.gpus, []).append(t)
        for gpus, shape_ts in by_shape.items():
            best = shape_ts[:free_slots]  # one priority per user: arrival order is rank order
            groups.append(
                Group(
                    owner=uuid.uuid5(uuid.NAMESPACE_DNS, user),
                    demand=Demand(
                        task_id=uuid.UUID(int=0), cpus=1, memory_mb=1024, gpus=gpus, labels={}
                    ),
                    count=len(shape_ts),
                    candidates=[Candidate(t.id, t.priority, t.seq, 7200.0) for t in best],
                )
            )
    shares = {}
    for user, u in usage.items():
        shares[uuid.uuid5(uuid.NAMESPACE_DNS, user)] = u
    for t, _, _, started in running.values():
        left = max(0.0, 7200.0 - (now - started))
        key = uuid.uuid5(uuid.NAMESPACE_DNS, t.user)
        shares[key] = shares.get(key, 0.0) + (1 + t.gpus * gpu_weight) * min(half_life, left)
    plan = plan_pass(
        groups,
        caps,
        running=[
            Running(n, 1, 1024, g, max(0.0, 7200.0 - (now - s))) for _, n, g, s in running.values()
        ],
        shares=shares,
        quotas={},
        held={k: Held() for k in shares},
        gpu_weight=gpu_weight,
        charge_horizon_s=half_life,
        reserved=sticky,
    )
    sticky.clear()
    if plan.reservation is not None:
        sticky[plan.reservation.task_id] = plan.reservation.node_id
    return [(tasks[p.task_id], p.node_id, p.gpu_indices) for p in plan.placements]


def fairness() -> None:
    print("\n== fairness: a simulated day, 16 nodes x 4 GPUs, 4 always-backlogged users")
    for policy, label in (
        ("fair", "fair share (plan_pass)"),
        ("fifo", "previous: priority, then age"),
    ):
        t0 = time.perf_counter()
        gpu_s = simulate(policy)
        hours = {u: round(s / 3600, 1) for u, s in sorted(gpu_s.items())}
        for u in ("sweeper", "hourly", "wide", "pairs"):
            hours.setdefault(u, 0.0)
        print(
            f"  {label:<30} Jain {jain(list(hours.values())):.3f}  GPU-hours {hours}  "
            f"({time.perf_counter() - t0:.1f} s)"
        )


async def main(args: argparse.Namespace) -> None:
    if not args.skip_pass_time:
        print("== pass time (real Scheduler on embedded PostgreSQL)")
        for n in args.pending:
            with tempfile.TemporaryDirectory(prefix="bench-sched-") as tmp:
                pg = EmbeddedPostgres(Path(tmp) / "pg")
                url = pg.start()
                try:
                    await asyncio.to_thread(upgrade, url)
                    await pass_time(url, n, args.repeat)
                finally:
                    pg.stop()
    if not args.skip_fairness:
        fairness()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pending", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--skip-pass-time", action="store_true")
    p.add_argument("--skip-fairness", action="store_true")
    asyncio.run(main(p.parse_args()))
