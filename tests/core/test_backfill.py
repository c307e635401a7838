"""The pure pass planner: fair-share order, reservations (several, sticky, backfill that
leaves room), quotas and node avoidance, without a database."""

from __future__ import annotations

import uuid

from tests.core.test_placement import node
from unidesk.core.scheduler.backfill import (
    Candidate,
    Group,
    Held,
    Quota,
    Running,
    node_classes,
    plan_pass,
)
from unidesk.core.scheduler.placement import Demand

ALICE, BOB, CAROL = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
_seq = iter(range(1, 10_000))


def group(owner: uuid.UUID, n: int = 1, *, estimate: float = 3600, priority: int = 0, **shape):  # type: ignore[no-untyped-def]
    d = Demand(
        task_id=uuid.UUID(int=0),
        cpus=shape.pop("cpus", 1),
        memory_mb=shape.pop("mem", 256),
        gpus=shape.pop("gpus", 0),
        labels={},
        **shape,
    )
    cands = [Candidate(uuid.uuid4(), priority, next(_seq), estimate) for _ in range(n)]
    return Group(owner=owner, demand=d, count=n, candidates=cands)


def plan(groups, nodes, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("running", [])
    kw.setdefault("shares", {})
    kw.setdefault("quotas", {})
    kw.setdefault("held", {})
    return plan_pass(groups, nodes, **kw)


def test_lower_share_goes_first_and_a_pass_interleaves_owners() -> None:
    a, b = group(ALICE, 4), group(BOB, 4)
    p = plan([a, b], [node("n", cpus=4)], shares={ALICE: 0.0, BOB: 1.0})
    placed = [x.task_id for x in p.placements]
    assert placed[0] == a.candidates[0].task_id and placed[1] == b.candidates[0].task_id
    assert len(placed) == 4 and {x in placed for x in (a.candidates[1].task_id,)} == {True}


def test_every_blocked_group_gets_its_own_reservation_on_its_own_node() -> None:
    g4 = [0, 1, 2, 3]
    nodes = [node(f"g{i}", gpus=g4, free_gpus=[3]) for i in range(3)]
    running = [Running(n.node_id, 1, 256, [0, 1, 2], 100.0 * (i + 1)) for i, n in enumerate(nodes)]
    pairs, wide = group(BOB, gpus=2), group(CAROL, gpus=4)
    singles = group(ALICE, 3, gpus=1)
    p = plan([pairs, wide, singles], nodes, running=running, shares={ALICE: 9.0})
    assert {r.task_id for r in p.reservations} == {
        pairs.candidates[0].task_id,
        wide.candidates[0].task_id,
    }
    assert len({r.node_id for r in p.reservations}) == 2
    # Alice's one-hour tasks take the unreserved node's free GPU, and the pair's node's (the
    # pair still has two GPUs when the running task there ends); never the 4-GPU task's node.
    wide_node = next(r.node_id for r in p.reservations if r.demand.gpus == 4)
    pair_node = next(r.node_id for r in p.reservations if r.demand.gpus == 2)
    assert len(p.placements) == 2 and wide_node not in {x.node_id for x in p.placements}
    assert pair_node in {x.node_id for x in p.placements}
    assert p.group_verdicts[2].code == "held_for_reservation"
    assert p.task_verdicts[pairs.candidates[0].task_id].detail["reserved_node"]


def test_backfill_may_use_a_reserved_node_when_it_leaves_room() -> None:
    n = node("big", cpus=8, gpus=[0, 1], free_cpus=6, free_gpus=[1])
    running = [Running(n.node_id, 2, 256, [0], 600.0)]
    gpu_task, cpu_task = group(ALICE, gpus=2, priority=5), group(ALICE, cpus=2, estimate=7200)
    p = plan([gpu_task, cpu_task], [n], running=running)
    assert p.reservation is not None and p.reservation.node_id == n.node_id
    assert [x.task_id for x in p.placements] == [cpu_task.candidates[0].task_id]


def test_a_reservation_stays_on_the_node_it_held() -> None:
    nodes = [node("a", gpus=[0, 1], free_gpus=[]), node("b", gpus=[0, 1], free_gpus=[])]
    running = [
        Running(nodes[0].node_id, 1, 256, [0, 1], 500.0),
        Running(nodes[1].node_id, 1, 256, [0, 1], 100.0),
    ]
    g = group(ALICE, gpus=2)
    assert plan([g], nodes, running=running).reservation.node_name == "b"  # type: ignore[union-attr]
    sticky = {g.candidates[0].task_id: nodes[0].node_id}
    again = plan([g], nodes, running=running, reserved=sticky)
    assert again.reservation.node_name == "a"  # type: ignore[union-attr]


def test_quota_stops_an_owner_mid_pass() -> None:
    g = group(ALICE, 3, gpus=1)
    p = plan(
        [g],
        [node("n", gpus=[0, 1, 2, 3])],
        quotas={("user", ALICE): [Quota(max_gpus=2)]},
        held={(("user", ALICE), ""): Held(gpus=1)},
    )
    assert len(p.placements) == 1
    assert p.group_verdicts[0].code == "over_quota"


def test_avoided_node_is_used_only_when_no_other_could_run_it() -> None:
    bad, good = node("bad", cpus=2), node("good", cpus=2, free_cpus=0)
    g = group(ALICE, avoid_nodes=frozenset({bad.node_id}))
    p = plan([g], [bad, good])
    assert p.placements == [] and p.group_verdicts[0].detail == {"avoiding": ["bad"]}
    only = group(ALICE, avoid_nodes=frozenset({bad.node_id}))
    p = plan([only], [bad])
    assert [x.node_name for x in p.placements] == ["bad"]


def test_node_classes_collapse_alike_nodes() -> None:
    nodes = [node(f"n{i}") for i in range(50)] + [node("big", cpus=64)]
    assert len(node_classes(nodes)) == 2
