"""Pipelines API: submit (JSON and YAML) with every error listed and nothing created, list,
read, trace; the policy moves steps as their tasks end (task states driven through the core's
own transitions, as an agent's reports would); conditions, skips, retry, cancel, rerun."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import yaml
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from tests.core.conftest import row_counts
from unidesk.core.tasks.transitions import move_task, task_event

H = dict[str, str]
A, B = "a" * 40, "b" * 40


def defaults(**over: Any) -> dict[str, Any]:
    return {
        "code_repo_url": "file:///srv/code",
        "code_commit_id": A,
        "env_repo_url": "file:///srv/env",
        "env_commit_id": B,
        "dockerfile_path": "Dockerfile",
        "resources": {"cpus": 0.5, "memory_mb": 64},
        "max_attempts": 1,
        **over,
    }


def three_steps() -> dict[str, Any]:
    return {
        "name": "exp-1",
        "defaults": defaults(),
        "steps": [
            {
                "name": "prepare",
                "task": {"command": ["python", "prep.py"], "outputs": ["data.csv"]},
            },
            {
                "name": "train",
                "depends_on": ["prepare"],
                "matrix": {"lr": [0.1, 0.01]},
                "task": {
                    "command": "python train.py --lr {{ matrix.lr }}",
                    "env": {"LR": "{{matrix.lr}}"},
                    "outputs": ["model.pt"],
                },
            },
            {"name": "aggregate", "depends_on": ["train"], "task": {"command": "python agg.py"}},
            {
                "name": "report-failure",
                "depends_on": ["train"],
                "when": "on_failure",
                "task": {"command": "echo failed"},
            },
        ],
    }


async def submit(client: AsyncTestClient, headers: H, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/api/pipelines", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def get(client: AsyncTestClient, headers: H, pid: str) -> dict[str, Any]:
    r = await client.get(f"/api/pipelines/{pid}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def step(p: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in p["steps"] if s["name"] == name)


async def finish(database_url: str, task_ids: list[str], to: str) -> None:
    """End tasks as an agent's final report would (the core's own transition + event)."""
    engine = create_async_engine(database_url)
    try:
        async with async_sessionmaker(engine)() as s:
            for t in task_ids:
                await move_task(
                    s,
                    uuid.UUID(t),
                    from_states=("pending", "assigned", "running"),
                    to=to,
                    event=task_event(uuid.UUID(t), f"task.{to}", "test"),
                )
            await s.commit()
    finally:
        await engine.dispose()


async def until(client: AsyncTestClient, headers: H, pid: str, check: Any) -> dict[str, Any]:
    from tests.plugins.conftest import eventually

    async def once() -> dict[str, Any] | None:
        p = await get(client, headers, pid)
        return p if check(p) else None

    return await eventually(once, timeout=20)


def tasks_of(p: dict[str, Any], name: str) -> list[str]:
    return [pt["task_id"] for pt in step(p, name)["points"]]


async def test_submit_runs_roots_lists_and_traces(
    client: AsyncTestClient, admin_headers: H
) -> None:
    p = await submit(client, admin_headers, three_steps())
    assert p["state"] == "running" and p["name"] == "exp-1" and p["owner"] == "admin"
    assert [s["state"] for s in p["steps"]] == ["running", "waiting", "waiting", "waiting"]
    assert step(p, "train")["points"] == [
        {"index": 0, "params": {"lr": 0.1}, "task_id": None, "task_state": None},
        {"index": 1, "params": {"lr": 0.01}, "task_id": None, "task_state": None},
    ]
    (prep,) = tasks_of(p, "prepare")
    task = (await client.get(f"/api/tasks/{prep}", headers=admin_headers)).json()
    assert task["command"] == ["python", "prep.py"] and task["name"] == "exp-1/prepare"
    assert p["step_counts"] == {"running": 1, "waiting": 3}
    assert set(p["allowed_actions"]) == {"cancel", "rerun"}

    page = (await client.get("/api/pipelines?limit=1", headers=admin_headers)).json()
    assert [i["id"] for i in page["items"]] == [p["id"]] and page["next_cursor"] is None
    r = await client.get("/api/pipelines?state=succeeded", headers=admin_headers)
    assert r.json()["items"] == []
    r = await client.get("/api/pipelines?state=bogus", headers=admin_headers)
    assert r.status_code == 400
    trace = (await client.get(f"/api/pipelines/{p['id']}/trace", headers=admin_headers)).json()
    assert [e["kind"] for e in trace["items"]] == [
        "pipeline.submitted",
        "step.ready",
        "step.started",
    ]
    r = await client.get(f"/api/pipelines/{p['id']}/trace?tasks=true", headers=admin_headers)
    merged = r.json()["items"]
    assert [e["id"] for e in merged] == sorted(e["id"] for e in merged)
    assert {(e["subject_type"], e["kind"]) for e in merged} >= {
        ("pipeline", "step.started"),
        ("task", "task.submitted"),
    }
    assert (
        await client.get(f"/api/pipelines/{uuid.uuid4()}", headers=admin_headers)
    ).status_code == 404


async def test_yaml_body(client: AsyncTestClient, admin_headers: H) -> None:
    r = await client.post(
        "/api/pipelines",
        content=yaml.safe_dump(three_steps()),
        headers={**admin_headers, "Content-Type": "application/yaml"},
    )
    assert r.status_code == 201, r.text
    assert len(r.json()["steps"]) == 4
    r = await client.post(
        "/api/pipelines",
        content=b"name: [unclosed",
        headers={**admin_headers, "Content-Type": "application/yaml"},
    )
    assert r.status_code == 400 and "YAML" in r.json()["detail"]


async def test_every_error_listed_nothing_created(
    client: AsyncTestClient, admin_headers: H, database_url: str
) -> None:
    body = three_steps()
    body["steps"] += [
        {"name": "x", "depends_on": ["y"], "task": {"command": "a"}},
        {"name": "y", "depends_on": ["x"], "task": {"command": "b"}},
        {"name": "x", "task": {"command": "c"}},
        {"name": "bad", "depends_on": ["ghost"], "when": "sometimes", "task": {"command": "d"}},
        {"name": "gpu", "task": {"command": "e", "resources": {"gpus": -1}}},
        {"name": "dur", "task": {"command": "f", "expected_duration_s": 10, "timeout_s": 5}},
        {
            "name": "big",
            "matrix": {"a": list(range(20)), "b": list(range(20))},
            "task": {"command": "g"},
        },
        {
            "name": "in",
            "depends_on": ["prepare"],
            "task": {"command": "h", "inputs": [{"from": "prepare/nope.csv"}]},
        },
        {"name": "tpl", "matrix": {"k": [1]}, "task": {"command": "echo {{ matrix.z }}"}},
        {"name": "Bad Name", "task": {"command": "i"}},
    ]
    r = await client.post("/api/pipelines", json=body, headers=admin_headers)
    assert r.status_code == 400, r.text
    errors = {(e["path"], e["detail"].split(":")[0][:30]) for e in r.json()["errors"]}
    paths = {p for p, _ in errors}
    assert "steps" in paths  # the cycle
    assert any("cycle" in e["detail"] for e in r.json()["errors"])
    assert "steps[6].name" in paths  # duplicate x
    assert "steps[7].depends_on[0]" in paths and "steps[7].when" in paths
    assert "steps[8].task.resources.gpus" in paths
    assert "steps[9].task.expected_duration_s" in paths
    assert "steps[10].matrix" in paths
    assert "steps[11].task.inputs[0].from" in paths
    assert "steps[12].task.matrix" in paths
    assert "steps[13].name" in paths
    assert (await client.get("/api/pipelines", headers=admin_headers)).json()["items"] == []
    tasks = (await client.get("/api/tasks", headers=admin_headers)).json()["items"]
    assert tasks == []


async def test_policy_matrix_fan_in_success(
    client: AsyncTestClient, admin_headers: H, database_url: str
) -> None:
    p = await submit(client, admin_headers, three_steps())
    await finish(database_url, tasks_of(p, "prepare"), "succeeded")
    p = await until(
        client, admin_headers, p["id"], lambda p: step(p, "train")["state"] == "running"
    )
    trains = tasks_of(p, "train")
    assert len(set(trains)) == 2
    t0 = (await client.get(f"/api/tasks/{trains[0]}", headers=admin_headers)).json()
    assert t0["command"] == ["/bin/sh", "-c", "python train.py --lr 0.1"]
    assert t0["env"]["LR"] == "0.1" and t0["env"]["UNIDESK_MATRIX"] == '{"lr":0.1}'
    await finish(database_url, trains[:1], "succeeded")
    await finish(database_url, trains[1:], "succeeded")
    p = await until(
        client, admin_headers, p["id"], lambda p: step(p, "aggregate")["state"] == "running"
    )
    assert step(p, "report-failure")["state"] == "skipped"
    await finish(database_url, tasks_of(p, "aggregate"), "succeeded")
    p = await until(client, admin_headers, p["id"], lambda p: p["state"] == "succeeded")
    assert p["finished_at"] and p["step_counts"] == {"succeeded": 3, "skipped": 1}
    kinds = [
        e["kind"]
        for e in (
            await client.get(f"/api/pipelines/{p['id']}/trace", headers=admin_headers)
        ).json()["items"]
    ]
    assert kinds[-1] == "pipeline.succeeded" and kinds.count("step.succeeded") == 3


async def test_failure_skips_runs_on_failure_then_retry_resumes(
    client: AsyncTestClient, admin_headers: H, database_url: str
) -> None:
    p = await submit(client, admin_headers, three_steps())
    (prep,) = tasks_of(p, "prepare")
    await finish(database_url, [prep], "succeeded")
    p = await until(
        client, admin_headers, p["id"], lambda p: step(p, "train")["state"] == "running"
    )
    trains = tasks_of(p, "train")
    await finish(database_url, trains[:1], "cancelled")
    await finish(database_url, trains[1:], "failed")
    p = await until(
        client, admin_headers, p["id"], lambda p: step(p, "report-failure")["state"] == "running"
    )
    assert step(p, "train")["state"] == "failed" and step(p, "aggregate")["state"] == "skipped"
    # a cancelled task is not counted as failed
    assert step(p, "train")["reason"] == "2 of 2 tasks did not succeed: 1 failed, 1 cancelled"
    await finish(database_url, tasks_of(p, "report-failure"), "succeeded")
    p = await until(client, admin_headers, p["id"], lambda p: p["state"] == "failed")
    assert "retry" in p["allowed_actions"]
    r = await client.post(f"/api/pipelines/{p['id']}/steps/prepare/retry", headers=admin_headers)
    assert r.status_code == 409

    r = await client.post(f"/api/pipelines/{p['id']}/steps/train/retry", headers=admin_headers)
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["state"] == "running" and step(p, "train")["round"] == 1
    assert step(p, "prepare")["state"] == "succeeded" and tasks_of(p, "prepare") == [prep]
    assert step(p, "aggregate")["state"] == "waiting"
    new_trains = tasks_of(p, "train")
    assert not set(new_trains) & set(trains)
    await finish(database_url, new_trains, "succeeded")
    p = await until(
        client, admin_headers, p["id"], lambda p: step(p, "aggregate")["state"] == "running"
    )
    await finish(database_url, tasks_of(p, "aggregate"), "succeeded")
    p = await until(client, admin_headers, p["id"], lambda p: p["state"] == "succeeded")
    # the prepare task ran once
    r = await client.get("/api/tasks", params={"q": "exp-1/prepare"}, headers=admin_headers)
    kinds = [
        e["kind"]
        for e in (
            await client.get(f"/api/pipelines/{p['id']}/trace", headers=admin_headers)
        ).json()["items"]
    ]
    assert "step.retried" in kinds and kinds.count("pipeline.failed") == 1


async def test_cancel_and_rerun_and_access(
    client: AsyncTestClient, admin_headers: H, member_headers: H, database_url: str
) -> None:
    p = await submit(client, admin_headers, three_steps())
    r = await client.post(f"/api/pipelines/{p['id']}/cancel", headers=member_headers)
    assert r.status_code == 403
    r = await client.post(f"/api/pipelines/{p['id']}/cancel", headers=admin_headers)
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["state"] == "cancelled"
    assert step(c, "prepare")["state"] == "cancelled"
    assert {step(c, n)["state"] for n in ("train", "aggregate", "report-failure")} == {"skipped"}
    (prep,) = tasks_of(c, "prepare")
    assert (await client.get(f"/api/tasks/{prep}", headers=admin_headers)).json()[
        "state"
    ] == "cancelled"
    r = await client.post(f"/api/pipelines/{p['id']}/cancel", headers=admin_headers)
    assert r.status_code == 409

    r = await client.post(
        f"/api/pipelines/{p['id']}/rerun", json={"code_commit_id": "c" * 40}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    n = r.json()
    assert n["id"] != p["id"] and n["rerun_of"] == p["id"] and n["state"] == "running"
    (prep2,) = tasks_of(n, "prepare")
    task = (await client.get(f"/api/tasks/{prep2}", headers=admin_headers)).json()
    assert task["code_commit_id"] == "c" * 40
    kinds = [
        e["kind"]
        for e in (
            await client.get(f"/api/pipelines/{p['id']}/trace", headers=admin_headers)
        ).json()["items"]
    ]
    assert kinds[-1] == "pipeline.rerun"
    # members read every pipeline
    assert (
        await client.get(f"/api/pipelines/{n['id']}", headers=member_headers)
    ).status_code == 200


async def test_odd_bodies_are_400(client: AsyncTestClient, admin_headers: H) -> None:
    d = defaults()
    bodies: list[Any] = [
        [],
        {"name": "x"},
        {"name": "x", "steps": []},
        {"name": "x", "steps": [{"name": "a", "task": {"command": 1}}], "defaults": d},
        {"name": "x", "steps": [{"name": "a", "task": {"command": [1, "a"]}}], "defaults": d},
        {
            "name": "x",
            "steps": [{"name": "a", "task": {"command": "a", "env": [1]}}],
            "defaults": d,
        },
        {
            "name": "x",
            "steps": [{"name": "a", "task": {"command": "a", "inputs": "no"}}],
            "defaults": d,
        },
        {
            "name": "x",
            "steps": [{"name": "a", "task": {"command": "a", "inputs": [{"from": 5}]}}],
            "defaults": d,
        },
        {
            "name": "x",
            "steps": [{"name": "a", "task": {"command": "a", "inputs": [{"from": "a/../b"}]}}],
            "defaults": d,
        },
        {
            "name": "x",
            "steps": [{"name": "a", "matrix": {"k": [{"x": 1}]}, "task": {"command": "a"}}],
            "defaults": d,
        },
        {
            "name": "x",
            "steps": [{"name": "a", "matrix": {"k": []}, "task": {"command": "a"}}],
            "defaults": d,
        },
        {"name": "x", "steps": [{"name": "a", "task": {"command": "a"}}], "defaults": {"env": "x"}},
        {
            "name": "x",
            "steps": [{"name": "a", "task": {"command": "a", "secrets": {"K": "user:nope"}}}],
            "defaults": d,
        },
    ]
    for body in bodies:
        r = await client.post("/api/pipelines", json=body, headers=admin_headers)
        assert r.status_code == 400, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    for raw, ctype in (
        (b"\xff\xfe", "application/json"),
        (b"{", "application/json"),
        (b"a: &a [1,2]\nb: [*a, *a]\n", "application/yaml"),
        (b"\xff", "application/yaml"),
        (b"[" * 5000, "application/yaml"),
        (
            yaml.safe_dump(
                {
                    "name": "x",
                    "defaults": defaults(),
                    "steps": [
                        {"name": "a", "task": {"command": "a"}},
                        {
                            "name": "b",
                            "depends_on": ["a"],
                            "task": {"command": "b", "extensions": {"research": {"x": 1}}},
                        },
                    ],
                }
            )
            .encode()
            .replace(b"x: 1", b"x: .nan"),
            "application/yaml",
        ),
    ):
        r = await client.post(
            "/api/pipelines", content=raw, headers={**admin_headers, "Content-Type": ctype}
        )
        assert r.status_code == 400, (raw[:20], r.text)
    assert (await client.get("/api/pipelines", headers=admin_headers)).json()["items"] == []


@pytest.mark.parametrize("sweep", [False, True])
async def test_startup_reconcile_moves_pipelines_whose_tasks_ended_unheard(
    client: AsyncTestClient, admin_headers: H, database_url: str, sweep: bool
) -> None:
    """A task that ended with no listener to hear it (as if the server died between the commit
    and the listener) is picked up by the reconcile, which reads task states, not memory."""
    from unidesk.plugins.pipelines import engine as engine_mod
    from unidesk.plugins.pipelines.engine import reconcile, stuck_pipelines

    p = await submit(client, admin_headers, three_steps())
    (prep,) = tasks_of(p, "prepare")
    # the task's row ends with an event kind the listener does not follow: as if it had missed it
    engine = create_async_engine(database_url)
    try:
        async with async_sessionmaker(engine)() as s:
            await move_task(
                s,
                uuid.UUID(prep),
                from_states=("pending",),
                to="succeeded",
                event=task_event(uuid.UUID(prep), "test.unheard", "test"),
            )
            await s.commit()
    finally:
        await engine.dispose()
    assert step(await get(client, admin_headers, p["id"]), "train")["state"] == "waiting"
    async with client.app.state.sessions() as s:
        assert await stuck_pipelines(s) == [uuid.UUID(p["id"])]
    if sweep:  # the listener's periodic sweep, on any later event
        engine_mod._last_sweep[0] = 0.0
        await engine_mod.follow_task_events([], client.app.state)
    else:  # the startup reconcile
        await reconcile(client.app.state)
    p = await get(client, admin_headers, p["id"])
    assert step(p, "prepare")["state"] == "succeeded" and step(p, "train")["state"] == "running"
    await reconcile(client.app.state)  # nothing more to do: nothing started twice
    assert tasks_of(await get(client, admin_headers, p["id"]), "train") == tasks_of(p, "train")


async def test_step_tasks_link_to_work_items_and_experiments(
    client: AsyncTestClient, admin_headers: H
) -> None:
    """Steps carry task extensions like any task: every step task links to a work item, and a
    matrix step's points become runs of an experiment with the point as params."""
    proj = (await client.post("/api/projects", json={"name": "P"}, headers=admin_headers)).json()
    item = (
        await client.post(
            f"/api/projects/{proj['id']}/items", json={"title": "exp"}, headers=admin_headers
        )
    ).json()
    exp = (
        await client.post("/api/research/experiments", json={"name": "E"}, headers=admin_headers)
    ).json()
    body = three_steps()
    body["defaults"]["extensions"] = {"projects": {"work_item_id": item["id"]}}
    body["steps"] = [
        *body["steps"][:1],
        {
            **body["steps"][1],
            "depends_on": [],
            "task": {
                **body["steps"][1]["task"],
                "extensions": {
                    "projects": {"work_item_id": item["id"]},
                    "research": {"experiment_id": exp["id"]},
                },
            },
        },
    ]
    p = await submit(client, admin_headers, body)
    detail = (await client.get(f"/api/projects/items/{item['id']}", headers=admin_headers)).json()
    linked = {r["task_id"] for r in detail["run_list"]}
    assert linked == set(tasks_of(p, "prepare")) | set(tasks_of(p, "train"))
    runs = (
        await client.get(f"/api/research/experiments/{exp['id']}", headers=admin_headers)
    ).json()["runs"]
    assert sorted(r["params"]["lr"] for r in runs) == [0.01, 0.1]
    # the task page's links name all three, in plugin order (unidesk_task_links)
    train_task = tasks_of(p, "train")[0]
    r = await client.get(f"/api/tasks/{train_task}/links", headers=admin_headers)
    assert [(x["plugin"], x["label"], x["path"]) for x in r.json()["items"]] == [
        ("projects", "Work item exp", f"/projects/items/{item['id']}"),
        ("research", "Experiment E", f"/experiments/{exp['id']}"),
        ("pipelines", "Pipeline exp-1 · step train", f"/pipelines/{p['id']}"),
    ]
    # a bad link is refused at submit, with nothing created
    body["defaults"]["extensions"] = {"projects": {"work_item_id": str(uuid.uuid4())}}
    r = await client.post("/api/pipelines", json=body, headers=admin_headers)
    assert r.status_code == 400, r.text
    assert len((await client.get("/api/pipelines", headers=admin_headers)).json()["items"]) == 1


