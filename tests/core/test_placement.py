"""The pure placement function: order, labels, resources, GPU indices, backfill, and the
reasons a task could never fit."""

from __future__ import annotations

import uuid

from unidesk.core.scheduler.placement import Demand, NodeCapacity, never_fits_reason, place


def node(
    name: str,
    *,
    cpus: float = 4,
    mem: int = 8192,
    gpus: list[int] | None = None,
    labels: dict[str, str] | None = None,
    free_cpus: float | None = None,
    free_mem: int | None = None,
    free_gpus: list[int] | None = None,
    runtimes: list[str] | None = None,
) -> NodeCapacity:
    gpus = gpus or []
    return NodeCapacity(
        node_id=uuid.uuid5(uuid.NAMESPACE_DNS, name),
        name=name,
        labels=labels or {},
        cpus=cpus,
        memory_mb=mem,
        gpu_indices=gpus,
        free_cpus=cpus if free_cpus is None else free_cpus,
        free_memory_mb=mem if free_mem is None else free_mem,
        free_gpu_indices=list(gpus if free_gpus is None else free_gpus),
        runtimes=runtimes or ["docker"],
    )


def demand(
    cpus: float = 1, mem: int = 512, gpus: int = 0, labels: dict[str, str] | None = None, **kw
) -> Demand:  # type: ignore[no-untyped-def]
    return Demand(
        task_id=uuid.uuid4(), cpus=cpus, memory_mb=mem, gpus=gpus, labels=labels or {}, **kw
    )


def where(placed) -> dict[uuid.UUID, str]:  # type: ignore[no-untyped-def]
    return {p.task_id: p.node_name for p in placed}


def test_earlier_demands_win_scarce_capacity():
    # The caller orders demands by priority then age; the first ones get the only slot.
    first, second = demand(cpus=2), demand(cpus=2)
    placed, left = place([first, second], [node("n1", cpus=2)])
    assert where(placed) == {first.task_id: "n1"} and left == [second]


def test_capacity_is_consumed_as_tasks_are_placed():
    ds = [demand(cpus=1) for _ in range(5)]
    placed, left = place(ds, [node("n1", cpus=2), node("n2", cpus=2)])
    assert len(placed) == 4 and left == [ds[4]]
    assert sorted(where(placed).values()) == [
        "n1",
        "n1",
        "n2",
        "n2",
    ]  # spread across nodes, none over capacity


def test_memory_limits_too():
    ds = [demand(cpus=0.5, mem=3000) for _ in range(3)]
    placed, left = place(ds, [node("n1", cpus=8, mem=8000)])
    assert len(placed) == 2 and len(left) == 1


def test_labels_must_all_match():
    a, b, both, none = (
        demand(labels={"gpu": "a"}),
        demand(labels={"gpu": "b"}),
        demand(labels={"gpu": "a", "zone": "x"}),
        demand(labels={"gpu": "c"}),
    )
    nodes = [node("na", labels={"gpu": "a", "zone": "x"}), node("nb", labels={"gpu": "b"})]
    placed, left = place([a, b, both, none], nodes)
    assert where(placed) == {a.task_id: "na", b.task_id: "nb", both.task_id: "na"}
    assert left == [none]


def test_gpu_indices_are_reserved_lowest_free_first():
    n = node("g", gpus=[0, 1, 2, 3], free_gpus=[1, 3, 2])  # GPU 0 is held by a running attempt
    one, two, three = demand(gpus=1), demand(gpus=2), demand(gpus=1)
    placed, left = place([one, two, three], [n])
    got = {p.task_id: p.gpu_indices for p in placed}
    assert got == {one.task_id: [1], two.task_id: [2, 3]} and left == [three]


def test_backfill_runs_smaller_tasks_around_one_that_does_not_fit_now():
    big, small = demand(cpus=4), demand(cpus=1)
    placed, left = place([big, small], [node("n1", cpus=4, free_cpus=2)])
    assert where(placed) == {small.task_id: "n1"} and left == [big]


def test_pinned_node_runtime_and_draining():
    n1, n2 = node("n1"), node("n2", runtimes=["docker", "k3s"])
    drained = node("n3", cpus=64)
    drained.accepts_work = False
    pinned, k3s, big = demand(pinned_node=n1.node_id), demand(runtime="k3s"), demand(cpus=32)
    placed, left = place([pinned, k3s, big], [n1, n2, drained])
    assert where(placed) == {pinned.task_id: "n1", k3s.task_id: "n2"} and left == [big]


def test_host_ssh_carries_only_pinned_maintenance():
    ssh_node = node("ops", runtimes=["docker", "host.ssh"])
    ssh_node.accepts_work = False  # maintenance reaches a draining node too
    op = demand(runtime="host.ssh", kind="host.ssh", op="probe", pinned_node=ssh_node.node_id)
    container_on_ssh = demand(runtime="host.ssh")
    placed, left = place([op, container_on_ssh], [ssh_node])
    assert where(placed) == {op.task_id: "ops"} and left == [container_on_ssh]
    assert "only probe/exec maintenance operations" in (
        never_fits_reason(container_on_ssh, [ssh_node]) or ""
    )


