"""host.ssh against a real OpenSSH ``sshd`` on a loopback port (generated host and user keys in a
temp dir).

The runner is driven directly for its limits (probe, exec, a command that never ends, one that
prints gigabytes, host key mismatch); then through a real server and a real agent process for
the admin-only API, the audit event, and an agent whose Docker is unreachable (unhealthy: no
ordinary dispatch, while maintenance still reaches it).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import AgentProcess, node_token, wait_for, wait_online, wait_state
from unidesk.gateway_agent.config import AgentConfig
from unidesk.gateway_agent.hostssh import HostSshRunner
from unidesk.protocol import Dispatch

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


class Recorder:
    """Collects what the runner reports (the agent's real reporter sends the same to the server)."""

    def __init__(self) -> None:
        self.logs: dict[str, bytearray] = {
            "stdout": bytearray(),
            "stderr": bytearray(),
            "system": bytearray(),
            "build": bytearray(),
        }
        self.started = False

    async def stage(self, stage: str) -> None:
        pass

    async def running(self) -> None:
        self.started = True

    def log(
        self, stream: str, data: bytes, ts: float | None = None, mark: int | None = None
    ) -> None:
        self.logs[stream] += data


class Sshd:
    def __init__(self, root: Path) -> None:
        self.root = root
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        for name in ("host_key", "user_key", "other_host_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True
            )
        (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text(
            f"[127.0.0.1]:{self.port} {(root / 'host_key.pub').read_text()}"
        )
        (root / "sshd_config").write_text(f"""
Port {self.port}
ListenAddress 127.0.0.1
HostKey {root / "host_key"}
AuthorizedKeysFile {root / "authorized_keys"}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PidFile {root / "sshd.pid"}
LogLevel VERBOSE
""")
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        self.log = open(root / "sshd.log", "wb")
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(root / "sshd_config")], stdout=self.log, stderr=self.log
        )
        wait_for(lambda: self._listening(), timeout=15, what="sshd listening")

    def _listening(self) -> bool:
        assert self.proc.poll() is None, (self.root / "sshd.log").read_text()
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def config(self, **overrides: Any) -> AgentConfig:
        values = {
            "ssh_host": "127.0.0.1",
            "ssh_port": self.port,
            "ssh_user": "root",
            "ssh_key_file": str(self.root / "user_key"),
            "ssh_known_hosts": str(self.known_hosts),
            "ssh_output_cap_bytes": 1024 * 1024,
            "ssh_max_timeout_s": 30.0,
        }
        values.update(overrides)
        return AgentConfig(**values)

    def env(self) -> dict[str, str]:
        return {
            "UNIDESK_AGENT_SSH_HOST": "127.0.0.1",
            "UNIDESK_AGENT_SSH_PORT": str(self.port),
            "UNIDESK_AGENT_SSH_USER": "root",
            "UNIDESK_AGENT_SSH_KEY_FILE": str(self.root / "user_key"),
            "UNIDESK_AGENT_SSH_KNOWN_HOSTS": str(self.known_hosts),
        }

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    d = tmp_path / "sshd"
    d.mkdir()
    server = Sshd(d)
    yield server
    server.stop()


def dispatch(op: str, command: str | None = None, timeout_s: int = 20) -> Dispatch:
    params = {"op": op, "timeout_s": str(timeout_s), **({"command": command} if command else {})}
    return Dispatch(
        task_id="t",
        attempt_no=1,
        code_repo_url="",
        code_commit_id="",
        env_repo_url="",
        env_commit_id="",
        dockerfile_path="",
        command=[],
        timeout_s=timeout_s,
        kind="host.ssh",
        params=params,
    )


