"""A stop that nothing can carry out, end to end: a real server, a real agent process with the
Docker runner, a task cancelled while its container's containerd shim is SIGSTOPped (Docker's
stop hangs) and the agent's cgroup root shows no cgroups (the cgroup kill fails). The task
still ends (infra_error with the reason) and the node says it is unhealthy, until Docker can
remove the container again."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.docker_images import BUSYBOX_IMAGE, ensure_busybox_image
from tests.gateway_agent.gitrepos import GitRepo
from tests.gateway_agent.test_stop_escalation import shim_stopped
from tests.integration.conftest import get_task, nodes_by_name, wait_for, wait_online, wait_state

pytestmark = pytest.mark.docker


def test_unstoppable_container_ends_the_task_and_makes_the_node_unhealthy(
    live_server, agent_factory, tmp_path: Path
) -> None:
    ensure_busybox_image()
    no_cgroups = tmp_path / "no-cgroups"
    no_cgroups.mkdir()
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[docker]\nstop_grace_s = 1\ndocker_timeout_s = 2.0\ncgroup_root = "{no_cgroups}"\n'
    )
    env_repo, code_repo = GitRepo(tmp_path / "env"), GitRepo(tmp_path / "code")
    env_sha = env_repo.commit({"Dockerfile": f"FROM {BUSYBOX_IMAGE}\n"})
    code_sha = code_repo.commit({"run.sh": "echo started; while true; do sleep 1; done\n"})
    agent = agent_factory(live_server, "unstoppable", cpus=2)
    agent.stop()
    agent.env.update({"UNIDESK_AGENT_RUNNER": "docker", "UNIDESK_AGENT_CONFIG": str(config)})
    agent.start()
    with live_server.api() as api:
        wait_online(api, "unstoppable", timeout=60)
        body: dict[str, Any] = {
            "code_repo_url": code_repo.url,
            "code_commit_id": code_sha,
            "env_repo_url": env_repo.url,
            "env_commit_id": env_sha,
            "dockerfile_path": "Dockerfile",
            "command": ["sh", "run.sh"],
            "resources": {"cpus": 0.5, "memory_mb": 64},
        }
        r = api.post("/api/tasks", json=body)
        assert r.status_code == 201, r.text
        task_id = r.json()["id"]
        wait_state(api, task_id, "running", timeout=120)
        name = f"unidesk-{task_id}-1"
        container_id = subprocess.run(
            ["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True
        ).stdout.strip()
        try:
            with shim_stopped(container_id):
                assert api.post(f"/api/tasks/{task_id}/cancel").status_code in (200, 202)
                done = wait_state(api, task_id, timeout=90)
                attempt = get_task(api, task_id)["attempts"][-1]
                assert attempt["reason"] == "infra_error", (done, attempt)
                assert "cgroup kill failed" in (attempt["message"] or "")

                def unhealthy() -> str | None:
                    reason = nodes_by_name(api)["unstoppable"].get("unhealthy_reason") or ""
                    return reason if "could not stop the container" in reason else None

                wait_for(unhealthy, timeout=30, what="the node reporting itself unhealthy")

            def healthy_again() -> bool:
                reason = nodes_by_name(api)["unstoppable"].get("unhealthy_reason") or ""
                return "could not stop" not in reason

            wait_for(healthy_again, timeout=60, what="the node healthy once Docker removed it")
        finally:
            subprocess.run(["docker", "rm", "-f", container_id], capture_output=True)
            images = subprocess.run(
                ["docker", "images", "-q", "--filter", f"label=unidesk.env.repo={env_repo.url}"],
                capture_output=True,
                text=True,
            ).stdout.split()
            if images:
                subprocess.run(["docker", "rmi", "-f", *set(images)], capture_output=True)
