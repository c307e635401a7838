"""Host workspaces through a real server, a real agent (Docker runner) and real containers: a
node declares a real host directory by name; a task asking for it as its workspace sees and
writes the host's files there (and nothing else of the host); a task asking for a name no
node declares waits with the reason; bad requests are 400s."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.docker_images import BUSYBOX_IMAGE, ensure_busybox_image
from tests.gateway_agent.gitrepos import GitRepo
from tests.integration.conftest import (
    AgentProcess,
    get_task,
    node_token,
    wait_for,
    wait_online,
    wait_state,
)


def _logs(api: Any, task_id: str) -> str:
    return "".join(i["data"] for i in api.get(f"/api/tasks/{task_id}/logs").json()["items"])


def test_task_works_in_a_declared_host_directory(live_server: Any, tmp_path: Path) -> None:
    ensure_busybox_image()
    home = tmp_path / "host" / "home-ubuntu"
    home.mkdir(parents=True)
    (home / "notes.txt").write_text("from the host\n")
    os.chmod(home, 0o777)  # the container user (root or not) may write here
    (tmp_path / "host" / "secret.txt").write_text("outside the declared directory\n")
    data = tmp_path / "host" / "data"
    data.mkdir()
    (data / "set.csv").write_text("a,b\n")
    env = GitRepo(tmp_path / "env")
    env_sha = env.commit({"Dockerfile": f"FROM {BUSYBOX_IMAGE}\n"})
    code = GitRepo(tmp_path / "code")
    code_sha = code.commit({"run.sh": "echo code-checkout\n"})
    with live_server.api() as api:
        agent = AgentProcess(
            live_server.url, node_token(api, "wsl-node")["secret"], "wsl-node", tmp_path / "agent"
        )
        agent.env.update(
            {
                "UNIDESK_AGENT_RUNNER": "docker",
                "UNIDESK_AGENT_HOST_MOUNTS": f"home={home}:rw,data={data}",
            }
        )
        agent.start()
        try:
            node = wait_online(api, "wsl-node")["wsl-node"]
            assert node["host_mounts"] == {"home": "rw", "data": "ro"}
            base = {
                "code_repo_url": code.url,
                "code_commit_id": code_sha,
                "env_repo_url": env.url,
                "env_commit_id": env_sha,
                "dockerfile_path": "Dockerfile",
                "resources": {"cpus": 0.5, "memory_mb": 64},
                "timeout_s": 120,
            }
            script = (
                "pwd; cat notes.txt; echo written-by-task > from-task.txt; sh /code/run.sh;"
                " cat /data/set.csv; (echo x > /data/new.txt) 2>/dev/null || echo data-read-only;"
                " cat ../secret.txt 2>/dev/null || echo no-secret; ls /code"
            )
            r = api.post(
                "/api/tasks",
                json={
                    **base,
                    "command": ["sh", "-c", script],
                    "workspace": "home",
                    "mounts": {"data": "/data"},
                },
            )
            assert r.status_code == 201, r.text
            task = wait_state(api, r.json()["id"], timeout=120)
            out = _logs(api, task["id"])
            assert task["state"] == "succeeded", (task, out, agent.log()[-3000:])
            for line in (
                "/workspace",
                "from the host",
                "code-checkout",
                "a,b",
                "data-read-only",
                "no-secret",
                "run.sh",
            ):
                assert line in out, (line, out)
            assert (home / "from-task.txt").read_text() == "written-by-task\n"
            assert not (data / "new.txt").exists()
            # Nothing of the platform's lands in the host directory.
            assert sorted(p.name for p in home.iterdir()) == ["from-task.txt", "notes.txt"]

            r = api.post(
                "/api/tasks",
                json={**base, "command": ["true"], "mounts": {"scratch": "/scratch"}},
            )
            assert r.status_code == 201, r.text
            waiting = wait_for(
                lambda: (
                    (t := get_task(api, r.json()["id"]))["unschedulable_reason"]
                    and t["state"] == "pending"
                    and t
                ),
                timeout=30,
            )
            assert "host mounts scratch" in waiting["unschedulable_reason"]
            assert api.post(f"/api/tasks/{waiting['id']}/cancel").status_code == 200

            for bad in (
                {"mounts": {"home": "relative/path"}},
                {"mounts": {"home": "/workspace/x"}},
                {"mounts": {"home": "/proc"}},
                {"mounts": {"Bad Name": "/x"}},
                {"mounts": {"home": "/a", "data": "/a/b"}},
                {"workspace": "../etc"},
            ):
                r = api.post("/api/tasks", json={**base, "command": ["true"], **bad})
                assert r.status_code == 400, (bad, r.text)
                assert r.headers["content-type"].startswith("application/problem+json")
        finally:
            agent.stop()
