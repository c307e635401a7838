"""Pipelines on real server processes and real agents (the SubprocessTestRunner: commands run
as local processes, no Docker): two instances on one database start every step exactly once;
a server killed with SIGKILL mid-pipeline loses nothing (the startup reconcile of tasks that
ended while no listener ran is tested in test_pipelines_api)."""

from __future__ import annotations

import signal
from collections import Counter
from typing import Any

import httpx

from tests.integration.conftest import (
    agent_factory,  # noqa: F401 - the fixture, shared with tests/integration
    task_body,
    wait_for,
    wait_online,
    wait_state,
)


def _defaults() -> dict[str, Any]:
    body = task_body("true", max_attempts=1)
    for k in ("name", "command"):
        body.pop(k)
    body["resources"] = {"cpus": 0.25, "memory_mb": 16}
    return body


def _pipeline(name: str, points: int, first: str = "echo first") -> dict[str, Any]:
    return {
        "name": name,
        "defaults": _defaults(),
        "steps": [
            {"name": "first", "task": {"command": first}},
            {
                "name": "fan",
                "depends_on": ["first"],
                "matrix": {"i": list(range(points))},
                "task": {"command": "echo point {{ matrix.i }}"},
            },
            {"name": "join", "depends_on": ["fan"], "task": {"command": "echo joined"}},
            {
                "name": "never",
                "depends_on": ["fan"],
                "when": "on_failure",
                "task": {"command": "echo never"},
            },
        ],
    }


def _get(api: httpx.Client, pid: str) -> dict[str, Any]:
    r = api.get(f"/api/pipelines/{pid}")
    assert r.status_code == 200, r.text
    return r.json()


def _final(api: httpx.Client, pid: str, timeout: float = 120) -> dict[str, Any]:
    return wait_for(
        lambda: (p := _get(api, pid))["state"] in ("succeeded", "failed", "cancelled") and p,
        timeout=timeout,
        interval=0.5,
        what=f"pipeline {pid} final",
    )


def _started_once(api: httpx.Client, pid: str) -> Counter[str]:
    kinds = api.get(f"/api/pipelines/{pid}/trace").json()["items"]
    return Counter(e["payload"]["step"] for e in kinds if e["kind"] == "step.started")


def test_two_instances_start_each_step_once(pg_cluster, live_server_factory, agent_factory):  # noqa: F811
    url = pg_cluster.fresh_database()
    one = live_server_factory(database_url=url)
    two = live_server_factory(database_url=url)
    agent_factory(one, "pl-one", cpus=4)
    agent_factory(two, "pl-two", cpus=4)
    with one.api() as api1, two.api() as api2:
        wait_online(api1, "pl-one", "pl-two")
        ids = []
        for i in range(4):
            api = api1 if i % 2 else api2
            r = api.post("/api/pipelines", json=_pipeline(f"two-{i}", points=6))
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        for pid in ids:
            p = _final(api1, pid)
            assert p["state"] == "succeeded", p
            assert p["step_counts"] == {"succeeded": 3, "skipped": 1}
            fan = next(s for s in p["steps"] if s["name"] == "fan")
            assert len({pt["task_id"] for pt in fan["points"]}) == 6
            assert _started_once(api2, pid) == {"first": 1, "fan": 1, "join": 1}
        # exactly the tasks the steps named: 1 + 6 + 1 per pipeline, none twice
        tasks = api1.get("/api/tasks", params={"limit": 500}).json()["items"]
        assert len(tasks) == 4 * 8
        assert Counter(t["state"] for t in tasks) == {"succeeded": 32}


def test_server_sigkill_mid_pipeline_loses_nothing(live_server, agent_factory):  # noqa: F811
    agent_factory(live_server, "pl-k9", cpus=4)
    with live_server.api() as api:
        wait_online(api, "pl-k9")
        r = api.post("/api/pipelines", json=_pipeline("k9", points=2, first="sleep 4; echo first"))
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        (first,) = [pt["task_id"] for pt in r.json()["steps"][0]["points"]]
        wait_state(api, first, "running", timeout=60)

    # killed while the first step runs: the agent keeps the process, reconnects to the restarted
    # server and reports; the pipeline goes on from what the database holds
    live_server.stop(signal.SIGKILL)
    live_server.start()
    with live_server.api() as api:
        p = _final(api, pid)
        assert p["state"] == "succeeded", p
        assert _started_once(api, pid) == {"first": 1, "fan": 1, "join": 1}
        states = [s["state"] for s in p["steps"]]
        assert states == ["succeeded", "succeeded", "succeeded", "skipped"]
        assert next(s for s in p["steps"] if s["name"] == "first")["points"][0]["task_id"] == first
        tasks = api.get("/api/tasks", params={"limit": 500}).json()["items"]
        assert len(tasks) == 1 + 2 + 1


def test_server_sigkill_between_the_pipeline_cancel_and_its_task_cancels(
    pg_cluster, live_server_factory
):
    """The cancel commits the pipeline's state, then cancels its tasks one transaction each.
    A row lock on the step's task holds the server right there; it is killed with SIGKILL in
    that window. The restarted server's reconcile cancels the task, once."""
    import threading

    import psycopg

    from unidesk.core.db.engine import libpq_url

    url = pg_cluster.fresh_database()
    server = live_server_factory(database_url=url)
    with server.api() as api:  # no node: the step's task stays pending
        r = api.post("/api/pipelines", json=_pipeline("k9-cancel", points=1))
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        (first,) = [pt["task_id"] for pt in r.json()["steps"][0]["points"]]
    token = server.token()
    dsn = libpq_url(url)
    with psycopg.connect(dsn) as holder, psycopg.connect(dsn, autocommit=True) as watch:
        holder.execute("SELECT 1 FROM tasks WHERE id = %s FOR UPDATE", (first,))

        def cancel() -> None:  # blocks on the row lock after the pipeline's commit
            try:
                with httpx.Client(
                    base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
                ) as c:
                    c.post(f"/api/pipelines/{pid}/cancel")
            except httpx.HTTPError:
                pass  # the server is killed under it

        caller = threading.Thread(target=cancel, daemon=True)
        caller.start()
        wait_for(
            lambda: (
                watch.execute(
                    "SELECT state FROM pipelines_pipelines WHERE id = %s", (pid,)
                ).fetchone()[0]
                == "cancelled"
                or None
            ),
            timeout=30,
            what="the pipeline's cancel committed",
        )
        wait_for(  # and the task's cancel waiting for the row lock
            lambda: (
                watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                ).fetchone()[0]
                or None
            ),
            timeout=30,
            what="the task cancel waiting on the lock",
        )
        server.stop(signal.SIGKILL)
        caller.join(timeout=30)
        state = watch.execute("SELECT state FROM tasks WHERE id = %s", (first,)).fetchone()[0]
        assert state == "pending"  # the window: a cancelled pipeline with a live task
        holder.rollback()
    server.start()
    with server.api() as api:
        task = wait_state(api, first, "cancelled", timeout=60)
        assert task["state"] == "cancelled"
        p = _get(api, pid)
        assert p["state"] == "cancelled"
        assert [s["state"] for s in p["steps"]] == ["cancelled", "skipped", "skipped", "skipped"]
        trace = api.get(f"/api/tasks/{first}/trace").json()["items"]
        assert [e["kind"] for e in trace].count("task.cancelled") == 1
