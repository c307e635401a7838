"""/metrics and /health/ready against a real server process on its own PostgreSQL, which the test
stops.

A real ``unidesk-agent`` (test-only subprocess runner) connects and runs a task, so node,
heartbeat, WebSocket and dispatch-latency figures come from the real flow. The exposition is
parsed with ``prometheus_client``'s own parser.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from unidesk.core.db.embedded import EmbeddedPostgres
from unidesk.core.ops.metrics import DISPATCH_BUCKETS_S, Family, render

SHA = "e" * 40


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(f"{url}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def wait_for(predicate: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while True:
        value = predicate()
        if value:
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, f"{what} not seen within {timeout}s"
        time.sleep(0.2)


@pytest.fixture
def own_pg(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(tmp_path / "own-pg", database="metrics")
    yield pg
    pg.stop()


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(server_url: str, secret: str) -> subprocess.Popen[bytes]:
        (tmp_path / "tok").write_text(secret)
        log = open(tmp_path / "agent.log", "wb")
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "unidesk.gateway_agent.cli",
                "--server",
                server_url,
                "--token-file",
                str(tmp_path / "tok"),
                "--runner",
                "subprocess-test",
                "--node-name",
                "metrics-node",
                "--state-dir",
                str(tmp_path / "st"),
                "--cache-dir",
                str(tmp_path / "cache"),
            ],
            env={k: v for k, v in os.environ.items() if not k.startswith("UNIDESK_")},
            stdout=log,
            stderr=log,
        )
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def test_metrics_and_readiness_follow_the_database(
    own_pg: EmbeddedPostgres, live_server_factory: Any, agent: Any
) -> None:
    url = own_pg.start()
    server = live_server_factory(database_url=url)
    r = httpx.get(f"{server.url}/health/ready")
    assert r.status_code == 200 and r.json()["status"] == "ready", r.text
    assert set(r.json()["checks"]) >= {"database", "migrations", "plugins"}
    health = httpx.get(f"{server.url}/health").json()
    assert health["version"] and health["commit"]

    with server.api() as api:
        secret = api.post("/api/node-tokens", json={"name": "m"}).json()["secret"]
        agent(server.url, secret)
        wait_for(
            lambda: scrape(server.url).get(("unidesk_nodes", (("state", "online"),))) == 1,
            30,
            "node online",
        )
        r = api.post(
            "/api/tasks",
            json={
                "code_repo_url": "file:///srv/c",
                "code_commit_id": SHA,
                "env_repo_url": "file:///srv/e",
                "env_commit_id": SHA,
                "dockerfile_path": "Dockerfile",
                "command": "echo hi",
                "resources": {"cpus": 0.5, "memory_mb": 64},
            },
        )
        assert r.status_code == 201, r.text
        task_id = r.json()["id"]
        wait_for(
            lambda: api.get(f"/api/tasks/{task_id}").json()["state"] == "succeeded",
            30,
            "task succeeded",
        )
    m = scrape(server.url)
    assert m[("unidesk_database_up", ())] == 1 and m[("unidesk_ready", ())] == 1
    assert (
        m[("unidesk_tasks", (("state", "succeeded"),))] == 1
        and m[("unidesk_tasks", (("state", "pending"),))] == 0
    )
    assert m[("unidesk_dispatch_latency_seconds_count", ())] == 1
    assert m[("unidesk_dispatch_latency_seconds_bucket", (("le", "+Inf"),))] == 1
    assert 0 <= m[("unidesk_dispatch_latency_seconds_sum", ())] < 30
    buckets = [
        m[("unidesk_dispatch_latency_seconds_bucket", (("le", str(b)),))]
        for b in DISPATCH_BUCKETS_S
    ]
    assert buckets == sorted(buckets)  # cumulative
    assert m[("unidesk_websocket_connections", (("kind", "agent"),))] == 1
    assert 0 <= m[("unidesk_node_heartbeat_age_seconds", (("node", "metrics-node"),))] < 10
    assert m[("unidesk_event_bus_up", ())] == 1 and m[("unidesk_event_bus_lag_events", ())] >= 0
    assert m[("unidesk_nodes", (("state", "offline"),))] == 0

    own_pg.stop()
    seen = wait_for(
        lambda: httpx.get(f"{server.url}/health/ready", timeout=10).status_code == 503,
        10,
        "readiness 503",
    )
    body = httpx.get(f"{server.url}/health/ready", timeout=10).json()
    assert body["status"] == "not ready" and any(
        reason.startswith("database:") for reason in body["reasons"]
    )
    m = scrape(server.url)
    assert m[("unidesk_database_up", ())] == 0 and m[("unidesk_ready", ())] == 0
    assert (
        "unidesk_tasks",
        (("state", "succeeded"),),
    ) not in m  # no stale figures from a database that is gone
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 503
    print(f"\nreadiness reported the stopped database after {seen:.2f} s")

    own_pg.start()
    wait_for(
        lambda: httpx.get(f"{server.url}/health/ready", timeout=10).status_code == 200,
        20,
        "readiness back",
    )
    assert scrape(server.url)[("unidesk_database_up", ())] == 1


async def test_ready_and_metrics_in_process(client: AsyncTestClient) -> None:
    r = await client.get("/health/ready")
    assert r.status_code == 200 and r.json()["checks"]["database"] == "ok"
    r = await client.get("/metrics")
    assert r.status_code == 200
    names = {f.name for f in text_string_to_metric_families(r.text)}
    assert {
        "unidesk_nodes",
        "unidesk_tasks",
        "unidesk_dispatch_latency_seconds",
        "unidesk_build_info",
        "unidesk_node_heartbeat_age_seconds",
        "unidesk_event_bus_lag_events",
        "unidesk_backup_last_success_timestamp_seconds",
        "unidesk_database_bytes",
    } <= names


def test_render_escapes_labels() -> None:
    text = render([Family("x_total", "counter", "help").add(1.5, node='a"b\\c\nd')])
    [fam] = list(text_string_to_metric_families(text))
    assert fam.samples[0].labels == {"node": 'a"b\\c\nd'} and fam.samples[0].value == 1.5