async def test_step_task_links_back_to_its_pipeline(
    client: AsyncTestClient, admin_headers: H
) -> None:
    """GET /api/tasks/{id}/links (the unidesk_task_links hook): a step's task names its pipeline
    and step; a task of no pipeline has no link; an unknown task is 404."""
    p = await submit(client, admin_headers, three_steps())
    (prep,) = tasks_of(p, "prepare")
    r = await client.get(f"/api/tasks/{prep}/links", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["items"] == [
        {
            "label": "Pipeline exp-1 · step prepare",
            "path": f"/pipelines/{p['id']}",
            "plugin": "pipelines",
        }
    ]
    plain = await client.post(
        "/api/tasks", headers=admin_headers, json={**defaults(), "command": ["true"]}
    )
    assert plain.status_code == 201, plain.text
    r = await client.get(f"/api/tasks/{plain.json()['id']}/links", headers=admin_headers)
    assert r.json() == {"items": []}
    r = await client.get(f"/api/tasks/{uuid.uuid4()}/links", headers=admin_headers)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_a_step_naming_an_account_needs_its_membership_at_submit(
    client: AsyncTestClient, admin_headers: H, member_headers: H, database_url: str
) -> None:
    """A later step's task naming an account the submitter is not a member of is refused when
    the pipeline is submitted (403, nothing created), not when that step would start."""
    body = three_steps()
    body["steps"][2]["task"]["account"] = "apollo"
    before = row_counts(database_url)
    r = await client.post("/api/pipelines", json=body, headers=member_headers)
    assert r.status_code == 403 and "not a member of account 'apollo'" in r.json()["detail"]
    assert row_counts(database_url) == before
    me = (await client.get("/api/auth/me", headers=member_headers)).json()
    r = await client.put(f"/api/accounts/apollo/members/{me['id']}", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert (await submit(client, member_headers, body))["state"] in ("pending", "running")
