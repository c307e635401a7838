"""Faults with real agent processes: a node token used by two agents at once, a revoked token,
and a server restart (graceful and kill -9) while tasks run."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from tests.integration.conftest import (
    assert_one_final,
    events,
    node_token,
    nodes_by_name,
    submit,
    wait_for,
    wait_online,
    wait_state,
)


def test_token_reused_newest_connection_wins(live_server, agent_factory):
    with live_server.api() as api:
        created = node_token(api, "shared")
        first = agent_factory(live_server, "dup-first", secret=created["secret"], cpus=2)
        wait_online(api, "dup-first")
        task = submit(api, "sleep 30")
        wait_state(api, task["id"], "running", timeout=30)

        second = agent_factory(live_server, "dup-second", secret=created["secret"], cpus=2)
        assert first.wait(30) == 75  # replaced: a final refusal, no reconnect loop
        assert (
            "another agent connected with this node token" in first.log()
            and "giving up" in first.log()
        )
        assert "close 4409" in first.log()
        time.sleep(1.5)
        assert second.proc is not None and second.proc.poll() is None
        nodes = [n for n in api.get("/api/nodes").json()["items"] if n["state"] == "online"]
        assert len(nodes) == 1  # one token, one node: the newest connection holds it
        connected = events(api, "node.connected", nodes[0]["id"])
        assert (
            connected[-1]["payload"]["replaced_connection"]
            == connected[-2]["payload"]["connection_id"]
        )

        # The newcomer does not run the attempt the first agent had: it is lost and retried there.
        done = wait_state(api, task["id"], ("running",), timeout=30)
        assert [a["state"] for a in done["attempts"]] == ["lost", "running"]
        assert api.post(f"/api/tasks/{task['id']}/cancel").status_code == 200
        assert wait_state(api, task["id"], timeout=20)["state"] == "cancelled"
        assert_one_final(api, task["id"])

        # Revoking the token ends the remaining agent for good, within about a heartbeat.
        assert api.delete(f"/api/node-tokens/{created['token']['id']}").status_code == 204
        assert second.wait(15) == 77
        assert "revoked" in second.log() and created["secret"] not in second.log()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["graceful", "kill-9"])
def test_server_restart_while_tasks_run(live_server, agent_factory, how):
    agents = [agent_factory(live_server, name, cpus=2) for name in ("rs-a", "rs-b")]
    with live_server.api() as api:
        wait_online(api, "rs-a", "rs-b")
        tasks = [
            submit(api, "sleep 3; echo finished", resources={"cpus": 0.5})["id"] for _ in range(6)
        ]
        wait_for(
            lambda: all(api.get(f"/api/tasks/{t}").json()["state"] == "running" for t in tasks),
            timeout=30,
            what="all running",
        )
    live_server.stop(how)
    time.sleep(1.0)
    live_server.start()
    with live_server.api() as api:
        wait_online(api, "rs-a", "rs-b")
        done = [wait_state(api, t, timeout=60) for t in tasks]
        assert Counter(t["state"] for t in done) == {"succeeded": 6}
        from tests.integration.conftest import trace_kinds

        assert all([a["state"] for a in t["attempts"]] == ["succeeded"] for t in done), [
            (
                [(a["state"], a["reason"], a["message"]) for a in t["attempts"]],
                trace_kinds(api, t["id"]),
            )
            for t in done
        ]
        for t in tasks:
            assert_one_final(api, t)
            assert (
                Counter(k for k in (e["kind"] for e in events(api, subject_id=t)))["task.exited"]
                == 1
            )
        if how == signal.SIGTERM:  # closed with 1001: redialled on the short restart bound
            assert all("(the server is restarting)" in a.log() for a in agents)
        # Past the restart grace: nobody was marked offline, nothing was lost or requeued.
        time.sleep(5.0)
        assert events(api, "node.offline") == []
        assert events(api, "task.attempt_lost") == [] and events(api, "task.retried") == []
        assert {n["state"] for n in nodes_by_name(api).values()} == {"online"}
