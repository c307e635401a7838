"""Research plugin API: experiments, runs via the task extension, metrics (bad values refused),
downsampled series, sweeps (cap refused with nothing created), and attempt data through the hook."""

from __future__ import annotations

import math
import uuid
from typing import Any

from litestar.testing import AsyncTestClient

H = dict[str, str]


async def _experiment(
    client: AsyncTestClient, headers: H, name: str = "lr-search"
) -> dict[str, Any]:
    r = await client.post("/api/research/experiments", json={"name": name}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def _run(
    client: AsyncTestClient, headers: H, task_body: Any, exp: dict[str, Any], **params: Any
) -> dict[str, Any]:
    r = await client.post(
        "/api/tasks",
        json=task_body(extensions={"research": {"experiment_id": exp["id"], "params": params}}),
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_runs_metrics_and_comparison(
    client: AsyncTestClient, admin_headers: H, task_body: Any
) -> None:
    exp = await _experiment(client, admin_headers)
    a = await _run(client, admin_headers, task_body, exp, lr=0.1)
    b = await _run(client, admin_headers, task_body, exp, lr=0.01)
    for task, scale in ((a, 1.0), (b, 0.5)):
        items = [{"name": "loss", "step": i, "value": scale / (i + 1)} for i in range(50)]
        items += [
            {"name": "acc", "step": i, "value": 1 - scale / (i + 1), "time": "2026-11-27T10:00:00Z"}
            for i in range(0, 50, 10)
        ]
        r = await client.post(
            f"/api/research/runs/{task['id']}/metrics", json={"items": items}, headers=admin_headers
        )
        assert r.status_code == 201 and r.json() == {"stored": 55}, r.text
    # a later report of the same step wins
    r = await client.post(
        f"/api/research/runs/{a['id']}/metrics",
        json={"items": [{"name": "loss", "step": 49, "value": 0.001}]},
        headers=admin_headers,
    )
    assert r.status_code == 201

    detail = (
        await client.get(f"/api/research/experiments/{exp['id']}", headers=admin_headers)
    ).json()
    assert detail["metric_names"] == ["acc", "loss"] and detail["param_names"] == ["lr"]
    runs = {r["task_id"]: r for r in detail["runs"]}
    assert runs[a["id"]]["params"] == {"lr": 0.1}
    loss_a = runs[a["id"]]["metrics"]["loss"]
    assert (loss_a["last_step"], loss_a["last"], loss_a["min"], loss_a["max"]) == (
        49,
        0.001,
        0.001,
        1.0,
    )
    assert runs[b["id"]]["metrics"]["loss"]["last"] == 0.5 / 50

    page = (
        await client.get(
            f"/api/research/experiments/{exp['id']}/metrics",
            params={"name": "loss"},
            headers=admin_headers,
        )
    ).json()
    assert [s["task_id"] for s in page["series"]] == [a["id"], b["id"]]
    assert len(page["series"][0]["points"]) == 50 and not page["series"][0]["downsampled"]
    assert page["series"][1]["points"][0] == {
        "step": 0,
        "step_end": 0,
        "avg": 0.5,
        "min": 0.5,
        "max": 0.5,
        "last": 0.5,
        "count": 1,
    }

    # downsampled: 50 steps in at most 10 buckets, min/max/avg/last exact per bucket
    page = (
        await client.get(
            f"/api/research/experiments/{exp['id']}/metrics",
            params={"name": "loss", "points": 10, "task": b["id"]},
            headers=admin_headers,
        )
    ).json()
    (series,) = page["series"]
    assert series["downsampled"] and len(series["points"]) == 10
    first = series["points"][0]
    assert (first["step"], first["step_end"], first["count"]) == (0, 4, 5)
    assert (
        first["max"] == 0.5
        and math.isclose(first["min"], 0.5 / 5)
        and first["last"] == first["min"]
    )
    assert math.isclose(first["avg"], sum(0.5 / (i + 1) for i in range(5)) / 5)


async def test_bad_metrics_are_refused_and_store_nothing(
    client: AsyncTestClient, admin_headers: H, member_headers: H, task_body: Any
) -> None:
    exp = await _experiment(client, admin_headers)
    run = await _run(client, admin_headers, task_body, exp, lr=1)
    url = f"/api/research/runs/{run['id']}/metrics"
    bad = [
        ({"items": [{"name": "loss", "step": 1, "value": "abc"}]}, "value"),
        ({"items": [{"name": "loss", "step": 1, "value": None}]}, "value"),
        ({"items": [{"name": "loss", "step": -1, "value": 1}]}, "step"),
        ({"items": [{"name": "", "step": 1, "value": 1}]}, "name"),
        ({"items": []}, "items"),
    ]
    for body, expected in bad:
        r = await client.post(url, json=body, headers=admin_headers)
        assert r.status_code == 400, (body, r.text)
        assert expected in r.json()["detail"], (expected, r.json())
    for raw, expected in [
        (
            b'{"items": [{"name": "loss", "step": 1, "value": 1.0}, {"name": "loss", "step": 2, '
            b'"value": 1e999}]}',
            "out of range",
        ),
        (b'{"items": [{"name": "loss", "step": 1, "value": -1e999}]}', "out of range"),
        (b'{"items": [{"name": "loss", "step": 1, "value": NaN}]}', ""),
    ]:
        r = await client.post(
            url, content=raw, headers={**admin_headers, "content-type": "application/json"}
        )
        assert r.status_code == 400, r.text
        assert expected in r.json()["detail"], r.json()
    r = await client.post(
        url, json={"items": [{"name": "loss", "step": 1, "value": 1}]}, headers=member_headers
    )
    assert r.status_code == 403
    r = await client.post(
        f"/api/research/runs/{uuid.uuid4()}/metrics",
        json={"items": [{"name": "x", "step": 1, "value": 1}]},
        headers=admin_headers,
    )
    assert r.status_code == 404
    detail = (
        await client.get(f"/api/research/experiments/{exp['id']}", headers=admin_headers)
    ).json()
    assert detail["runs"][0]["metrics"] == {} and detail["metric_names"] == []
    # bad extension bodies: refused, no task written
    tasks_before = (await client.get("/api/tasks", headers=admin_headers)).json()["items"]
    for ext, expected in [
        ({"experiment_id": str(uuid.uuid4())}, "does not exist"),
        ({"params": {}}, "expected"),
        ({"experiment_id": exp["id"], "params": {"bad name": 1}}, "bad parameter name"),
        ({"experiment_id": exp["id"], "params": {"x": [1]}}, "a string, a finite number"),
    ]:
        r = await client.post(
            "/api/tasks", json=task_body(extensions={"research": ext}), headers=admin_headers
        )
        assert r.status_code == 400 and expected in r.json()["detail"], r.text
    r = await client.post(
        "/api/tasks", json=task_body(extensions={"nosuchplugin": {}}), headers=admin_headers
    )
    assert r.status_code == 400 and "no loaded plugin handles nosuchplugin" in r.json()["detail"]
    assert (await client.get("/api/tasks", headers=admin_headers)).json()["items"] == tasks_before


async def test_sweep_submits_one_task_per_point_and_refuses_over_the_cap(
    client: AsyncTestClient, admin_headers: H, task_body: Any
) -> None:
    exp = await _experiment(client, admin_headers)
    body = {
        "task": task_body(command="echo $PARAM_LR"),
        "grid": {"lr": [0.1, 0.01], "opt": ["sgd", "adam"]},
    }
    r = await client.post(
        f"/api/research/experiments/{exp['id']}/sweeps", json=body, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    ids = r.json()["task_ids"]
    assert len(ids) == 4
    task = (await client.get(f"/api/tasks/{ids[1]}", headers=admin_headers)).json()
    assert task["env"]["PARAM_LR"] == "0.1" and task["env"]["PARAM_OPT"] == "adam"
    assert task["env"]["UNIDESK_PARAMS"] == '{"lr": 0.1, "opt": "adam"}'
    assert task["name"] == "lr-search lr=0.1 opt=adam"
    detail = (
        await client.get(f"/api/research/experiments/{exp['id']}", headers=admin_headers)
    ).json()
    assert [r["params"] for r in detail["runs"]] == [
        {"lr": 0.1, "opt": "sgd"},
        {"lr": 0.1, "opt": "adam"},
        {"lr": 0.01, "opt": "sgd"},
        {"lr": 0.01, "opt": "adam"},
    ]

    before = (await client.get("/api/tasks", params={"limit": 500}, headers=admin_headers)).json()[
        "items"
    ]
    huge = {"task": task_body(), "grid": {"a": list(range(100)), "b": list(range(1000))}}
    r = await client.post(
        f"/api/research/experiments/{exp['id']}/sweeps", json=huge, headers=admin_headers
    )
    assert r.status_code == 400
    assert "100000 points, over the cap of 1000" in r.json()["detail"]
    for bad, expected in [
        ({"task": task_body(), "grid": {"a": []}}, "at least one value"),
        ({"task": task_body(), "grid": {}}, "grid"),
        ({"task": task_body(), "grid": {"bad-name": [1]}}, "grid"),
        ({"task": task_body(dockerfile_path="../x"), "grid": {"a": [1, 2]}}, "dockerfile_path"),
        ({"task": task_body(extensions={"research": {}}), "grid": {"a": [1]}}, "set by the sweep"),
    ]:
        r = await client.post(
            f"/api/research/experiments/{exp['id']}/sweeps", json=bad, headers=admin_headers
        )
        assert r.status_code == 400 and expected in r.json()["detail"], r.text
    assert (await client.get("/api/tasks", params={"limit": 500}, headers=admin_headers)).json()[
        "items"
    ] == before


async def test_sweep_cap_is_a_setting(settings: Any, task_body: Any) -> None:
    from litestar.testing import AsyncTestClient as Client

    from tests.conftest import ADMIN_PASSWORD, login
    from unidesk.core.app import create_app
    from unidesk.core.settings import load_settings

    env = load_settings(environ={"UNIDESK_RESEARCH_MAX_SWEEP_TASKS": "3"}).plugin_env
    app = create_app(msgspec_replace(settings, plugin_env=env), components=[])
    async with Client(app=app) as c:
        h = await login(c, "admin", ADMIN_PASSWORD)
        exp = await _experiment(c, h)
        r = await c.post(
            f"/api/research/experiments/{exp['id']}/sweeps",
            json={"task": task_body(), "grid": {"a": [1, 2, 3, 4]}},
            headers=h,
        )
        assert r.status_code == 400 and "over the cap of 3" in r.json()["detail"]
        r = await c.post(
            f"/api/research/experiments/{exp['id']}/sweeps",
            json={"task": task_body(), "grid": {"a": [1, 2, 3]}},
            headers=h,
        )
        assert r.status_code == 201 and len(r.json()["task_ids"]) == 3


def msgspec_replace(obj: Any, **changes: Any) -> Any:
    import msgspec

    return msgspec.structs.replace(obj, **changes)


async def test_attempt_data_hook_stores_good_points_and_names_bad_ones(
    client: AsyncTestClient, admin_headers: H, task_body: Any
) -> None:
    exp = await _experiment(client, admin_headers)
    run = await _run(client, admin_headers, task_body, exp, lr=1)
    plugins = client.app.state.plugins
    items = [
        {"name": "loss", "step": 1, "value": 0.5, "time": 1764237600.0},
        {"name": "loss", "step": 2, "value": float("nan")},
        {"name": "loss", "step": 3, "value": "high"},
        {"name": "loss", "step": 4, "value": 0.25},
    ]
    for _ in range(2):  # the second delivery (a resend after reconnect) is skipped by seq
        async with client.app.state.sessions() as s:
            handled = await plugins.attempt_data(s, uuid.UUID(run["id"]), 1, "metrics", 1, items)
            await s.commit()
        assert handled == ["research"]
    async with client.app.state.sessions() as s:
        assert (
            await plugins.attempt_data(s, uuid.UUID(run["id"]), 1, "other-channel", 1, items) == []
        )
    detail = (
        await client.get(f"/api/research/experiments/{exp['id']}", headers=admin_headers)
    ).json()
    (r,) = detail["runs"]
    assert r["metrics"]["loss"]["points"] == 2 and r["metrics"]["loss"]["last"] == 0.25
    assert r["rejected_points"] == 2 and "value" in r["last_rejection"]
    trace = (await client.get(f"/api/tasks/{run['id']}/trace", headers=admin_headers)).json()[
        "items"
    ]
    rejected = [e for e in trace if e["kind"] == "research.metrics_rejected"]
    assert (
        len(rejected) == 1
        and "must be a finite number, got nan" in rejected[0]["payload"]["first_error"]
    )


async def test_lines_the_agent_skipped_are_counted_on_the_run_with_a_few_samples(
    client: AsyncTestClient, admin_headers: H, task_body: Any
) -> None:
    """AttemptData's skipped_lines/skipped_samples (agent-side malformed lines) are kept on the run
    (first samples only), once per batch seq, and named in the trace; a batch of only skipped
    lines stores no point."""
    exp = await _experiment(client, admin_headers)
    run = await _run(client, admin_headers, task_body, exp, lr=1)
    plugins = client.app.state.plugins
    tid = uuid.UUID(run["id"])
    batches = [
        (1, [{"name": "loss", "step": 1, "value": 0.5}], 2, ["line 2: not JSON: x", "line 3: y"]),
        (2, [], 4, [f"line {n}: not a JSON object: [1]" for n in range(4, 8)]),
        (2, [], 4, [f"line {n}: not a JSON object: [1]" for n in range(4, 8)]),  # a resend
    ]
    for seq, items, skipped, samples in batches:
        async with client.app.state.sessions() as s:
            handled = await plugins.attempt_data(
                s, tid, 1, "metrics", seq, items, skipped_lines=skipped, skipped_samples=samples
            )
            await s.commit()
        assert handled == ["research"]
    detail = (
        await client.get(f"/api/research/experiments/{exp['id']}", headers=admin_headers)
    ).json()
    (r,) = detail["runs"]
    assert r["skipped_lines"] == 6 and r["metrics"]["loss"]["points"] == 1
    assert r["skipped_samples"] == [
        "line 2: not JSON: x",
        "line 3: y",
        "line 4: not a JSON object: [1]",
        "line 5: not a JSON object: [1]",
        "line 6: not a JSON object: [1]",
    ]
    trace = (await client.get(f"/api/tasks/{run['id']}/trace", headers=admin_headers)).json()
    skipped = [
        e["payload"]["skipped"] for e in trace["items"] if e["kind"] == "research.metrics_skipped"
    ]
    assert skipped == [2, 4]
