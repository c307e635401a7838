"""Nodes API: list/get, drain and undrain (admin, each an event), delete only offline idle nodes."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import psycopg
from litestar.testing import AsyncTestClient

from tests.core.conftest import task_body
from unidesk.core.db.engine import libpq_url


def add_node(database_url: str, name: str, state: str = "offline") -> str:
    """A node row written the way the registry writes one: with its event in the same
    transaction."""
    node_id = str(uuid.uuid4())
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute(
            "INSERT INTO nodes (id, name, state, draining, hostname, os, agent_version, "
            "protocol_version, cpus, memory_mb,"
            " gpus, labels, runtimes, last_usage) VALUES (%s, %s, %s, false, 'h', 'linux', "
            "'0.1.0', 1, 4, 8192, %s, '{}',"
            " '[\"docker\"]', '{}')",
            (
                node_id,
                name,
                state,
                json.dumps([{"index": 0, "model": "A100", "memory_mb": 40960, "uuid": "GPU-1"}]),
            ),
        )
        conn.execute(
            "INSERT INTO events (kind, subject_type, subject_id, actor) VALUES "
            "('node.registered', 'node', %s, 'test')",
            (node_id,),
        )
        conn.execute("SELECT pg_notify('unidesk_events', '0')")  # as the event writer does
    return node_id


async def test_list_get_drain_undrain_delete(
    client: AsyncTestClient,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    database_url: str,
) -> None:
    assert (await client.get("/api/nodes", headers=member_headers)).json() == {"items": []}
    node_id = add_node(database_url, "gpu-box")
    # Written behind this server's back (as another instance would): list answers kept in
    # memory are dropped when its NOTIFY arrives, within milliseconds.
    for _ in range(100):
        listed = (await client.get("/api/nodes", headers=member_headers)).json()["items"]
        if listed:
            break
        await asyncio.sleep(0.02)
    assert [n["name"] for n in listed] == ["gpu-box"]
    node = (await client.get(f"/api/nodes/{node_id}", headers=member_headers)).json()
    assert node["state"] == "offline" and node["draining"] is False
    assert (
        node["free"] == {"cpus": 4.0, "memory_mb": 8192, "gpus": 1}
        and node["running_attempts"] == []
    )

    r = await client.post(f"/api/nodes/{node_id}/drain", headers=admin_headers)
    assert r.status_code == 200 and r.json()["draining"] is True
    again = await client.post(f"/api/nodes/{node_id}/drain", headers=admin_headers)
    assert again.status_code == 200, "draining a draining node is a no-op"
    assert (await client.post(f"/api/nodes/{node_id}/undrain", headers=admin_headers)).json()[
        "draining"
    ] is False
    kinds = [
        e["kind"]
        for e in (
            await client.get("/api/events", params={"subject_id": node_id}, headers=admin_headers)
        ).json()["items"]
    ]
    assert kinds == ["node.registered", "node.draining", "node.undrained"]

    assert (await client.delete(f"/api/nodes/{node_id}", headers=admin_headers)).status_code == 204
    assert (await client.get(f"/api/nodes/{node_id}", headers=admin_headers)).status_code == 404
    kinds = [
        e["kind"]
        for e in (
            await client.get("/api/events", params={"subject_id": node_id}, headers=admin_headers)
        ).json()["items"]
    ]
    assert kinds[-1] == "node.deleted", "the history outlives the node"


async def test_online_node_cannot_be_deleted(
    client: AsyncTestClient, admin_headers: dict[str, str], database_url: str, counts: Any
) -> None:
    node_id = add_node(database_url, "busy", state="online")
    before = counts()
    r = await client.delete(f"/api/nodes/{node_id}", headers=admin_headers)
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert counts() == before


async def test_unknown_node_is_404(
    client: AsyncTestClient, admin_headers: dict[str, str], counts: Any
) -> None:
    before = counts()
    for method, suffix in (("GET", ""), ("POST", "/drain"), ("POST", "/undrain"), ("DELETE", "")):
        r = await client.request(
            method, f"/api/nodes/{uuid.uuid4()}{suffix}", headers=admin_headers
        )
        assert r.status_code == 404, (method, suffix, r.text)
    assert counts() == before


async def test_list_and_get_count_a_running_attempt_against_the_node(
    client: AsyncTestClient, admin_headers: dict[str, str], database_url: str
) -> None:
    node_id = add_node(database_url, "busy", state="online")
    body = task_body(resources={"cpus": 1.5, "memory_mb": 1024, "gpus": 1})
    task = (await client.post("/api/tasks", json=body, headers=admin_headers)).json()
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute(
            "INSERT INTO task_attempts (task_id, attempt_no, node_id, node_name, state,"
            " gpu_indices, log_bytes, log_truncated) VALUES (%s, 1, %s, 'busy', 'running',"
            " '[0]', 0, false)",
            (task["id"], node_id),
        )
        conn.execute(
            "UPDATE tasks SET state = 'running', attempt_count = 1 WHERE id = %s", (task["id"],)
        )
        conn.execute(  # the rule: no state change without its event
            "INSERT INTO events (kind, subject_type, subject_id, actor)"
            " VALUES ('task.started', 'task', %s, 'test')",
            (task["id"],),
        )
        conn.execute("SELECT pg_notify('unidesk_events', '0')")
    want_free = {"cpus": 2.5, "memory_mb": 7168, "gpus": 0}
    want_running = [{"task_id": task["id"], "attempt_no": 1, "state": "running"}]
    got = (await client.get(f"/api/nodes/{node_id}", headers=admin_headers)).json()
    assert got["free"] == want_free and got["running_attempts"] == want_running
    for _ in range(100):  # the list may be kept until the NOTIFY arrives
        listed = (await client.get("/api/nodes", headers=admin_headers)).json()["items"]
        if listed and listed[0]["running_attempts"]:
            break
        await asyncio.sleep(0.02)
    assert listed == [got]
