"""``unidesk-agent`` against a real server process: revoking its token ends it with exit 77."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def test_revoked_token_stops_the_agent_for_good(live_server, tmp_path: Path):
    with live_server.api() as api:
        created = api.post("/api/node-tokens", json={"name": "to-revoke"}).json()
        (tmp_path / "tok").write_text(created["secret"])
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "unidesk.gateway_agent.cli",
                "--server",
                live_server.url,
                "--token-file",
                str(tmp_path / "tok"),
                "--runner",
                "subprocess-test",
                "--node-name",
                "rev",
                "--state-dir",
                str(tmp_path / "st"),
                "--cache-dir",
                str(tmp_path / "c"),
            ],
            env={k: v for k, v in os.environ.items() if not k.startswith("UNIDESK_")},
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not any(
                n["name"] == "rev" and n["state"] == "online"
                for n in api.get("/api/nodes").json()["items"]
            ):
                assert time.monotonic() < deadline and proc.poll() is None, (
                    "agent never came online"
                )
                time.sleep(0.2)
            assert api.delete(f"/api/node-tokens/{created['token']['id']}").status_code == 204
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 77, err
    assert "giving up" in err and created["secret"] not in err
