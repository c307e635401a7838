"""Client-test fixtures: a real ``unidesk-agent`` process beside the test's live server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def node(live_server, tmp_path: Path):
    """A real agent process (node ``cli-node``, label ``zone=cli``) running tasks with the
    test-only subprocess runner (no Docker)."""
    with live_server.api() as api:
        r = api.post("/api/node-tokens", json={"name": "cli-wait"})
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
    token_file = tmp_path / "node-token"
    token_file.write_text(secret)
    log = open(tmp_path / "agent.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "unidesk.gateway_agent.cli",
            "--server",
            live_server.url,
            "--token-file",
            str(token_file),
            "--runner",
            "subprocess-test",
            "--node-name",
            "cli-node",
            "--label",
            "zone=cli",
            "--state-dir",
            str(tmp_path / "agent-state"),
            "--cache-dir",
            str(tmp_path / "agent-cache"),
        ],
        env={k: v for k, v in os.environ.items() if not k.startswith("UNIDESK_")},
        stdout=log,
        stderr=log,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
