"""The host.ssh maintenance API (admin only, validated, audited) and the scheduler's routing rules
for it."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from unidesk.core.db.engine import libpq_url
from unidesk.core.scheduler.placement import (
    Demand,
    NodeCapacity,
    never_fits_reason,
    place,
    route_refusal,
)

A, B = uuid.uuid4(), uuid.uuid4()


def node(
    node_id: uuid.UUID, runtimes: list[str], *, accepts_work: bool = True, cpus: float = 4
) -> NodeCapacity:
    return NodeCapacity(
        node_id=node_id,
        name=str(node_id)[:4],
        labels={},
        cpus=cpus,
        memory_mb=4096,
        gpu_indices=[],
        free_cpus=cpus,
        free_memory_mb=4096,
        free_gpu_indices=[],
        runtimes=runtimes,
        accepts_work=accepts_work,
    )


def demand(**kw: Any) -> Demand:
    base: dict[str, Any] = {
        "task_id": uuid.uuid4(),
        "cpus": 1,
        "memory_mb": 64,
        "gpus": 0,
        "labels": {},
    }
    base.update(kw)
    return Demand(**base)


def ssh(op: str = "probe", pinned: uuid.UUID | None = A) -> Demand:
    return demand(
        cpus=0, memory_mb=0, runtime="host.ssh", kind="host.ssh", op=op, pinned_node=pinned
    )


def test_host_ssh_goes_only_to_its_pinned_node_even_unhealthy_or_full() -> None:
    nodes = [
        node(A, ["docker", "host.ssh"], accepts_work=False, cpus=0.0),
        node(B, ["docker", "host.ssh"]),
    ]
    placed, left = place([ssh("exec")], nodes)
    assert [p.node_id for p in placed] == [A] and not left


@pytest.mark.parametrize(
    "bad",
    [
        demand(runtime="host.ssh"),  # an ordinary task asking for host.ssh
        demand(
            runtime="host.ssh", kind="host.ssh", op="deploy", pinned_node=A
        ),  # not a bounded operation
        demand(runtime="host.ssh", kind="host.ssh", op="exec"),  # not pinned
        demand(kind="host.ssh", op="exec", pinned_node=A),  # host.ssh kind in the docker runtime
    ],
)
def test_anything_else_is_never_routed_through_or_around_host_ssh(bad: Demand) -> None:
    nodes = [node(A, ["docker", "host.ssh"]), node(B, ["host.ssh"])]
    placed, left = place([bad], nodes)
    assert not placed and left == [bad]
    assert "host.ssh runtime carries only probe/exec" in (never_fits_reason(bad, nodes) or "")
    assert route_refusal(bad)


def test_ordinary_tasks_skip_nodes_that_do_not_accept_work() -> None:
    placed, left = place([demand()], [node(A, ["docker", "host.ssh"], accepts_work=False)])
    assert not placed
    assert (
        never_fits_reason(left[0], [node(A, ["docker"], accepts_work=False)])
        == "no online node accepts work"
    )
    assert (
        never_fits_reason(ssh(pinned=B), [node(A, ["host.ssh"])])
        == "the node this task is pinned to is not online"
    )
    assert (
        never_fits_reason(ssh(), [node(A, ["docker"])])
        == "the pinned node does not offer the host.ssh runtime"
    )


def _add_node(database_url: str, runtimes: list[str], state: str = "online") -> uuid.UUID:
    node_id = uuid.uuid4()
    with psycopg.connect(libpq_url(database_url)) as c:  # one transaction: the node and its event
        c.execute(
            "INSERT INTO events (kind, subject_type, subject_id, actor, payload) VALUES "
            "('node.registered', 'node', %s, 'test', '{}')",
            (str(node_id),),
        )
        c.execute(
            "INSERT INTO nodes (id, name, state, draining, hostname, os, agent_version, "
            "protocol_version, cpus, memory_mb, gpus,"
            " labels, runtimes, last_usage) VALUES (%s, %s, %s, false, 'h', 'Linux', '0', 1, 2, "
            "1024, '[]', '{}', %s, '{}')",
            (node_id, f"n-{node_id.hex[:6]}", state, psycopg.types.json.Jsonb(runtimes)),
        )
    return node_id


def _counts(database_url: str) -> tuple[int, int]:
    with psycopg.connect(libpq_url(database_url)) as c:
        return (
            c.execute("SELECT count(*) FROM tasks").fetchone()[0],
            c.execute("SELECT count(*) FROM events").fetchone()[0],
        )  # type: ignore[index]


async def test_maintenance_api(
    client: AsyncTestClient,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    database_url: str,
) -> None:
    ssh_node = _add_node(database_url, ["docker", "host.ssh"])
    plain = _add_node(database_url, ["docker"])
    gone = _add_node(database_url, ["docker", "host.ssh"], state="offline")
    before = _counts(database_url)
    url = f"/api/nodes/{ssh_node}/maintenance"
    for headers, body, status in [
        (member_headers, {"op": "probe"}, 403),
        ({}, {"op": "probe"}, 401),
        (admin_headers, {"op": "exec"}, 400),
        (admin_headers, {"op": "exec", "command": "   "}, 400),
        (admin_headers, {"op": "probe", "command": "id"}, 400),
        (admin_headers, {"op": "shell", "command": "id"}, 400),
        (admin_headers, {"op": "exec", "command": "id", "timeout_s": 0}, 400),
        (admin_headers, {"op": "exec", "command": "id", "timeout_s": 99999}, 400),
        (admin_headers, {"op": "exec", "command": "a\x00b"}, 400),
        (admin_headers, {"op": "probe", "extra": 1}, 400),
    ]:
        r = await client.post(url, json=body, headers=headers)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    r = await client.post(
        f"/api/nodes/{plain}/maintenance", json={"op": "probe"}, headers=admin_headers
    )
    assert r.status_code == 409 and "does not offer the host.ssh runtime" in r.json()["detail"]
    r = await client.post(
        f"/api/nodes/{gone}/maintenance", json={"op": "probe"}, headers=admin_headers
    )
    assert r.status_code == 409 and "offline" in r.json()["detail"]
    r = await client.post(
        f"/api/nodes/{uuid.uuid4()}/maintenance", json={"op": "probe"}, headers=admin_headers
    )
    assert r.status_code == 404
    assert _counts(database_url) == before  # refusals change nothing

    r = await client.post(
        url, json={"op": "exec", "command": "df -h", "timeout_s": 30}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["extra"] == {
        "kind": "host.ssh",
        "runtime": "host.ssh",
        "node_id": str(ssh_node),
        "params": {"op": "exec", "command": "df -h", "timeout_s": "30"},
    }
    assert task["max_attempts"] == 1 and task["timeout_s"] == 30 and task["state"] == "pending"
    r = await client.get(
        "/api/events", params={"kind": "node.maintenance_requested"}, headers=admin_headers
    )
    [audit] = r.json()["items"]
    assert (
        audit["subject_id"] == str(ssh_node)
        and audit["payload"]["command"] == "df -h"
        and audit["payload"]["task_id"] == task["id"]
    )
    r = await client.post(f"/api/tasks/{task['id']}/retry", headers=admin_headers)
    assert r.status_code == 400 and "never retried" in r.json()["detail"]
