"""The fault loop (a small nemesis, bounded to a few minutes): 100+ short busybox tasks run on two
Docker agents while a driver, one fault at a time, kills an agent (-9) and starts it again, kills
the server (-9) and starts it again, restarts PostgreSQL (``pg_ctl restart -m fast``), stops it for
a few seconds, and cuts one agent's network (a blackholing proxy) for a while (at least once
past the offline timeout, so the node is declared offline and fences itself).

At the end: every task is final, with exactly one final event; no attempt has two accepted
results (one ``task.exited`` fact at most per attempt, one succeeded attempt at most per task);
every attempt is final and its trace says why it ended; a task that did not succeed lost every
attempt to a fault (its command always exits 0); no container is left.

The seed is printed (``UNIDESK_FAULT_SEED`` replays a run)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.docker_images import BUSYBOX_IMAGE, ensure_busybox_image
from tests.gateway_agent.gitrepos import GitRepo
from tests.integration.conftest import AgentProcess, node_token, wait_for, wait_online
from tests.integration.pg_faults import FaultyPostgres
from tests.integration.tcp_proxy import FreezableProxy

pytestmark = [pytest.mark.faults, pytest.mark.docker, pytest.mark.timeout(420)]

TASKS = 110
ROUNDS = 11
OFFLINE_TIMEOUT_S = 6
FINAL = ("succeeded", "failed", "cancelled")
END_FACTS = ("task.exited", "task.attempt_lost")


class Cluster:
    """The server, its database, two Docker agents (one behind a proxy that can cut it off)."""

    def __init__(self, server: LiveServer, pg: FaultyPostgres, root: Path) -> None:
        self.server = server
        self.pg = pg
        self.root = root
        self.proxy = FreezableProxy("127.0.0.1", server.port).start()
        self.token = server.token()
        self.agents: dict[str, AgentProcess] = {}
        env = GitRepo(root / "env")
        self.env_sha = env.commit({"Dockerfile": f"FROM {BUSYBOX_IMAGE}\n"})
        code = GitRepo(root / "code")
        self.code_sha = code.commit({"run.sh": "echo begin; sleep 1; echo end\n"})
        self.repos = (env.url, code.url)
        self.log: list[str] = []

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )

    def start_agent(self, name: str, via_proxy: bool) -> None:
        with self.api() as api:
            secret = node_token(api, name)["secret"]
        url = self.proxy.url if via_proxy else self.server.url
        agent = AgentProcess(
            url,
            secret,
            name,
            self.root / f"agent-{name}",
            cpus=2,
            concurrency=4,
            env={"UNIDESK_AGENT_RUNNER": "docker", "UNIDESK_AGENT_REPORT_RESEND_S": "3"},
        )
        self.agents[name] = agent.start()

    def body(self, i: int) -> dict[str, Any]:
        env_url, code_url = self.repos
        return {
            "name": f"nemesis-{i}",
            "code_repo_url": code_url,
            "code_commit_id": self.code_sha,
            "env_repo_url": env_url,
            "env_commit_id": self.env_sha,
            "dockerfile_path": "Dockerfile",
            "command": ["sh", "run.sh"],
            "resources": {"cpus": 0.25, "memory_mb": 64},
            "timeout_s": 120,
            "max_attempts": 6,
        }

    def submit(self, i: int, deadline_s: float = 60.0) -> None:
        """Submit task ``i``, retrying while the server or its database is away (503, refused)."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                with self.api() as api:
                    r = api.post("/api/tasks", json=self.body(i))
                if r.status_code == 201:
                    return
                assert r.status_code == 503, r.text  # the database is away: never a 500
            except httpx.HTTPError:
                pass  # the server restarts (a lost answer may leave a duplicate: it counts too)
            assert time.monotonic() < deadline, f"task {i} could not be submitted"
            time.sleep(0.5)

    # -- faults -----------------------------------------------------------------------------

    def kill_agent(self, rng: random.Random) -> None:
        name = rng.choice(sorted(self.agents))
        self.agents[name].kill(signal.SIGKILL)
        time.sleep(rng.uniform(0.5, 3))
        self.agents[name].start()
        self.log.append(f"kill -9 agent {name}, started again")

    def kill_server(self, rng: random.Random) -> None:
        self.server.stop(signal.SIGKILL)
        time.sleep(rng.uniform(0.2, 1.5))
        self.server.start()
        self.log.append("kill -9 server, started again")

    def restart_pg(self, rng: random.Random) -> None:
        self.pg.restart()
        self.log.append("pg_ctl restart -m fast")

    def stop_pg(self, rng: random.Random) -> None:
        self.pg.stop()
        pause = rng.uniform(2, 5)
        time.sleep(pause)
        self.pg.start()
        self.log.append(f"PostgreSQL stopped {pause:.1f} s")

    def cut_network(self, rng: random.Random) -> None:
        # The first cut outlasts the offline timeout (the node is declared offline and fences
        # itself); later ones are drawn either side of it.
        long_cut = not any("network cut" in f for f in self.log)
        pause = (
            rng.uniform(OFFLINE_TIMEOUT_S + 1, OFFLINE_TIMEOUT_S + 3)
            if long_cut
            else rng.uniform(2, 2 * OFFLINE_TIMEOUT_S)
        )
        self.proxy.cut()
        time.sleep(pause)
        self.proxy.heal()
        self.log.append(f"agent network cut {pause:.1f} s")

    def close(self) -> None:
        for agent in self.agents.values():
            agent.stop()
        self.proxy.close()


