"""PostgreSQL restarts and a stop of several seconds while tasks run: reports the server could
not store are answered with a Nack (or go unacknowledged) and the agents send them again on
their live sockets, so every task reaches its final state, exactly once."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx

from tests.integration.conftest import assert_one_final, submit, wait_for, wait_online


def states(api: httpx.Client, ids: list[str]) -> dict[str, str] | None:
    """Each task's state, or None while the API answers 503 (the database is away)."""
    try:
        r = api.get("/api/tasks", params={"limit": 500})
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        assert r.status_code == 503, r.text  # never a 500
        return None
    by_id = {t["id"]: t["state"] for t in r.json()["items"]}
    return {i: by_id.get(i, "?") for i in ids}


def all_final(api: httpx.Client, ids: list[str]) -> dict[str, str] | None:
    now = states(api, ids)
    if now and all(s in ("succeeded", "failed", "cancelled") for s in now.values()):
        return now
    return None


def test_postgres_restarts_and_a_stop_strand_no_task(live_server_factory, agent_factory, faulty_pg):
    server = live_server_factory(database_url=faulty_pg.url, offline_timeout_s=5)
    agents = [
        agent_factory(
            server, f"db-{i}", cpus=4, concurrency=8, env={"UNIDESK_AGENT_REPORT_RESEND_S": "2"}
        )
        for i in range(2)
    ]
    with server.api() as api:
        wait_online(api, "db-0", "db-1")
        ids = [
            submit(api, f"sleep 0.{i % 5}; echo out-{i}", resources={"cpus": 0.5})["id"]
            for i in range(40)
        ]
        faulty_pg.restart()
        time.sleep(1.0)
        faulty_pg.restart()
        time.sleep(0.5)
        faulty_pg.stop()
        time.sleep(7.0)  # longer than the offline timeout: nobody may be swept offline for it
        faulty_pg.start()
        done: dict[str, Any] = wait_for(
            lambda: all_final(api, ids), timeout=90, interval=0.5, what="every task final"
        )
        assert Counter(done.values()) == {"succeeded": len(ids)}, Counter(done.values())
        for t in ids:
            assert_one_final(api, t)
        r = api.get(f"/api/tasks/{ids[-1]}/logs")
        assert "out-39" in "".join(c["data"] for c in r.json()["items"])
    # The agents did send reports again on their live sockets (no reconnect was needed for it).
    assert "unacknowledged report(s) again" in "".join(a.log() for a in agents)