def remote_count(pattern: str) -> int:
    """Processes whose command line matches (sshd runs here, so the 'host' is this machine)."""
    out = subprocess.run(["pgrep", "-f", "-c", pattern], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


async def test_probe_reports_host_basics(sshd: Sshd) -> None:
    rec = Recorder()
    outcome = await HostSshRunner(sshd.config()).run(dispatch("probe"), rec)
    assert outcome.reason == "succeeded", outcome
    facts = json.loads(rec.logs["system"].decode())["probe"]
    assert facts["kernel"].startswith("Linux") and facts["os"]
    assert int(facts["disk_free_mb"]) > 0 and float(facts["uptime_s"]) > 0
    assert (
        facts["docker"] in ("present", "absent")
        and facts["k3s"] in ("present", "absent")
        and facts["wsl"] in ("yes", "no")
    )


async def test_exec_streams_and_exit_code(sshd: Sshd) -> None:
    rec = Recorder()
    outcome = await HostSshRunner(sshd.config()).run(
        dispatch("exec", "echo out; echo err >&2; exit 3"), rec
    )
    assert (outcome.reason, outcome.exit_code) == ("exit_nonzero", 3)
    assert rec.logs["stdout"] == b"out\n" and rec.logs["stderr"] == b"err\n" and rec.started


async def test_exec_that_never_ends_is_cut_at_the_timeout(sshd: Sshd) -> None:
    rec = Recorder()
    started = time.monotonic()
    outcome = await HostSshRunner(sshd.config()).run(
        dispatch("exec", "sleep 987654", timeout_s=2), rec
    )
    elapsed = time.monotonic() - started
    assert outcome.reason == "timed_out" and "2 s timeout" in (outcome.message or "")
    assert 1.9 <= elapsed < 8, elapsed
    wait_for(
        lambda: remote_count("sleep 987654") == 0, timeout=10, what="the remote command killed"
    )


async def test_request_cannot_raise_the_agents_timeout_cap(sshd: Sshd) -> None:
    started = time.monotonic()
    outcome = await HostSshRunner(sshd.config(ssh_max_timeout_s=1.5)).run(
        dispatch("exec", "sleep 987653", timeout_s=3600), Recorder()
    )
    assert outcome.reason == "timed_out" and time.monotonic() - started < 6


async def test_exec_printing_gigabytes_is_cut_at_the_cap(sshd: Sshd) -> None:
    rec = Recorder()
    started = time.monotonic()
    cap = 256 * 1024
    outcome = await HostSshRunner(sshd.config(ssh_output_cap_bytes=cap)).run(
        dispatch("exec", "yes unidesk-flood-marker"), rec
    )
    assert outcome.reason == "exit_nonzero" and "cap" in (outcome.message or "")
    assert len(rec.logs["stdout"]) + len(rec.logs["stderr"]) == cap
    assert b"output cap" in rec.logs["system"]
    assert time.monotonic() - started < 10
    wait_for(
        lambda: remote_count("yes unidesk-flood-marker") == 0,
        timeout=10,
        what="the flooding command killed",
    )


async def test_host_key_mismatch_and_unknown_host_refused(sshd: Sshd, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {(sshd.root / 'other_host_key.pub').read_text()}")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    for known in (wrong, empty):
        rec = Recorder()
        outcome = await HostSshRunner(sshd.config(ssh_known_hosts=str(known))).run(
            dispatch("exec", "touch /tmp/should-not-run"), rec
        )
        assert outcome.reason == "infra_error" and "host key" in (outcome.message or ""), outcome
        assert rec.logs["stdout"] == b""


async def test_only_bounded_operations(sshd: Sshd) -> None:
    runner = HostSshRunner(sshd.config())
    for d in (dispatch("shell", "id"), dispatch("exec", None)):
        outcome = await runner.run(d, Recorder())
        assert outcome.reason == "infra_error"
    container = Dispatch(
        task_id="t",
        attempt_no=1,
        code_repo_url="",
        code_commit_id="",
        env_repo_url="",
        env_commit_id="",
        dockerfile_path="",
        command=["id"],
        kind="container",
        params={"op": "exec", "command": "id"},
    )
    assert (await runner.run(container, Recorder())).reason == "infra_error"


def _agent(server: Any, sshd: Sshd, name: str, root: Path, **env: str) -> AgentProcess:
    with server.api() as api:
        secret = node_token(api, name)["secret"]
    agent = AgentProcess(server.url, secret, name, root)
    agent.env.update(sshd.env())
    agent.env.update(env)
    return agent.start()


def _logs(api: Any, task_id: str) -> str:
    return "".join(line["data"] for line in api.get(f"/api/tasks/{task_id}/logs").json()["items"])


def test_maintenance_through_server_and_agent(live_server: Any, sshd: Sshd, tmp_path: Path) -> None:
    agent = _agent(live_server, sshd, "ssh-node", tmp_path / "agent")
    try:
        with live_server.api() as api:
            node = wait_online(api, "ssh-node")["ssh-node"]
            assert node["runtimes"] == ["docker", "host.ssh"]
            r = api.post(
                "/api/users",
                json={"username": "mo", "password": "member-password", "role": "member"},
            )
            assert r.status_code == 201, r.text
            member = live_server.token("mo", "member-password")
            with live_server.api(member) as mapi:
                tasks_before = len(api.get("/api/tasks").json()["items"])
                r = mapi.post(
                    f"/api/nodes/{node['id']}/maintenance", json={"op": "exec", "command": "id"}
                )
                assert r.status_code == 403 and r.headers["content-type"].startswith(
                    "application/problem+json"
                )
                assert len(api.get("/api/tasks").json()["items"]) == tasks_before

            r = api.post(f"/api/nodes/{node['id']}/maintenance", json={"op": "probe"})
            assert r.status_code == 201, r.text
            probe = wait_state(api, r.json()["id"], timeout=30)
            assert probe["state"] == "succeeded", probe
            facts = json.loads(_logs(api, probe["id"]).strip().splitlines()[-1])["probe"]
            assert facts["kernel"].startswith("Linux")

            r = api.post(
                f"/api/nodes/{node['id']}/maintenance",
                json={"op": "exec", "command": "sleep 987652", "timeout_s": 2},
            )
            cut = wait_state(api, r.json()["id"], timeout=30)
            assert (
                cut["state"] == "failed"
                and cut["attempts"][0]["reason"] == "timed_out"
                and cut["attempt_count"] == 1
            )

            audit = api.get(
                "/api/events", params={"kind": "node.maintenance_requested", "limit": 100}
            ).json()["items"]
            assert [(e["payload"]["op"], e["actor"].startswith("user:")) for e in audit] == [
                ("probe", True),
                ("exec", True),
            ]
            assert (
                audit[1]["payload"]["command"] == "sleep 987652"
                and audit[1]["subject_id"] == node["id"]
            )
            r = api.post(f"/api/tasks/{probe['id']}/retry")
            assert r.status_code == 400
    finally:
        agent.stop()


def test_docker_unreachable_node_is_unhealthy_gets_no_work_but_maintenance(
    live_server: Any, sshd: Sshd, tmp_path: Path
) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[docker]\ndocker_url = "unix:///nonexistent/unidesk-test/docker.sock"\n')
    agent = _agent(
        live_server,
        sshd,
        "no-docker",
        tmp_path / "agent",
        UNIDESK_AGENT_RUNNER="docker",
        UNIDESK_AGENT_CONFIG=str(cfg),
    )
    try:
        with live_server.api() as api:
            node = wait_online(api, "no-docker")["no-docker"]
            node = wait_for(
                lambda: (n := api.get(f"/api/nodes/{node['id']}").json())["unhealthy_reason"] and n,
                timeout=20,
                what="node unhealthy",
            )
            assert "docker unreachable" in node["unhealthy_reason"]
            from tests.integration.conftest import submit

            task = submit(api, "echo never")
            time.sleep(3)
            t = api.get(f"/api/tasks/{task['id']}").json()
            assert (
                t["state"] == "pending"
                and t["attempt_count"] == 0
                and t["unschedulable_reason"] == "no online node accepts work"
            )
            r = api.post(
                f"/api/nodes/{node['id']}/maintenance",
                json={"op": "exec", "command": "echo still-reachable"},
            )
            done = wait_state(api, r.json()["id"], timeout=30)
            assert done["state"] == "succeeded" and "still-reachable" in _logs(api, done["id"])
            assert api.get(f"/api/nodes/{node['id']}").json()[
                "unhealthy_reason"
            ]  # still unhealthy: Docker is still gone
    finally:
        agent.stop()
    assert os.path.exists("/var/run/docker.sock")  # the shared engine was never touched