def _all_tasks(api: httpx.Client) -> list[dict[str, Any]]:
    r = api.get("/api/tasks", params={"limit": 500})
    r.raise_for_status()
    return r.json()["items"]  # type: ignore[no-any-return]


def _containers(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        out += subprocess.run(
            ["docker", "ps", "-a", "-q", "--filter", f"label=unidesk.node={name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    return out


def _check_task(api: httpx.Client, task_id: str) -> dict[str, Any]:
    task = api.get(f"/api/tasks/{task_id}").json()
    trace = api.get(f"/api/tasks/{task_id}/trace").json()["items"]
    kinds = [e["kind"] for e in trace]
    where = (task["state"], [(a["state"], a["reason"]) for a in task["attempts"]], kinds)
    assert task["state"] in FINAL, where
    assert [k for k in kinds if k in ("task.succeeded", "task.failed", "task.cancelled")] == [
        f"task.{task['state']}"
    ], where
    assert kinds[0] == "task.submitted", where
    # No attempt has two accepted results; at most one succeeded attempt per task.
    exited = Counter(e["payload"]["attempt_no"] for e in trace if e["kind"] == "task.exited")
    assert all(n == 1 for n in exited.values()), where
    assert sum(a["state"] == "succeeded" for a in task["attempts"]) <= 1, where
    # Every attempt is final, and its trace says why it ended.
    for a in task["attempts"]:
        assert a["state"] in ("succeeded", "failed", "lost", "cancelled"), where
        facts = [
            e
            for e in trace
            if e["kind"] in END_FACTS and e["payload"].get("attempt_no") == a["attempt_no"]
        ]
        assert len(facts) == 1, (a, where)
    if task["state"] != "succeeded":  # the command always exits 0: only faults can explain it
        assert task["attempts"] and all(
            a["reason"] in ("node_lost", "infra_error") and a["message"] for a in task["attempts"]
        ), where
    return task  # type: ignore[no-any-return]


def test_fault_loop(live_server_factory, faulty_pg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ensure_busybox_image()
    seed = int(os.environ.get("UNIDESK_FAULT_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    print(f"fault loop seed {seed}")
    server = live_server_factory(
        database_url=faulty_pg.url,
        offline_timeout_s=OFFLINE_TIMEOUT_S,
        dispatch_ack_timeout_s=2,
    )
    cluster = Cluster(server, faulty_pg, tmp_path)
    try:
        cluster.start_agent("nemesis-a", via_proxy=False)
        cluster.start_agent("nemesis-b", via_proxy=True)
        with cluster.api() as api:
            wait_online(api, "nemesis-a", "nemesis-b", timeout=60)
        faults = [
            cluster.kill_agent,
            cluster.kill_server,
            cluster.restart_pg,
            cluster.stop_pg,
            cluster.cut_network,
        ]
        order = faults * (ROUNDS // len(faults) + 1)
        rng.shuffle(order)
        per_round = TASKS // ROUNDS
        for r in range(ROUNDS):
            for i in range(r * per_round, (r + 1) * per_round):
                cluster.submit(i)
            order[r](rng)
            time.sleep(rng.uniform(0.5, 2.5))
        print("faults:", "; ".join(cluster.log))

        with cluster.api() as api:
            wait_online(api, "nemesis-a", "nemesis-b", timeout=60)

            def settled() -> list[dict[str, Any]] | None:
                try:
                    tasks = _all_tasks(api)
                except httpx.HTTPError:
                    return None
                return tasks if all(t["state"] in FINAL for t in tasks) else None

            tasks = wait_for(settled, timeout=150, interval=1.0, what="every task final")
            assert len(tasks) >= TASKS
            checked = [_check_task(api, t["id"]) for t in tasks]
            print(
                "tasks:",
                dict(Counter(t["state"] for t in checked)),
                "attempts:",
                dict(Counter(a["state"] for t in checked for a in t["attempts"])),
            )
            assert sum(t["state"] == "succeeded" for t in checked) > 0
        wait_for(
            lambda: _containers(sorted(cluster.agents)) == [] or None,
            timeout=30,
            what="no container left",
        )
    finally:
        cluster.close()