def test_never_fits_reasons():
    nodes = [
        node("small", cpus=2, mem=4096, gpus=[0], labels={"gpu": "a"}),
        node("wide", cpus=8, mem=1024, labels={"gpu": "a"}),
    ]
    assert never_fits_reason(demand(), []) == "no online node accepts work"
    assert (
        never_fits_reason(demand(labels={"gpu": "z", "a": "1"}), nodes)
        == "no online node has labels a=1, gpu=z"
    )
    assert (
        never_fits_reason(demand(cpus=64), nodes)
        == "needs 64 CPUs; the largest matching node has 8"
    )
    assert (
        never_fits_reason(demand(mem=100_000), nodes)
        == "needs 100000 MB memory; the largest matching node has 4096 MB"
    )
    assert (
        never_fits_reason(demand(gpus=2), nodes) == "needs 2 GPUs; the largest matching node has 1"
    )
    assert (
        never_fits_reason(demand(cpus=4, mem=4096), nodes)
        == "no single matching node has enough CPUs, memory and GPUs together"
    )
    assert (
        never_fits_reason(demand(runtime="k3s"), nodes) == "no online node offers the k3s runtime"
    )
    drained = node("drained", cpus=128)
    drained.accepts_work = False
    assert never_fits_reason(demand(cpus=100), [drained]) == "no online node accepts work"
    assert (
        never_fits_reason(demand(pinned_node=uuid.uuid4()), nodes)
        == "the node this task is pinned to is not online"
    )
    # Busy is not "never": a task that fits an idle node has no reason, even when nothing is free
    # now.
    assert never_fits_reason(demand(cpus=2, gpus=1), nodes) is None


def test_host_mounts_only_on_nodes_that_declare_them():
    import msgspec

    plain = node("plain", cpus=16)
    wsl = msgspec.structs.replace(node("wsl"), host_mounts=frozenset({"home", "data"}))
    home = demand(host_mounts=frozenset({"home"}))
    both = demand(host_mounts=frozenset({"home", "data"}))
    other = demand(host_mounts=frozenset({"scratch"}))
    placed, left = place([home, both, other], [plain, wsl])
    assert where(placed) == {home.task_id: "wsl", both.task_id: "wsl"}
    assert left == [other]
    assert never_fits_reason(other, [plain, wsl]) == (
        "no online node declares the host mounts scratch"
    )
    assert never_fits_reason(home, [plain, wsl]) is None


def test_fitting_nodes_equals_fits_now_as_capacity_is_consumed() -> None:
    """The per-pass cache of suited nodes changes no answer: random nodes and demands (labels,
    runtimes, pins, mounts, draining, GPUs of models), capacity taken between calls."""
    import random

    from unidesk.core.scheduler.placement import SuitCache, fits_now, fitting_nodes

    rng = random.Random(7)
    nodes = []
    for i in range(60):
        n = node(
            f"r{i}",
            cpus=rng.choice([1, 2, 4]),
            gpus=rng.choice([[], [0], [0, 1]]),
            labels=rng.choice([{}, {"pool": "a"}, {"pool": "b", "zone": "x"}]),
            runtimes=rng.choice([[], ["docker"], ["docker", "host.ssh"], ["podman"]]),
        )
        n.accepts_work = rng.random() > 0.1
        n.host_mounts = frozenset(rng.choice([[], ["data"], ["data", "scratch"]]))
        n.gpu_info = {g: (rng.choice(["A100", "T4"]), 40000) for g in n.gpu_indices}
        nodes.append(n)
    cache: SuitCache = {}
    checked = 0
    for _ in range(400):
        d = Demand(
            task_id=uuid.uuid4(),
            cpus=rng.choice([0.5, 1, 2]),
            memory_mb=rng.choice([256, 4096]),
            gpus=rng.choice([0, 0, 1]),
            labels=rng.choice([{}, {"pool": "a"}, {"pool": "b"}]),
            runtime=rng.choice(["docker", "docker", "podman"]),
            pinned_node=rng.choice([None, None, nodes[3].node_id]),
            gpu_model=rng.choice([None, "a100"]),
            host_mounts=frozenset(rng.choice([[], ["data"]])),
        )
        want = [n for n in nodes if fits_now(d, n)]
        assert fitting_nodes(d, nodes, cache) == want
        checked += bool(want)
        if want:  # consume some capacity, as a pass does
            n = rng.choice(want)
            n.free_cpus -= d.cpus
            n.free_memory_mb -= d.memory_mb
            n.free_gpu_indices = n.free_gpu_indices[d.gpus :]
    assert checked > 50  # enough demands fitted for the comparison to mean something
