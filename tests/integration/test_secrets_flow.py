"""A real task (busybox in Docker through the local agent) prints a secret in many ways: none of
them reaches the stored logs, the API, the SSE stream or a pg_dump of the database."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from tests.gateway_agent.gitrepos import GitRepo
from tests.integration.conftest import wait_state
from tests.integration.test_docker_flow import Flow, flow, sse_events  # noqa: F401
from tests.integration.test_hostssh import Sshd
from unidesk.core.db.embedded import pg_bin
from unidesk.core.db.engine import libpq_url

VALUE = "Tk9_p/A+b=c&d-s3cr3t-42xyz"
# Printed whole, on stderr, base64 (with and without a newline, after a prefix), URL-encoded,
# and split across two flushes of the agent's log buffer (the agent flushes every second).
SCRIPT = r"""
echo "plain: $API_KEY"
echo "err: $API_KEY" >&2
printf %s "$API_KEY" | base64
echo "$API_KEY" | base64
printf 'user:%s' "$API_KEY" | base64
printf %s "$API_KEY" | sed "s|/|%2F|g; s|+|%2B|g; s|=|%3D|g; s|&|%26|g"; echo
printf 'split: %s' "${API_KEY:0:9}"; sleep 2; printf '%s end\n' "${API_KEY:9}"
printf %s "$API_KEY" | sha256sum
"""


def _forms() -> list[str]:
    raw = VALUE.encode()
    return [
        VALUE,
        base64.b64encode(raw).decode().rstrip("="),
        base64.b64encode(raw + b"\n").decode()[:32],
        base64.b64encode(b"user:" + raw).decode()[8:36],
        quote(VALUE, safe=""),
    ]


def _assert_clean(text: str, where: str) -> None:
    for form in _forms():
        assert form not in text, f"{form!r} leaked into {where}"


def test_a_printed_secret_is_masked_everywhere(
    flow: Flow,  # noqa: F811
    tmp_path: Path,
) -> None:
    r = flow.api.put("/api/secrets/user/apikey", json={"value": VALUE})
    assert r.status_code == 201, r.text
    task = flow.submit(["sh", "-c", SCRIPT], secrets={"API_KEY": "apikey"})
    streamed = []
    for event, data in sse_events(flow.api, f"/api/tasks/{task['id']}/logs/stream"):
        if event == "end":
            break
        streamed.append(data["data"])
    done = wait_state(flow.api, task["id"], timeout=120)
    assert done["state"] == "succeeded", done
    assert done["secrets"] == {"API_KEY": "apikey"}

    stdout = flow.text(task["id"], "stdout")
    # The container had the value (its digest is printed), and every printed form is masked.
    assert hashlib.sha256(VALUE.encode()).hexdigest() in stdout
    assert "plain: ***" in stdout and "split: *** end" in stdout, stdout
    assert "err: ***" in flow.text(task["id"], "stderr")
    _assert_clean("".join(streamed), "the SSE stream")
    _assert_clean(flow.text(task["id"]), "the stored logs")
    for path in (f"/api/tasks/{task['id']}", f"/api/tasks/{task['id']}/trace", "/api/secrets"):
        _assert_clean(flow.api.get(path).text, path)
    _assert_clean(flow.api.get("/api/events", params={"limit": 500}).text, "the events")
    trace = flow.api.get(f"/api/tasks/{task['id']}/trace").json()["items"]
    assert trace[0]["payload"]["spec"]["secrets"] == {"API_KEY": "apikey"}

    dump = subprocess.run(
        [
            pg_bin("pg_dump"),
            "--format=plain",
            "--dbname",
            libpq_url(flow.server.env["UNIDESK_DATABASE_URL"]),
        ],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout.decode("utf-8", "replace")
    assert "CREATE TABLE public.secrets" in dump
    _assert_clean(dump, "pg_dump")
    # The server's own log never carries it either.
    _assert_clean(Path(flow.server.log_path).read_text(errors="replace"), "the server log")


def test_private_code_repository_over_ssh_with_a_deploy_key_secret(
    flow: Flow,  # noqa: F811
    tmp_path: Path,
) -> None:
    (tmp_path / "sshd").mkdir()
    sshd = Sshd(tmp_path / "sshd")
    try:
        repo = GitRepo(tmp_path / "private-code")
        sha = repo.commit({"run.sh": "echo private-code-ran\n"})
        url = f"ssh://root@127.0.0.1:{sshd.port}{repo.path}"
        key = (sshd.root / "user_key").read_text()
        for name, value in (("deploy", key), ("hosts", sshd.known_hosts.read_text())):
            assert (
                flow.api.put(f"/api/secrets/user/{name}", json={"value": value}).status_code == 201
            )
        body = {"code_repo_url": url, "code_commit_id": sha, "max_attempts": 1}

        without = flow.submit(["sh", "run.sh"], **body, credentials={"known_hosts": "hosts"})
        failed = wait_state(flow.api, without["id"], timeout=120)
        assert failed["state"] == "failed", failed
        assert "access denied" in (failed["attempts"][-1]["message"] or ""), failed["attempts"]

        task = flow.submit(
            ["sh", "run.sh"], **body, credentials={"code_repo": "deploy", "known_hosts": "hosts"}
        )
        done = wait_state(flow.api, task["id"], timeout=120)
        assert done["state"] == "succeeded", done
        assert flow.text(task["id"], "stdout") == "private-code-ran\n"
        # The key's lines appear nowhere the API shows, nor in the agent's cache on disk.
        cache = Path(flow.server.env["UNIDESK_DATA_DIR"]) / "local-agent" / "cache"
        key_line = key.splitlines()[1]
        for path in cache.rglob("*"):
            assert not path.is_file() or key_line.encode() not in path.read_bytes(), path
        assert key_line not in flow.api.get(f"/api/tasks/{task['id']}").text
    finally:
        sshd.stop()


def test_rotate_key_command_on_the_live_server(flow: Flow) -> None:  # noqa: F811
    value = "rotate-me-6b2f0c9e"
    assert flow.api.put("/api/secrets/user/rotating", json={"value": value}).status_code == 201
    key_file = Path(flow.server.env["UNIDESK_DATA_DIR"]) / "secrets.key"
    before = key_file.read_text()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("unidesk-server")), "secrets", "rotate-key"],
        env=flow.server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "re-encrypted" in done.stdout and value not in done.stdout + done.stderr
    assert key_file.read_text() != before and len(key_file.read_text().splitlines()) == 1
    # The running server (which never restarted) still resolves the secret into a dispatch.
    task = flow.submit(
        ["sh", "-c", 'printf %s "$V" | sha256sum; echo "v=$V"'], secrets={"V": "rotating"}
    )
    finished = wait_state(flow.api, task["id"], timeout=120)
    assert finished["state"] == "succeeded", finished
    out = flow.text(task["id"], "stdout")
    assert hashlib.sha256(value.encode()).hexdigest() in out and "v=***" in out
