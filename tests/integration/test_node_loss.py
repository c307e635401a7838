"""A node that dies (kill -9) or whose network goes silent (no FIN): it goes offline after the
timeout, its attempt is lost, and the task is retried on another node exactly once. A node cut
off for longer than the offline timeout stops its own attempt (self-fence) and, once the network
is back, reports it ``killed`` with that reason: the late report changes nothing."""

from __future__ import annotations

import time

from tests.integration.conftest import (
    assert_one_final,
    events,
    submit,
    trace_kinds,
    wait_for,
    wait_online,
    wait_state,
)
from tests.integration.tcp_proxy import FreezableProxy


def _assert_retried_elsewhere(api, task_id: str, lost_node: str, other: str) -> dict:  # type: ignore[no-untyped-def]
    done = wait_state(api, task_id, timeout=60)
    assert done["state"] == "succeeded", done
    assert [(a["node_name"], a["state"]) for a in done["attempts"]] == [
        (lost_node, "lost"),
        (other, "succeeded"),
    ]
    assert done["attempts"][0]["reason"] == "node_lost"
    kinds = trace_kinds(api, task_id)
    last_assigned = len(kinds) - 1 - kinds[::-1].index("task.assigned")
    assert (
        kinds.index("task.started")
        < kinds.index("task.attempt_lost")
        < kinds.index("task.retried")
        < last_assigned
        < kinds.index("task.succeeded")
    ), kinds
    assert kinds.count("task.assigned") == 2 and kinds.count("task.retried") == 1
    assert_one_final(api, task_id)
    return done


def test_kill_9_moves_the_node_offline_and_retries_elsewhere(live_server, agent_factory):
    first = agent_factory(live_server, "victim", labels={"pool": "x"}, cpus=2)
    with live_server.api() as api:
        nodes = wait_online(api, "victim")
        task = submit(api, "sleep 10; echo done", resources={"labels": {"pool": "x"}})
        running = wait_state(api, task["id"], "running", timeout=30)
        assert running["attempts"][0]["node_name"] == "victim"
        agent_factory(live_server, "survivor", labels={"pool": "x"}, cpus=2)
        wait_online(api, "survivor")
        killed_at = time.monotonic()
        first.kill()
        offline = wait_for(
            lambda: (
                (n := api.get(f"/api/nodes/{nodes['victim']['id']}").json())["state"] == "offline"
                and n
            ),
            timeout=30,
            what="victim offline",
        )
        # Offline after the timeout (4 s in these tests), not at the disconnect.
        assert time.monotonic() - killed_at >= 3.0
        assert offline["running_attempts"] == []
        ev = events(api, "node.offline", nodes["victim"]["id"])
        assert len(ev) == 1 and ev[0]["payload"]["reason"] == "no heartbeat"
        _assert_retried_elsewhere(api, task["id"], "victim", "survivor")


def test_silent_network_loss_without_fin(live_server, agent_factory, tmp_path):
    # The attempt runs until the test lets it end, so the frozen node's copy is still running
    # when the network goes (however slowly the second agent starts) and the retry ends at once.
    go = tmp_path / "go"
    proxy = FreezableProxy("127.0.0.1", live_server.port).start()
    try:
        frozen_agent = agent_factory(
            _Via(live_server, proxy.url), "frozen", labels={"pool": "y"}, cpus=2
        )
        with live_server.api() as api:
            nodes = wait_online(api, "frozen")
            task = submit(
                api,
                f"until [ -e {go} ]; do sleep 0.1; done; echo done",
                resources={"labels": {"pool": "y"}},
            )
            wait_state(api, task["id"], "running", timeout=30)
            agent_factory(live_server, "direct", labels={"pool": "y"}, cpus=2)
            wait_online(api, "direct")
            proxy.cut()
            wait_for(
                lambda: api.get(f"/api/nodes/{nodes['frozen']['id']}").json()["state"] == "offline",
                timeout=30,
                what="frozen node offline",
            )
            assert (
                frozen_agent.proc is not None and frozen_agent.proc.poll() is None
            )  # it never saw a FIN
            # the server gives up on the silent socket at about the moment the node times out:
            # either may come first, the disconnect is recorded either way
            wait_for(
                lambda: events(api, "node.disconnected", nodes["frozen"]["id"]),
                timeout=30,
                what="the server closed the silent socket",
            )
            go.touch()
            _assert_retried_elsewhere(api, task["id"], "frozen", "direct")
    finally:
        proxy.close()


