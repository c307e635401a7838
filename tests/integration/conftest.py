"""Helpers for cross-process flows: real ``unidesk-agent`` processes (SubprocessTestRunner),
task bodies those agents can run, and bounded waits on the API."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.integration.pg_faults import FaultyPostgres

T = TypeVar("T")
FINAL = ("succeeded", "failed", "cancelled")
SHA = "c" * 40


def task_body(command: str | list[str], **overrides: Any) -> dict[str, Any]:
    """A task the SubprocessTestRunner runs as a local command (the repos are never fetched)."""
    body: dict[str, Any] = {
        "name": "it",
        "code_repo_url": "file:///nonexistent/code",
        "code_commit_id": SHA,
        "env_repo_url": "file:///nonexistent/env",
        "env_commit_id": SHA,
        "dockerfile_path": "Dockerfile",
        "command": command,
        "resources": {"cpus": 1, "memory_mb": 64},
    }
    resources = overrides.pop("resources", None)
    if resources:
        body["resources"] = {**body["resources"], **resources}
    body.update(overrides)
    return body


def wait_for(
    check: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.2, what: str = "condition"
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def nodes_by_name(api: httpx.Client) -> dict[str, dict[str, Any]]:
    r = api.get("/api/nodes")
    r.raise_for_status()
    return {n["name"]: n for n in r.json()["items"]}


def wait_online(api: httpx.Client, *names: str, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
    def check() -> dict[str, dict[str, Any]] | None:
        nodes = nodes_by_name(api)
        return nodes if all(nodes.get(n, {}).get("state") == "online" for n in names) else None

    return wait_for(check, timeout=timeout, what=f"nodes {names} online")


def submit(api: httpx.Client, command: str | list[str], **overrides: Any) -> dict[str, Any]:
    r = api.post("/api/tasks", json=task_body(command, **overrides))
    assert r.status_code == 201, r.text
    return r.json()


def get_task(api: httpx.Client, task_id: str) -> dict[str, Any]:
    r = api.get(f"/api/tasks/{task_id}")
    r.raise_for_status()
    return r.json()


def wait_state(
    api: httpx.Client, task_id: str, states: tuple[str, ...] | str = FINAL, timeout: float = 60.0
) -> dict[str, Any]:
    wanted = (states,) if isinstance(states, str) else states
    return wait_for(
        lambda: (t := get_task(api, task_id))["state"] in wanted and t,
        timeout=timeout,
        what=f"task {task_id} in {wanted}",
    )


def trace_kinds(api: httpx.Client, task_id: str) -> list[str]:
    r = api.get(f"/api/tasks/{task_id}/trace")
    r.raise_for_status()
    return [e["kind"] for e in r.json()["items"]]


def assert_one_final(api: httpx.Client, task_id: str) -> dict[str, Any]:
    """The task is final, and its trace holds exactly one final-state event that matches it."""
    task = get_task(api, task_id)
    assert task["state"] in FINAL, task
    finals = [
        k
        for k in trace_kinds(api, task_id)
        if k in ("task.succeeded", "task.failed", "task.cancelled")
    ]
    assert finals == [f"task.{task['state']}"], (task["state"], finals)
    return task


def events(
    api: httpx.Client, kind: str | None = None, subject_id: str | None = None
) -> list[dict[str, Any]]:
    params = {k: v for k, v in (("kind", kind), ("subject_id", subject_id)) if v}
    r = api.get("/api/events", params={**params, "limit": 1000})
    r.raise_for_status()
    return r.json()["items"]


def node_token(api: httpx.Client, name: str) -> dict[str, Any]:
    r = api.post("/api/node-tokens", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()


class AgentProcess:
    """One ``python -m unidesk.gateway_agent.cli`` process with the SubprocessTestRunner."""

    def __init__(
        self,
        server_url: str,
        secret: str,
        name: str,
        root: Path,
        *,
        labels: dict[str, str] | None = None,
        cpus: float = 2,
        memory_mb: int = 4096,
        concurrency: int = 8,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "token").write_text(secret)
        self.log_path = root / "agent.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("UNIDESK_")}
        self.env.update(
            {
                "UNIDESK_AGENT_SERVER_URL": server_url,
                "UNIDESK_AGENT_TOKEN_FILE": str(root / "token"),
                "UNIDESK_AGENT_NODE_NAME": name,
                "UNIDESK_AGENT_CACHE_DIR": str(root / "cache"),
                "UNIDESK_AGENT_STATE_DIR": str(root / "state"),
                "UNIDESK_AGENT_ALLOW_FILE_URLS": "true",
                "UNIDESK_AGENT_RUNNER": "subprocess-test",
                "UNIDESK_AGENT_CPUS": str(cpus),
                "UNIDESK_AGENT_MEMORY_MB": str(memory_mb),
                "UNIDESK_AGENT_CONCURRENCY": str(concurrency),
                "UNIDESK_AGENT_BACKOFF_CAP_S": "1",
                "UNIDESK_AGENT_SHUTDOWN_GRACE_S": "2",
            }
        )
        self.env.update(env or {})
        if labels:
            self.env["UNIDESK_AGENT_LABELS"] = ",".join(f"{k}={v}" for k, v in labels.items())
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "unidesk.gateway_agent.cli"],
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the agent and its whole session (its task subprocesses die with a SIGKILL too)."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            if sig == signal.SIGKILL:
                self.proc.wait(10)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    """``start(server, name, labels=None, cpus=2, secret=None, **kw)``: an agent process with its
    own node token (created through the admin API unless ``secret`` is given)."""
    agents: list[AgentProcess] = []

    def start(server: Any, name: str, *, secret: str | None = None, **kw: Any) -> AgentProcess:
        if secret is None:
            with server.api() as api:
                secret = node_token(api, name)["secret"]
        agent = AgentProcess(
            server.url, secret, name, tmp_path / f"agent-{name}-{len(agents)}", **kw
        ).start()
        agents.append(agent)
        return agent

    yield start
    for a in agents:
        a.stop()


@pytest.fixture
def faulty_pg(tmp_path: Path) -> Iterator[FaultyPostgres]:
    """An embedded PostgreSQL of the test's own, to restart or stop (``pg_faults``)."""
    pg = FaultyPostgres(tmp_path / "faulty")
    yield pg
    pg.close()
