"""A real task (busybox in Docker through the local agent) prints a secret in many ways: none of
them reaches the stored logs, the API, the SSE stream or a pg_dump of the database."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import PgCluster
from tests.integration.conftest import wait_state
from tests.integration.test_docker_flow import (
    Flow,
    sse_events,
    start_docker_server,
    wait_local_node,
)
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


@pytest.fixture(scope="module")
def flow(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    root = tmp_path_factory.mktemp("secrets-flow")
    server = start_docker_server(pg_cluster, root)
    f = Flow(server, root)
    try:
        wait_local_node(f.api)
        yield f
    finally:
        server.stop()
        f.close()


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


def test_a_printed_secret_is_masked_everywhere(flow: Flow, tmp_path: Path) -> None:
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