def test_cut_off_node_self_fences_and_reports_killed_when_back(live_server, agent_factory):
    proxy = FreezableProxy("127.0.0.1", live_server.port).start()
    try:
        cut_agent = agent_factory(_Via(live_server, proxy.url), "island", labels={"pool": "z"})
        with live_server.api() as api:
            nodes = wait_online(api, "island")
            task = submit(api, "sleep 15; echo done", resources={"labels": {"pool": "z"}})
            wait_state(api, task["id"], "running", timeout=30)
            agent_factory(live_server, "mainland", labels={"pool": "z"}, cpus=2)
            wait_online(api, "mainland")
            proxy.cut()
            # Past the offline timeout the island stops its own copy: two never run for long.
            wait_for(
                lambda: f"{task['id']}/1 ended: killed" in cut_agent.log(),
                timeout=30,
                what="the cut-off agent stopped its attempt",
            )
            assert "no contact with the server" in cut_agent.log()
            wait_for(
                lambda: api.get(f"/api/nodes/{nodes['island']['id']}").json()["state"] == "offline",
                timeout=30,
                what="island offline",
            )
            proxy.heal()
            wait_online(api, "island", timeout=30)
            stale = wait_for(
                lambda: events(api, "task.stale_report", task["id"]),
                timeout=30,
                what="the late report of the fenced attempt",
            )
            payload = stale[0]["payload"]
            assert (payload["attempt_no"], payload["reason"]) == (1, "node_lost")
            assert "self-fenced" in payload["message"]
            done = _assert_retried_elsewhere(api, task["id"], "island", "mainland")
            assert done["attempts"][0]["reason"] == "node_lost"
    finally:
        proxy.close()


class _Via:
    """A live server as seen through another URL (the proxy): tokens via the real API."""

    def __init__(self, server, url: str) -> None:  # type: ignore[no-untyped-def]
        self._server = server
        self.url = url

    def api(self):  # type: ignore[no-untyped-def]
        return self._server.api()


def test_short_silent_cut_keeps_the_attempt_and_every_log_line(live_server, agent_factory):
    """A cut shorter than the offline timeout that the connection survives (no FIN, bytes held
    and then delivered): the attempt runs on, once, and the lines written during the cut reach
    the server after it, all of them in order."""
    proxy = FreezableProxy("127.0.0.1", live_server.port).start()
    try:
        agent_factory(_Via(live_server, proxy.url), "blip", labels={"pool": "w"})
        with live_server.api() as api:
            wait_online(api, "blip")
            task = submit(
                api,
                "for i in $(seq 1 40); do echo line-$i; sleep 0.1; done",
                resources={"labels": {"pool": "w"}},
            )
            wait_state(api, task["id"], "running", timeout=30)
            proxy.pause()
            time.sleep(1.5)  # half the tests' 3 s offline timeout
            proxy.resume()
            done = wait_state(api, task["id"], timeout=60)
            assert done["state"] == "succeeded", done
            assert [(a["node_name"], a["state"]) for a in done["attempts"]] == [
                ("blip", "succeeded")
            ]
            items = api.get(f"/api/tasks/{task['id']}/logs", params={"limit": 1000}).json()
            text = "".join(c["data"] for c in items["items"] if c["stream"] == "stdout")
            assert text.split() == [f"line-{i}" for i in range(1, 41)], text
            assert_one_final(api, task["id"])
    finally:
        proxy.close()
