"""Two agents and the server's own local agent against one real server: labels, resources,
unschedulable tasks, drain/undrain and cancel, all through real processes."""

from __future__ import annotations

import time
from datetime import datetime

from tests.integration.conftest import (
    assert_one_final,
    events,
    get_task,
    submit,
    trace_kinds,
    wait_for,
    wait_online,
    wait_state,
)


def _max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = cur = 0
    for _, step in points:
        cur += step
        best = max(best, cur)
    return best


def test_three_nodes_labels_resources_and_unschedulable(live_server_factory, agent_factory):
    server = live_server_factory(
        local_agent=True, local_agent_runner="subprocess-test", local_agent_labels="role=main"
    )
    # The agent declares at most the CPUs it detects (2 here), so the two differ as 1 and 2.
    agent_factory(server, "node-a", labels={"gpu": "a"}, cpus=1)
    agent_factory(server, "node-b", labels={"gpu": "b"}, cpus=2)
    with server.api() as api:
        nodes = wait_online(api, "node-a", "node-b")
        local = wait_for(
            lambda: [
                n
                for n in api.get("/api/nodes").json()["items"]
                if n["labels"].get("role") == "main" and n["state"] == "online"
            ],
            what="local agent online",
        )
        assert len(local) == 1 and len(nodes) == 3
        assert nodes["node-a"]["cpus"] == 1 and nodes["node-b"]["cpus"] == 2
        assert nodes["node-a"]["labels"] == {"gpu": "a"}

        on_a = submit(api, "echo on-a", resources={"labels": {"gpu": "a"}})
        on_b = submit(api, "echo on-b", resources={"labels": {"gpu": "b"}})
        on_main = submit(api, "echo on-main", resources={"labels": {"role": "main"}})
        for task, node in ((on_a, "node-a"), (on_b, "node-b"), (on_main, local[0]["name"])):
            done = wait_state(api, task["id"])
            assert done["state"] == "succeeded", done
            assert [a["node_name"] for a in done["attempts"]] == [node]
            logs = api.get(f"/api/tasks/{task['id']}/logs", params={"attempt": 1})
            assert logs.status_code == 200 and "on-" in logs.text, logs.text
            assert_one_final(api, task["id"])

        too_big = submit(api, "echo never", resources={"cpus": 64})
        waiting = wait_for(
            lambda: (t := get_task(api, too_big["id"]))["unschedulable_reason"] and t,
            what="unschedulable reason",
        )
        assert waiting["state"] == "pending"
        assert (
            "needs 64 CPUs" in waiting["unschedulable_reason"]
            and "largest matching node has 2" in waiting["unschedulable_reason"]
        )
        assert "task.unschedulable" in trace_kinds(api, too_big["id"])
        no_label = submit(api, "echo never", resources={"labels": {"gpu": "zzz"}})
        reason = wait_for(
            lambda: get_task(api, no_label["id"])["unschedulable_reason"], what="label reason"
        )
        assert "no online node has labels gpu=zzz" in reason

        # node-b has 2 CPUs: four 1-CPU tasks run at most two at a time there.
        batch = [
            submit(api, "sleep 1.5", resources={"labels": {"gpu": "b"}, "cpus": 1})
            for _ in range(4)
        ]
        ended = [wait_state(api, t["id"], timeout=60) for t in batch]
        assert all(t["state"] == "succeeded" for t in ended), [t["state"] for t in ended]
        spans = [
            (
                datetime.fromisoformat(t["attempts"][0]["assigned_at"]),
                datetime.fromisoformat(t["attempts"][0]["finished_at"]),
            )
            for t in ended
        ]
        assert _max_overlap(spans) == 2, spans

        for t in (too_big, no_label):
            assert api.post(f"/api/tasks/{t['id']}/cancel").json()["state"] == "cancelled"
            assert_one_final(api, t["id"])


def test_drain_keeps_new_work_off_a_node(live_server, agent_factory):
    agent_factory(live_server, "drain-a", labels={"pool": "x"}, cpus=2)
    agent_factory(live_server, "drain-b", labels={"pool": "x"}, cpus=2)
    with live_server.api() as api:
        nodes = wait_online(api, "drain-a", "drain-b")
        a_id = nodes["drain-a"]["id"]
        r = api.post(f"/api/nodes/{a_id}/drain")
        assert r.status_code == 200 and r.json()["draining"] is True
        tasks = [
            submit(api, "echo drained", resources={"labels": {"pool": "x"}, "cpus": 0.5})
            for _ in range(6)
        ]
        ended = [wait_state(api, t["id"]) for t in tasks]
        assert {a["node_name"] for t in ended for a in t["attempts"]} == {"drain-b"}
        assert all(t["state"] == "succeeded" for t in ended)

        # Only node-a can run this one: it waits while node-a drains, then runs after undrain.
        api.post(f"/api/nodes/{nodes['drain-b']['id']}/drain").raise_for_status()
        held = submit(api, "echo held", resources={"labels": {"pool": "x"}})
        time.sleep(2.0)
        assert get_task(api, held["id"])["state"] == "pending"
        assert api.post(f"/api/nodes/{a_id}/undrain").json()["draining"] is False
        done = wait_state(api, held["id"])
        assert done["state"] == "succeeded" and done["attempts"][0]["node_name"] == "drain-a"


def test_cancel_reaches_the_running_node(live_server, agent_factory):
    agent = agent_factory(live_server, "cancel-a", cpus=2)
    with live_server.api() as api:
        wait_online(api, "cancel-a")
        task = submit(api, "echo started; sleep 60")
        wait_state(api, task["id"], "running", timeout=30)
        r = api.post(f"/api/tasks/{task['id']}/cancel")
        assert r.status_code == 200 and r.json()["state"] == "cancelling", r.text
        done = wait_state(api, task["id"], timeout=20)
        assert done["state"] == "cancelled"
        assert done["attempts"][0]["state"] == "cancelled"
        kinds = trace_kinds(api, task["id"])
        assert (
            kinds.index("task.cancel_requested")
            < kinds.index("task.cancelling")
            < kinds.index("task.cancelled")
        )
        assert "task.exited" in kinds  # the node reported the kill
        assert_one_final(api, task["id"])
        assert agent.proc is not None and agent.proc.poll() is None


def test_cancel_when_the_node_is_offline_ends_at_once(live_server_factory, agent_factory):
    # A long offline timeout: the node is gone (socket closed) but not yet swept offline.
    server = live_server_factory(offline_timeout_s=60)
    agent = agent_factory(server, "cancel-off", cpus=2)
    with server.api() as api:
        node = wait_online(api, "cancel-off")["cancel-off"]
        task = submit(api, "sleep 60")
        wait_state(api, task["id"], "running", timeout=30)
        agent.kill()
        wait_for(lambda: events(api, "node.disconnected", node["id"]), what="node.disconnected")
        r = api.post(f"/api/tasks/{task['id']}/cancel")
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "cancelled", r.json()
        assert r.json()["attempts"][0]["state"] == "cancelled"
        cancelled = list(events(api, "task.cancelled", task["id"]))
        assert len(cancelled) == 1 and cancelled[0]["payload"]["node_offline"] is True
        assert_one_final(api, task["id"])
