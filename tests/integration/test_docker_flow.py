"""End to end on one machine: a real ``unidesk-server`` with its local agent running tasks in the
real Docker engine, pinned to commits of real git repositories made here (file:// URLs).

Build once and reuse, live logs over SSE, exit codes, a missing command, cancel and timeout
(nothing left behind), a missing commit, large output and the server's log cap, and kill -9 of
the agent while a container runs (the server's supervisor restarts it; reconcile adopts)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, PgCluster, free_port, server_env
from tests.docker_images import BUSYBOX_IMAGE, ensure_busybox_image
from tests.gateway_agent.gitrepos import GitRepo
from tests.integration.conftest import assert_one_final, get_task, trace_kinds, wait_for, wait_state

DOCKERFILE = f"FROM {BUSYBOX_IMAGE}\nRUN echo env-v1 > /env-marker\n"
RUN_SH = (
    "echo code-{version}; cat /env-marker; echo to-stderr >&2; sleep {sleep}; echo done-{version}\n"
)


class Flow:
    """A server with a Docker local agent, an env repo and a code repo."""

    def __init__(self, server: LiveServer, root: Path) -> None:
        self.server = server
        self.api = server.api()
        self.env_repo = GitRepo(root / "env")
        self.env_sha = self.env_repo.commit({"docker/Dockerfile": DOCKERFILE})
        self.code_repo = GitRepo(root / "code")
        self.code_sha = self.code_repo.commit({"run.sh": RUN_SH.format(version="v1", sleep=4)})

    @property
    def work_dir(self) -> Path:
        """The local agent's workspaces (``<data_dir>/local-agent/cache/work``)."""
        return Path(self.server.env["UNIDESK_DATA_DIR"]) / "local-agent" / "cache" / "work"

    def body(self, command: str | list[str], **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": "docker-flow",
            "code_repo_url": self.code_repo.url,
            "code_commit_id": self.code_sha,
            "env_repo_url": self.env_repo.url,
            "env_commit_id": self.env_sha,
            "dockerfile_path": "docker/Dockerfile",
            "command": command,
            "resources": {"cpus": 0.5, "memory_mb": 128},
            "timeout_s": 120,
        }
        body.update(overrides)
        return body

    def submit(self, command: str | list[str], **overrides: Any) -> dict[str, Any]:
        r = self.api.post("/api/tasks", json=self.body(command, **overrides))
        assert r.status_code == 201, r.text
        return r.json()

    def logs(self, task_id: str, attempt: int | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after = 0
        while True:
            params: dict[str, Any] = {"after": after, "limit": 5000}
            if attempt:
                params["attempt"] = attempt
            r = self.api.get(f"/api/tasks/{task_id}/logs", params=params)
            r.raise_for_status()
            page = r.json()
            items += page["items"]
            if not page["items"]:
                return items
            after = page["next_after"]

    def text(self, task_id: str, *streams: str) -> str:
        return "".join(
            i["data"] for i in self.logs(task_id) if not streams or i["stream"] in streams
        )

    def close(self) -> None:
        """Close the client and remove the env images built from this flow's env repo."""
        self.api.close()
        images = docker(
            "images", "-q", "--filter", f"label=unidesk.env.repo={self.env_repo.url}"
        ).split()
        if images:
            subprocess.run(["docker", "rmi", "-f", *set(images)], capture_output=True)


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def containers_of(task_id: str) -> list[str]:
    return docker("ps", "-a", "-q", "--filter", f"label=unidesk.task_id={task_id}").split()


def image_id(tag: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", tag)


def env_tag(log_text: str) -> str:
    for word in log_text.split():
        if word.startswith("unidesk-env:"):
            return word
    raise AssertionError(f"no env image named in the log:\n{log_text[-2000:]}")


def sse_events(
    client: httpx.Client, url: str, timeout: float = 90.0
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(event, data)`` from an SSE endpoint until it closes or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    event, data = "message", ""
    with client.stream("GET", url, timeout=httpx.Timeout(10.0, read=timeout)) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if time.monotonic() > deadline:
                raise AssertionError(f"SSE {url} still open after {timeout}s")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "" and data:
                yield event, json.loads(data)
                event, data = "message", ""


def start_docker_server(pg_cluster: PgCluster, root: Path, **extra: Any) -> LiveServer:
    ensure_busybox_image()
    port = free_port()
    data = root / f"data-{port}"
    data.mkdir(parents=True)
    env = server_env(
        pg_cluster.fresh_database("dk"),
        data,
        port,
        local_agent="true",
        local_agent_runner="docker",
        heartbeat_interval_s="1",
        **extra,
    )
    return LiveServer(env, port, root / f"server-{port}.log").start()


def wait_local_node(api: httpx.Client, timeout: float = 60.0) -> dict[str, Any]:
    def online() -> dict[str, Any] | None:
        items = api.get("/api/nodes").json()["items"]
        return next((n for n in items if n["state"] == "online"), None)

    return wait_for(online, timeout=timeout, what="the local agent online")


@pytest.fixture(scope="module")
def flow(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    root = tmp_path_factory.mktemp("docker-flow")
    server = start_docker_server(pg_cluster, root)
    f = Flow(server, root)
    try:
        wait_local_node(f.api)
        yield f
    finally:
        server.stop()
        f.close()


def _attempt(task: dict[str, Any]) -> dict[str, Any]:
    assert task["attempts"], task
    return task["attempts"][-1]


def test_build_once_live_logs_then_reuse_with_new_code(flow: Flow) -> None:
    task = flow.submit(["sh", "run.sh"])
    seen: list[tuple[str, str]] = []
    state_at_first_stdout = None
    for event, data in sse_events(flow.api, f"/api/tasks/{task['id']}/logs/stream"):
        if event == "end":
            assert data["attempt_no"] == 1 and data["truncated"] is False
            break
        seen.append((data["stream"], data["data"]))
        if data["stream"] == "stdout" and state_at_first_stdout is None:
            state_at_first_stdout = get_task(flow.api, task["id"])["state"]
    # Output arrived while the command still ran (it sleeps 4 s after its first line).
    assert state_at_first_stdout == "running", seen
    streamed = {
        s: "".join(d for st, d in seen if st == s) for s in ("build", "stdout", "stderr", "system")
    }
    assert f"FROM {BUSYBOX_IMAGE}" in streamed["build"] and "echo env-v1" in streamed["build"]
    assert streamed["stdout"] == "code-v1\nenv-v1\ndone-v1\n"
    assert streamed["stderr"] == "to-stderr\n"
    assert "built" in streamed["system"]

    done = wait_state(flow.api, task["id"], timeout=30)
    assert done["state"] == "succeeded" and _attempt(done)["exit_code"] == 0, done
    assert_one_final(flow.api, task["id"])
    # The stored log is what streamed.
    assert flow.text(task["id"], "stdout") == streamed["stdout"]
    trace = flow.api.get(f"/api/tasks/{task['id']}/trace").json()["items"]
    kinds = [e["kind"] for e in trace]
    stages = [e["payload"]["stage"] for e in trace if e["kind"] == "task.stage"]
    assert stages == ["fetch_code", "fetch_env", "build_image"], kinds
    order = [
        k
        for k in kinds
        if k in ("task.preparing", "task.stage", "task.started", "task.exited", "task.succeeded")
    ]
    assert order == [
        "task.preparing",
        "task.stage",
        "task.stage",
        "task.stage",
        "task.started",
        "task.exited",
        "task.succeeded",
    ], kinds
    exited = next(e for e in trace if e["kind"] == "task.exited")
    assert exited["payload"]["exit_code"] == 0 and exited["payload"]["reason"] == "succeeded"

    tag = env_tag(streamed["system"])
    first_image = image_id(tag)
    assert (
        docker("image", "inspect", "--format", '{{index .Config.Labels "unidesk.env.commit"}}', tag)
        == flow.env_sha
    )
    assert containers_of(task["id"]) == [] and not list(flow.work_dir.glob(f"{task['id']}-*"))

    # A new code commit on the same env: the image is reused with no build and the new code runs.
    new_sha = flow.code_repo.commit({"run.sh": RUN_SH.format(version="v2", sleep=0)})
    second = flow.submit(["sh", "run.sh"], code_commit_id=new_sha)
    done2 = wait_state(flow.api, second["id"], timeout=60)
    assert done2["state"] == "succeeded", done2
    logs2 = flow.logs(second["id"])
    assert [i for i in logs2 if i["stream"] == "build"] == []
    assert flow.text(second["id"], "stdout") == "code-v2\nenv-v1\ndone-v2\n"
    assert f"env image {tag} reused (no build)" in flow.text(second["id"], "system")
    assert image_id(tag) == first_image
    trace2 = flow.api.get(f"/api/tasks/{second['id']}/trace").json()["items"]
    assert [e["payload"]["stage"] for e in trace2 if e["kind"] == "task.stage"] == [
        "fetch_code",
        "fetch_env",
    ]


def test_failing_command_and_missing_command(flow: Flow) -> None:
    failing = flow.submit("echo about-to-fail; exit 3")
    missing = flow.submit(["no-such-program", "--flag"])
    done = wait_state(flow.api, failing["id"], timeout=60)
    assert done["state"] == "failed", done
    a = _attempt(done)
    assert (a["state"], a["reason"], a["exit_code"]) == ("failed", "exit_nonzero", 3), a
    assert (
        len(done["attempts"]) == 1
    )  # a non-zero exit is the task's own answer: not retried by default
    assert "about-to-fail" in flow.text(failing["id"], "stdout")
    assert_one_final(flow.api, failing["id"])

    done = wait_state(flow.api, missing["id"], timeout=60)
    assert done["state"] == "failed", done
    a = _attempt(done)
    assert a[
        "exit_code"
    ] == 127 and "command 'no-such-program' not found in image unidesk-env:" in (
        a["message"] or ""
    ), a
    assert "no-such-program" in (done["message"] or ""), done
    for t in (failing, missing):
        assert containers_of(t["id"]) == []


def test_cancel_and_timeout_leave_nothing_behind(flow: Flow) -> None:
    cancelled = flow.submit("echo started; sleep 300")
    timed = flow.submit("echo started; sleep 300", timeout_s=3)
    wait_state(flow.api, cancelled["id"], "running", timeout=60)
    wait_for(lambda: containers_of(cancelled["id"]), timeout=10, what="the container")
    r = flow.api.post(f"/api/tasks/{cancelled['id']}/cancel")
    assert r.status_code == 200, r.text
    done = wait_state(flow.api, cancelled["id"], timeout=30)
    assert done["state"] == "cancelled", done
    assert _attempt(done)["reason"] == "cancelled", done

    done = wait_state(flow.api, timed["id"], timeout=60)
    assert done["state"] == "failed" and done["reason"] == "timed_out", done
    assert _attempt(done)["reason"] == "timed_out", done
    assert "started" in flow.text(timed["id"], "stdout")
    for t in (cancelled, timed):
        assert_one_final(flow.api, t["id"])
        # The agent removes the container and workspace right after it reports the end.
        wait_for(
            lambda t=t: containers_of(t["id"]) == [] or None, timeout=15, what="container removed"
        )
        wait_for(
            lambda t=t: not list(flow.work_dir.glob(f"{t['id']}-*")) or None,
            timeout=15,
            what="workspace removed",
        )


def test_missing_commit_is_an_infra_error_naming_repo_and_commit(flow: Flow) -> None:
    ghost = "0123456789abcdef" * 2 + "01234567"
    task = flow.submit("true", code_commit_id=ghost, max_attempts=1)
    done = wait_state(flow.api, task["id"], timeout=60)
    assert done["state"] == "failed", done
    a = _attempt(done)
    assert a["reason"] == "infra_error", a
    assert ghost in a["message"] and flow.code_repo.url in a["message"], a
    assert ghost in (done["message"] or "") and flow.code_repo.url in (done["message"] or ""), done
    assert len(done["attempts"]) == 1
    assert containers_of(task["id"]) == [] and not list(flow.work_dir.glob(f"{task['id']}-*"))


def test_large_output_streams_and_is_stored(flow: Flow) -> None:
    size = 5_000_000
    task = flow.submit(f"yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {size}")
    done = wait_state(flow.api, task["id"], timeout=120)
    assert done["state"] == "succeeded", done
    stdout = flow.text(task["id"], "stdout")
    assert len(stdout) == size and stdout.startswith("0123456789abcdefghijklmnopqrstuvwxyz\n")
    assert "truncated" not in flow.text(task["id"], "system")


ALTERNATING = (
    "for i in 1 2 3 4 5 6; do echo out-$i; sleep 0.2; echo err-$i >&2; sleep 0.2; done; "
    "echo out-end; echo err-end >&2"
)


def test_stdout_and_stderr_lines_come_back_in_the_order_they_were_written(flow: Flow) -> None:
    task = flow.submit(ALTERNATING)
    done = wait_state(flow.api, task["id"], timeout=120)
    assert done["state"] == "succeeded", done
    items = [i for i in flow.logs(task["id"]) if i["stream"] in ("stdout", "stderr")]
    lines = [(i["stream"], line) for i in items for line in i["data"].splitlines()]
    expected = [
        (stream, f"{name}-{n}")
        for n in range(1, 7)
        for stream, name in (("stdout", "out"), ("stderr", "err"))
    ]
    assert lines[: len(expected)] == expected, lines
    assert {line for _, line in lines[len(expected) :]} == {"out-end", "err-end"}
    # each chunk carries the time its first line was written at the source, in seq order
    stamps = [datetime.fromisoformat(i["ts"]) for i in items]
    assert stamps == sorted(stamps), stamps


def test_server_log_cap_truncates_with_a_visible_marker(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    server = start_docker_server(pg_cluster, tmp_path, max_log_bytes_per_attempt=100_000)
    f = Flow(server, tmp_path)
    try:
        wait_local_node(f.api)
        task = f.submit(
            "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 5000000; echo after-the-flood"
        )
        done = wait_state(f.api, task["id"], timeout=120)
        assert done["state"] == "succeeded", done
        items = f.logs(task["id"])
        stored = "".join(i["data"] for i in items)
        marker = "\n[unidesk] log truncated: this attempt's output passed 100000 bytes\n"
        assert stored.endswith(marker), stored[-300:]
        # Exactly the cap's worth of output (build, system and stdout lines together), then the
        # marker.
        assert len(stored.encode()) == 100_000 + len(marker)
        assert "after-the-flood" not in stored
        assert f.api.get(f"/api/tasks/{task['id']}/logs").json()["truncated"] is True
    finally:
        server.stop()
        f.close()


def _local_agent_pid(server: LiveServer) -> int | None:
    """The server's supervised ``unidesk.gateway_agent.cli`` child process (None: none alive)."""
    assert server.proc is not None
    for child in Path(f"/proc/{server.proc.pid}/task").glob("*/children"):
        for pid in child.read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except FileNotFoundError:
                continue
            if (
                "unidesk.gateway_agent.cli" in cmdline
                and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
            ):
                return int(pid)
    return None


def test_agent_kill9_while_container_runs(pg_cluster: PgCluster, tmp_path: Path) -> None:
    server = start_docker_server(pg_cluster, tmp_path)
    f = Flow(server, tmp_path)
    try:
        wait_local_node(f.api)
        task = f.submit("echo begin; sleep 8; echo finished")
        wait_state(f.api, task["id"], "running", timeout=60)
        wait_for(lambda: "begin" in f.text(task["id"], "stdout"), timeout=15, what="first output")
        before = containers_of(task["id"])
        assert len(before) == 1
        old_pid = _local_agent_pid(server)
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        # The supervisor starts a new agent; it reconnects and declares the container it still has.
        new_pid = wait_for(
            lambda: (p := _local_agent_pid(server)) != old_pid and p, timeout=30, what="a new agent"
        )
        assert new_pid != old_pid
        done = wait_state(f.api, task["id"], timeout=90)
        task_now = assert_one_final(f.api, task["id"])
        assert done["state"] == "succeeded", (done["attempts"], trace_kinds(f.api, task["id"]))
        states = [a["state"] for a in task_now["attempts"]]
        assert states in (["succeeded"], ["lost", "succeeded"]), task_now["attempts"]
        if states == ["succeeded"]:  # adopted: the output after the restart is there, nothing twice
            assert f.text(task["id"], "stdout") == "begin\nfinished\n"
        wait_for(
            lambda: containers_of(task["id"]) == [] or None, timeout=15, what="no container left"
        )
        wait_for(
            lambda: not list(f.work_dir.glob(f"{task['id']}-*")) or None,
            timeout=15,
            what="no workspace left",
        )
    finally:
        server.stop()
        f.close()


def test_second_local_agent_on_the_host_leaves_the_first_ones_containers_alone(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    """Two servers on one host both run a local agent named after the host: the second one's
    start-up reconcile must not stop or remove the first one's running container."""
    first = start_docker_server(pg_cluster, tmp_path / "a")
    fa = Flow(first, tmp_path / "a")
    second = None
    try:
        wait_local_node(fa.api)
        task = fa.submit("echo begin; sleep 30; echo finished")
        wait_state(fa.api, task["id"], "running", timeout=60)
        second = start_docker_server(pg_cluster, tmp_path / "b")
        with second.api() as api_b:
            wait_local_node(api_b)
            time.sleep(2)  # past the second agent's reconcile
        assert get_task(fa.api, task["id"])["state"] == "running"
        assert len(containers_of(task["id"])) == 1
        done = wait_state(fa.api, task["id"], timeout=60)
        assert done["state"] == "succeeded", (done["attempts"], trace_kinds(fa.api, task["id"]))
        assert fa.text(task["id"], "stdout") == "begin\nfinished\n"
    finally:
        if second is not None:
            second.stop()
        first.stop()
        fa.close()


def _container_log(container_id: str) -> str:
    done = subprocess.run(
        ["docker", "logs", container_id], capture_output=True, text=True, timeout=30, check=False
    )
    return done.stdout


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_server_kill9_local_agent_dies_with_it_and_the_restarted_one_adopts(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    """The default one-machine deployment: kill -9 of the server ends its local agent (not the
    container), the restarted server's local agent adopts the container, the task succeeds,
    and no agent process is left once the server stops."""
    server = start_docker_server(pg_cluster, tmp_path)
    f = Flow(server, tmp_path)
    agent_pid = None
    try:
        wait_local_node(f.api)
        # Long enough to still run when the restarted server's agent adopts it; what it
        # writes while no agent runs is read back from the container's log by the new agent,
        # and its declared output is uploaded by the agent that adopted it.
        task = f.submit(
            "echo begin; sleep 4; echo while-down; echo result > outputs/r.txt; sleep 20;"
            " echo finished",
            outputs=["r.txt"],
        )
        wait_state(f.api, task["id"], "running", timeout=60)
        wait_for(lambda: "begin" in f.text(task["id"], "stdout"), timeout=15, what="first output")
        first_agent = _local_agent_pid(server)
        assert first_agent is not None
        server.stop(signal.SIGKILL)
        wait_for(lambda: not _alive(first_agent), timeout=10, what="the agent gone with its server")
        assert len(containers_of(task["id"])) == 1  # the user's container keeps running
        wait_for(
            lambda: "while-down" in _container_log(containers_of(task["id"])[0]) or None,
            timeout=30,
            what="a line written while no agent runs",
        )
        server.start()
        done = wait_state(f.api, task["id"], timeout=90)
        assert done["state"] == "succeeded", (done["attempts"], trace_kinds(f.api, task["id"]))
        assert [a["state"] for a in done["attempts"]] == ["succeeded"]  # adopted, not retried
        assert f.text(task["id"], "stdout") == "begin\nwhile-down\nfinished\n"
        assert_one_final(f.api, task["id"])
        r = f.api.get("/api/files", params={"task_id": task["id"], "state": "ready"})
        assert r.status_code == 200, r.text
        made = [a["name"] for a in r.json()["items"]]
        assert made == [f"tasks/{task['id']}/1/r.txt"], made
        wait_for(
            lambda: containers_of(task["id"]) == [] or None, timeout=15, what="no container left"
        )
        agent_pid = _local_agent_pid(server)
        assert agent_pid is not None and agent_pid != first_agent
    finally:
        server.stop()
        f.close()
    assert agent_pid is not None and not _alive(agent_pid)  # no orphan agent after a stop


def test_agent_kill9_while_the_env_image_builds(pg_cluster: PgCluster, tmp_path: Path) -> None:
    """kill -9 of the agent in ``preparing`` (its image build running): the restarted agent has
    no container to declare, the attempt is lost and retried once, the retry builds and runs;
    no build container or workspace is left behind."""
    server = start_docker_server(pg_cluster, tmp_path)
    f = Flow(server, tmp_path)
    marker = f"slow-build-{uuid.uuid4().hex[:10]}"
    f.env_sha = f.env_repo.commit(
        {
            "docker/Dockerfile": (
                f"FROM {BUSYBOX_IMAGE}\nRUN echo {marker}; sleep 4; echo b > /env-marker\n"
            )
        }
    )
    try:
        wait_local_node(f.api)
        task = f.submit("cat /env-marker")
        wait_for(lambda: marker in f.text(task["id"], "build"), timeout=60, what="build running")
        old_pid = _local_agent_pid(server)
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        done = wait_state(f.api, task["id"], timeout=120)
        task_now = assert_one_final(f.api, task["id"])
        assert done["state"] == "succeeded", (done["attempts"], trace_kinds(f.api, task["id"]))
        assert [a["state"] for a in task_now["attempts"]] in (["lost", "succeeded"],)
        assert f.text(task["id"], "stdout").strip().endswith("b")

        def build_containers() -> list[str]:
            return [
                line
                for line in docker(
                    "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}}"
                ).splitlines()
                if marker in line
            ]

        wait_for(lambda: build_containers() == [] or None, timeout=30, what="no build container")
        wait_for(
            lambda: not list(f.work_dir.glob(f"{task['id']}-*")) or None,
            timeout=15,
            what="no workspace left",
        )
    finally:
        server.stop()
        f.close()
