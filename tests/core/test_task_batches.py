"""POST /api/task-batches: many tasks in one transaction, every bad index reported, all or none."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.core.conftest import task_body

PROBLEM = "application/problem+json"


async def test_a_batch_creates_every_task_with_its_submitted_event(
    client: AsyncTestClient, admin_headers: dict[str, str]
) -> None:
    specs = [task_body(name=f"batch-{i}") for i in range(5)]
    specs[2] = task_body(name="", command="echo two")  # named from its command, like one submit
    r = await client.post("/api/task-batches", json={"tasks": specs}, headers=admin_headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["count"] == 5 and len(set(body["task_ids"])) == 5
    listed = (await client.get("/api/tasks", headers=admin_headers)).json()["items"]
    by_id = {t["id"]: t for t in listed}
    assert [by_id[i]["name"] for i in body["task_ids"]] == [
        "batch-0",
        "batch-1",
        "/bin/sh -c 'echo two'",
        "batch-3",
        "batch-4",
    ]
    assert all(by_id[i]["state"] == "pending" for i in body["task_ids"])
    for task_id in body["task_ids"]:
        trace = (await client.get(f"/api/tasks/{task_id}/trace", headers=admin_headers)).json()
        kinds = [e["kind"] for e in trace["items"]]
        assert kinds[0] == "task.submitted"
        spec = trace["items"][0]["payload"]["spec"]
        assert "env" not in spec and spec["env_keys"] == ["SEED"]  # like a single submit


async def test_every_bad_index_is_listed_and_nothing_is_created(
    client: AsyncTestClient, admin_headers: dict[str, str], counts: Any
) -> None:
    specs: list[dict[str, Any]] = [task_body(name=f"ok-{i}") for i in range(6)]
    specs[1] = task_body(code_commit_id="main")  # schema: not a full SHA
    specs[3] = task_body(dockerfile_path="../Dockerfile")  # edge check after the schema
    specs[4] = {**task_body(), "surprise": 1}  # unknown field
    specs[5] = task_body(priority=1000, resources={"gpu_model": "A100"})  # gpu_model needs gpus
    before = counts()
    r = await client.post("/api/task-batches", json={"tasks": specs}, headers=admin_headers)
    assert r.status_code == 400 and r.headers["content-type"].startswith(PROBLEM)
    problem = r.json()
    assert [e["index"] for e in problem["errors"]] == [1, 3, 4, 5]
    assert "code_commit_id" in problem["errors"][0]["detail"]
    assert "dockerfile_path" in problem["errors"][1]["detail"]
    assert "surprise" in problem["errors"][2]["detail"]
    assert "nothing was submitted" in problem["detail"]
    assert counts() == before


async def test_batch_size_is_bounded(
    client: AsyncTestClient, admin_headers: dict[str, str], counts: Any
) -> None:
    before = counts()
    for tasks in ([], [{}] * 10_001):
        r = await client.post("/api/task-batches", json={"tasks": tasks}, headers=admin_headers)
        assert r.status_code == 400, r.text
    r = await client.post("/api/task-batches", json=[task_body()], headers=admin_headers)
    assert r.status_code == 400
    assert counts() == before


async def test_a_member_may_not_batch_an_admin_priority(
    client: AsyncTestClient, member_headers: dict[str, str], counts: Any
) -> None:
    before = counts()
    specs = [task_body(), task_body(priority=1000)]
    r = await client.post("/api/task-batches", json={"tasks": specs}, headers=member_headers)
    assert r.status_code == 400
    assert [(e["index"], e.get("field")) for e in r.json()["errors"]] == [(1, "priority")]
    assert counts() == before
