"""Scheduling policy through the API: pending reasons and ranks on tasks, the priority cap,
GPU requests (pattern, memory, shorthand), admin quotas, and usage accounting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.core.conftest import task_body
from tests.core.sched_helpers import SimCluster
from unidesk.core.db.engine import make_engine, make_sessionmaker
from unidesk.core.scheduler.service import Scheduler
from unidesk.core.settings import Settings

PROBLEM = "application/problem+json"


@pytest.fixture
async def sim(settings: Settings) -> AsyncIterator[SimCluster]:
    engine = make_engine(settings.database_url or "", pool_size=2)
    yield SimCluster(make_sessionmaker(engine))
    await engine.dispose()


async def submit(client: AsyncTestClient, headers: dict[str, str], **kw: Any) -> dict[str, Any]:
    r = await client.post("/api/tasks", json=task_body(**kw), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def test_pending_reason_and_ranked_ahead_in_the_task_api(
    client: AsyncTestClient, member_headers: dict[str, str], sim: SimCluster, settings: Settings
) -> None:
    await sim.nodes(1, cpus=1)
    tasks = [await submit(client, member_headers, name=f"q{i}") for i in range(3)]
    never = await submit(client, member_headers, resources={"cpus": 64, "memory_mb": 64})
    assert tasks[0]["pending_reason"] is None  # not considered by a pass yet
    assert await Scheduler(sim.sessions, settings).run_pass() == 1
    second = (await client.get(f"/api/tasks/{tasks[2]['id']}", headers=member_headers)).json()
    assert second["state"] == "pending"
    assert second["pending_reason"] == "waiting_for_resources" and second["ranked_ahead"] == 1
    listed = (await client.get("/api/tasks?state=pending", headers=member_headers)).json()
    by_id = {t["id"]: t for t in listed["items"]}
    assert by_id[tasks[1]["id"]]["ranked_ahead"] == 0
    assert by_id[never["id"]]["pending_reason"] == "no_node_fits"
    assert by_id[never["id"]]["ranked_ahead"] is None
    assert "needs 64 CPUs" in by_id[never["id"]]["pending_detail"]["message"]
    running = (await client.get(f"/api/tasks/{tasks[0]['id']}", headers=member_headers)).json()
    assert running["state"] == "assigned" and running["pending_reason"] is None


async def test_priority_above_the_cap_needs_an_admin(
    client: AsyncTestClient,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    counts: Any,
) -> None:
    before = counts()
    r = await client.post("/api/tasks", json=task_body(priority=101), headers=member_headers)
    assert r.status_code == 403 and r.headers["content-type"].startswith(PROBLEM), r.text
    assert "needs an admin" in r.json()["detail"]
    assert counts() == before
    assert (await submit(client, member_headers, priority=100))["priority"] == 100
    assert (await submit(client, admin_headers, priority=900))["priority"] == 900


async def test_gpu_requests_and_the_shorthand(
    client: AsyncTestClient, member_headers: dict[str, str], counts: Any
) -> None:
    t = await submit(
        client,
        member_headers,
        resources={"gpus": 1, "gpu_model": "A100*", "gpu_memory_mb": 40000},
        expected_duration_s=60,
    )
    assert t["resources"]["gpu_model"] == "A100*" and t["resources"]["gpu_memory_mb"] == 40000
    assert t["expected_duration_s"] == 60
    s = await submit(client, member_headers, resources={"gpu": "A100:80GB:2"})
    assert (s["resources"]["gpus"], s["resources"]["gpu_model"]) == (2, "A100")
    assert s["resources"]["gpu_memory_mb"] == 81920 and "gpu" not in s["resources"]
    before = counts()
    for bad in (
        {"resources": {"gpu": "A100:lots"}},
        {"resources": {"gpu": "A100:2", "gpus": 3}},
        {"resources": {"gpu_model": "A100*"}},
        {"timeout_s": 10, "expected_duration_s": 20},
    ):
        r = await client.post("/api/tasks", json=task_body(**bad), headers=member_headers)
        assert r.status_code == 400 and r.headers["content-type"].startswith(PROBLEM), (bad, r.text)
    assert counts() == before


async def test_admin_sets_quotas_and_members_read_usage(
    client: AsyncTestClient,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    sim: SimCluster,
    settings: Settings,
) -> None:
    me = (await client.get("/api/auth/me", headers=member_headers)).json()
    body = {"max_gpus": 1, "max_cpus": 4, "max_memory_mb": 8192}
    r = await client.put(f"/api/quotas/{me['id']}", json=body, headers=member_headers)
    assert r.status_code == 403, r.text
    r = await client.put(f"/api/quotas/{me['id']}", json={"max_gpus": -1}, headers=admin_headers)
    assert r.status_code == 400, r.text
    huge = {"max_memory_mb": 1 << 40}  # past the column's range: a 400, not a 500 (fuzzer found)
    r = await client.put(f"/api/quotas/{me['id']}", json=huge, headers=admin_headers)
    assert r.status_code == 400, r.text
    r = await client.put(f"/api/quotas/{me['id']}", json=body, headers=admin_headers)
    assert r.status_code == 200 and r.json()["max_gpus"] == 1, r.text
    listed = (await client.get("/api/quotas", headers=member_headers)).json()["items"]
    assert [(q["username"], q["max_cpus"]) for q in listed] == [("mia", 4)]
    events = (await client.get("/api/events?kind=quota.set", headers=admin_headers)).json()
    assert events["items"][0]["subject_id"] == me["id"]

    await sim.nodes(1, cpus=8)
    await submit(client, member_headers, resources={"cpus": 2, "memory_mb": 1024})
    await Scheduler(sim.sessions, settings).run_pass()
    usage = (await client.get("/api/usage?days=2&owner=me", headers=member_headers)).json()
    assert [u["username"] for u in usage["items"]] == ["mia"]
    assert usage["items"][0]["cpu_hours"] >= 0 and usage["items"][0]["attempts"] == 1
    assert [f["username"] for f in usage["fair_share"]] == ["mia"]
    assert usage["fair_share"][0]["share_cpu_hours"] > 0
    assert (await client.get("/api/usage?days=0", headers=member_headers)).status_code == 400

    r = await client.delete(f"/api/quotas/{me['id']}", headers=admin_headers)
    assert r.status_code == 204, r.text
    assert (await client.get("/api/quotas", headers=admin_headers)).json()["items"] == []


async def test_account_and_label_quotas_and_usage_per_account(
    client: AsyncTestClient,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    sim: SimCluster,
    settings: Settings,
) -> None:
    me = (await client.get("/api/auth/me", headers=member_headers)).json()
    r = await client.put(
        "/api/quotas/accounts/apollo", json={"max_cpus": 2}, headers=member_headers
    )
    assert r.status_code == 403, r.text
    for bad in ("-x", "a b", "x" * 65):
        r = await client.put(f"/api/quotas/accounts/{bad}", json={}, headers=admin_headers)
        assert r.status_code in (400, 404), (bad, r.text)
    r = await client.put(
        f"/api/quotas/{me['id']}", params={"label": "no-equals"}, json={}, headers=admin_headers
    )
    assert r.status_code == 400 and "key=value" in r.json()["detail"], r.text
    assert (await client.get("/api/quotas", headers=admin_headers)).json()["items"] == []

    r = await client.put("/api/quotas/accounts/apollo", json={"max_cpus": 2}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["account"] == "apollo", r.text
    r = await client.put(
        "/api/quotas/accounts/apollo",
        params={"label": "pool=a100"},
        json={"max_gpus": 1},
        headers=admin_headers,
    )
    assert r.status_code == 200 and r.json()["label"] == "pool=a100", r.text
    r = await client.put(
        f"/api/quotas/{me['id']}",
        params={"label": "pool=a100"},
        json={"max_gpus": 2},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    r = await client.put(  # the same key again updates, not duplicates
        "/api/quotas/accounts/apollo", json={"max_cpus": 3}, headers=admin_headers
    )
    assert r.status_code == 200 and r.json()["max_cpus"] == 3
    listed = (await client.get("/api/quotas", headers=member_headers)).json()["items"]
    assert [(q["username"], q["account"], q["label"]) for q in listed] == [
        ("mia", None, "pool=a100"),
        (None, "apollo", ""),
        (None, "apollo", "pool=a100"),
    ]
    events = (await client.get("/api/events?kind=quota.set", headers=admin_headers)).json()
    assert {e["subject_type"] for e in events["items"]} == {"user", "account"}

    await sim.nodes(1, cpus=8)
    r = await client.put(f"/api/accounts/apollo/members/{me['id']}", headers=admin_headers)
    assert r.status_code == 200, r.text
    t = await submit(client, member_headers, account="apollo", resources={"cpus": 2})
    assert t["account"] == "apollo"
    r = await client.post("/api/tasks", json=task_body(account="bad name"), headers=member_headers)
    assert r.status_code == 400, r.text
    await Scheduler(sim.sessions, settings).run_pass()
    usage = (await client.get("/api/usage?days=2", headers=member_headers)).json()
    assert [(a["account"], a["attempts"]) for a in usage["accounts"]] == [("apollo", 1)]
    assert [a["account"] for a in usage["account_fair_share"]] == ["apollo"]
    only = (await client.get("/api/usage?account=other", headers=member_headers)).json()
    assert only["items"] == [] and only["accounts"] == []

    r = await client.delete(
        "/api/quotas/accounts/apollo", params={"label": "pool=a100"}, headers=admin_headers
    )
    assert r.status_code == 204, r.text
    r = await client.delete(
        "/api/quotas/accounts/apollo", params={"label": "pool=a100"}, headers=admin_headers
    )
    assert r.status_code == 404, r.text
    r = await client.delete(
        f"/api/quotas/{me['id']}", params={"label": "pool=a100"}, headers=admin_headers
    )
    assert r.status_code == 204, r.text
    left = (await client.get("/api/quotas", headers=admin_headers)).json()["items"]
    assert [(q["account"], q["label"]) for q in left] == [("apollo", "")]
