"""POST /api/task-batches: many tasks in one transaction, every bad index reported, all or none."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
from litestar.testing import AsyncTestClient
from sqlalchemy.exc import IntegrityError

from tests.core.conftest import task_body
from unidesk.core.db.engine import libpq_url, make_engine, make_sessionmaker
from unidesk.core.events.writer import NewEvent
from unidesk.core.tasks.submitqueue import SubmitQueue
from unidesk.core.tasks.transitions import task_event

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


async def test_concurrent_single_submits_share_transactions_and_each_gets_its_task(
    client: AsyncTestClient, admin_headers: dict[str, str], database_url: str
) -> None:
    queue = client.app.state.submit_queue
    before = queue.transactions
    replies = await asyncio.gather(
        *(
            client.post("/api/tasks", json=task_body(name=f"c-{i}"), headers=admin_headers)
            for i in range(12)
        )
    )
    assert all(r.status_code == 201 for r in replies), [r.text for r in replies]
    assert sorted(r.json()["name"] for r in replies) == sorted(f"c-{i}" for i in range(12))
    assert all(r.json()["state"] == "pending" and r.json()["created_at"] for r in replies)
    assert 1 <= queue.transactions - before <= 12
    with psycopg.connect(libpq_url(database_url)) as conn:
        events = conn.execute(
            "SELECT subject_id, count(*) FROM events WHERE kind = 'task.submitted' "
            "GROUP BY subject_id"
        ).fetchall()
    assert sorted(sid for sid, _ in events) == sorted(r.json()["id"] for r in replies)
    assert all(n == 1 for _, n in events)


async def test_a_row_that_fails_in_a_shared_transaction_fails_alone(database_url: str) -> None:
    engine = make_engine(database_url, 2)
    queue = SubmitQueue(make_sessionmaker(engine))

    def values(task_id: uuid.UUID, name: str) -> dict[str, Any]:
        return {
            "id": task_id, "name": name, "owner_id": None, "state": "pending",
            "code_repo_url": "https://git.example.org/c.git", "code_commit_id": "a" * 40,
            "env_repo_url": "https://git.example.org/e.git", "env_commit_id": "b" * 40,
            "dockerfile_path": "Dockerfile", "command": ["true"], "env": {}, "cpus": 1.0,
            "memory_mb": 256, "gpus": 0, "labels": {}, "gpu_model": None, "gpu_memory_mb": None,
            "expected_duration_s": None, "timeout_s": 60, "priority": 0, "account": None,
            "max_attempts": 1, "retry_on_failure": False, "extra": {},
        }  # fmt: skip

    def submitted(task_id: uuid.UUID) -> NewEvent:
        return task_event(task_id, "task.submitted", "test", spec={})

    try:
        taken = uuid.uuid4()
        await queue.submit(values(taken, "first"), submitted(taken))
        good = uuid.uuid4()
        results = await asyncio.gather(
            queue.submit(values(good, "good"), submitted(good)),
            queue.submit(values(taken, "duplicate id"), submitted(taken)),
            return_exceptions=True,
        )
        assert results[0].id == good and results[0].name == "good"
        assert isinstance(results[1], IntegrityError)
    finally:
        await engine.dispose()
