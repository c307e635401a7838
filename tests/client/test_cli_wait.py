"""``unidesk submit --wait`` end to end: real server process, real ``unidesk-agent`` process.

The agent uses the test-only subprocess runner (no Docker needed for following states and
output); the Docker path is covered by the execution tests.
"""

from __future__ import annotations

import json
import time

from unidesk.client.cli import main

SHA = "d" * 40


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def submit(*extra: str) -> list[str]:
    return [
        "submit",
        "--code-repo",
        "file:///srv/code",
        "--code-commit",
        SHA,
        "--env-repo",
        "file:///srv/env",
        "--env-commit",
        SHA,
        "--dockerfile",
        "Dockerfile",
        "--label",
        "zone=cli",
        *extra,
    ]


def test_submit_wait_streams_output_and_exits_with_outcome(
    live_server, node, capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv("UNIDESK_CLI_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("UNIDESK_SERVER", live_server.url)
    monkeypatch.setenv("UNIDESK_TOKEN", live_server.token())
    deadline = time.monotonic() + 30
    while True:
        code, out, _ = run(capsys, "nodes", "--json")
        nodes = json.loads(out)["items"]
        if any(n["name"] == "cli-node" and n["state"] == "online" for n in nodes):
            break
        assert time.monotonic() < deadline, f"agent never came online: {nodes}"
        time.sleep(0.2)
    code, out, _ = run(capsys, "nodes")
    assert "cli-node" in out and "zone=cli" in out

    code, out, err = run(
        capsys, *submit("--wait"), "--", "echo one; sleep 0.5; echo two; echo warn >&2; exit 3"
    )
    assert code == 3, err
    assert out == "one\ntwo\n"
    assert "warn" in err and "running (attempt 1 on cli-node)" in err and "failed" in err

    code, out, err = run(capsys, *submit("--wait", "--name", "ok"), "--", "echo fine")
    assert code == 0 and out == "fine\n", err
    task_id = err.splitlines()[0].split()[-1]  # the id comes first, before any state line
    code, listed, _ = run(capsys, "tasks", "--json", "--state", "succeeded")
    ok = [t for t in json.loads(listed)["items"] if t["name"] == "ok"]
    assert len(ok) == 1 and ok[0]["id"] == task_id
    code, logs, _ = run(capsys, "logs", ok[0]["id"])
    assert code == 0 and logs == "fine\n"
    code, shown, _ = run(capsys, "task", ok[0]["id"])
    assert "task.started" in shown and "succeeded" in shown and "cli-node" in shown
