"""The ``unidesk`` CLI against a real server process (embedded PostgreSQL) on loopback."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from unidesk.client.cli import main

SHA = "c" * 40
REPO = "https://git.example.org/repo.git"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in ("UNIDESK_SERVER", "UNIDESK_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "cfg" / "config.toml"
    monkeypatch.setenv("UNIDESK_CLI_CONFIG", str(path))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def submit_args(*extra: str, commit: str = SHA) -> list[str]:
    return [
        "submit",
        "--code-repo",
        REPO,
        "--code-commit",
        commit,
        "--env-repo",
        REPO,
        "--env-commit",
        SHA,
        "--dockerfile",
        "Dockerfile",
        *extra,
    ]


def test_login_checks_the_token_and_stores_it_privately(live_server, cli_env, capsys):
    code, _, err = run(capsys, "login", "--server", live_server.url, "--token", "udk_wrong")
    assert code == 1 and "error:" in err and not cli_env.exists()
    token = live_server.token()
    code, out, _ = run(capsys, "login", "--server", live_server.url + "/", "--token", token)
    assert code == 0 and "as admin" in out
    assert stat.S_IMODE(cli_env.stat().st_mode) == 0o600
    assert token in cli_env.read_text()
    code, out, _ = run(capsys, "tasks")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["ID", "NAME", "STATE"]


def test_submit_list_show_cancel(live_server, cli_env, capsys, monkeypatch):
    monkeypatch.setenv("UNIDESK_SERVER", live_server.url)
    monkeypatch.setenv("UNIDESK_TOKEN", live_server.token())
    code, out, err = run(
        capsys,
        *submit_args(
            "--name",
            "cli-test",
            "--label",
            "zone=nowhere",
            "--env",
            "A=1",
            "--priority",
            "4",
            "--json",
        ),
        "--",
        "echo hi",
    )
    assert code == 0, err
    task = json.loads(out)
    assert task["name"] == "cli-test" and task["env"] == {"A": "1"}
    assert task["command"][-1] == "echo hi"
    assert task["resources"]["labels"] == {"zone": "nowhere"} and task["priority"] == 4
    code, out, _ = run(capsys, "tasks", "--json")
    assert [t["id"] for t in json.loads(out)["items"]] == [task["id"]]
    code, out, _ = run(capsys, "tasks", "--state", "succeeded")
    assert task["id"] not in out
    code, out, _ = run(capsys, "task", task["id"])
    assert code == 0 and task["id"] in out and "task.submitted" in out
    code, out, _ = run(capsys, "cancel", task["id"])
    assert code == 0 and "cancel" in out
    code, out, _ = run(capsys, "task", task["id"], "--json")
    shown = json.loads(out)
    assert shown["state"] == "cancelled"
    assert [e["kind"] for e in shown["trace"]][:1] == ["task.submitted"]
    assert "task.cancelled" in [e["kind"] for e in shown["trace"]]


def test_errors_print_the_problem_detail(live_server, cli_env, capsys, monkeypatch):
    monkeypatch.setenv("UNIDESK_SERVER", live_server.url)
    monkeypatch.setenv("UNIDESK_TOKEN", live_server.token())
    code, _, err = run(capsys, *submit_args(commit="main"), "--", "true")
    assert code == 1 and "code_commit_id" in err
    code, _, err = run(capsys, "task", "00000000-0000-0000-0000-000000000000")
    assert code == 1 and err.startswith("unidesk: error:")
    code, out, _ = run(capsys, "tasks", "--json")
    assert json.loads(out)["items"] == []
    code, out, _ = run(capsys, "nodes")
    assert code == 0 and out.split()[:2] == ["NAME", "STATE"]
    monkeypatch.setenv("UNIDESK_SERVER", "http://127.0.0.1:1")
    code, _, err = run(capsys, "nodes")
    assert code == 1 and "cannot reach the server" in err


def test_tasks_show_why_a_task_waits_and_usage_prints(live_server, cli_env, capsys, monkeypatch):
    import time

    monkeypatch.setenv("UNIDESK_SERVER", live_server.url)
    monkeypatch.setenv("UNIDESK_TOKEN", live_server.token())
    code, out, err = run(capsys, *submit_args("--label", "zone=nowhere", "--json"), "--", "true")
    assert code == 0, err
    task_id = json.loads(out)["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the server's scheduler gives it a reason
        code, out, _ = run(capsys, "tasks")
        if "no_node_fits" in out:
            break
        time.sleep(0.3)
    row = next(line for line in out.splitlines() if line.startswith(task_id))
    assert "no_node_fits: no online node" in row
    code, out, _ = run(capsys, "task", task_id)
    assert "Waiting   no_node_fits" in out and "task.unschedulable" in out
    code, out, _ = run(capsys, "usage", "--days", "3")
    assert code == 0 and "CPU-H" in out and "FAIR-SHARE" in out
    code, out, _ = run(capsys, "usage", "--json")
    assert set(json.loads(out)) == {
        "since",
        "items",
        "fair_share",
        "accounts",
        "account_fair_share",
    }


def test_quota_list_set_delete(live_server, cli_env, capsys, monkeypatch):
    monkeypatch.setenv("UNIDESK_SERVER", live_server.url)
    monkeypatch.setenv("UNIDESK_TOKEN", live_server.token())
    code, out, _ = run(capsys, "quota", "list")
    assert code == 0 and out.split()[:3] == ["USER", "ACCOUNT", "NODES"]
    code, out, err = run(capsys, "quota", "set", "--user", "admin", "--gpus", "2", "--cpus", "8")
    assert code == 0, err
    assert "admin" in out and "all" in out
    code, out, err = run(
        capsys, "quota", "set", "--account", "apollo", "--label", "pool=a100", "--gpus", "1"
    )
    assert code == 0, err
    code, out, _ = run(capsys, "quota", "list", "--json")
    got = [(q["username"], q["account"], q["label"], q["max_gpus"]) for q in json.loads(out)]
    assert got == [("admin", None, "", 2), (None, "apollo", "pool=a100", 1)]
    code, _, err = run(capsys, "quota", "set", "--user", "nobody", "--gpus", "1")
    assert code == 1 and "no user named 'nobody'" in err
    code, _, err = run(capsys, "quota", "set", "--account", "bad name", "--gpus", "1")
    assert code == 1 and "not an account name" in err
    code, out, err = run(capsys, "quota", "delete", "--account", "apollo", "--label", "pool=a100")
    assert code == 0 and "removed" in out, err
    code, _, err = run(capsys, "quota", "delete", "--account", "apollo", "--label", "pool=a100")
    assert code == 1 and "has no quota" in err
    code, out, err = run(capsys, "quota", "delete", "--user", "admin")
    assert code == 0, err
    code, out, _ = run(capsys, "quota", "list", "--json")
    assert json.loads(out) == []


def test_submit_batch_from_json_lines_all_or_none(
    live_server, cli_env, capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv("UNIDESK_SERVER", live_server.url)
    monkeypatch.setenv("UNIDESK_TOKEN", live_server.token())
    body = {
        "code_repo_url": REPO,
        "code_commit_id": SHA,
        "env_repo_url": REPO,
        "env_commit_id": SHA,
        "dockerfile_path": "Dockerfile",
        "command": "true",
    }
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "\n".join(json.dumps({**body, "name": f"b{i}"}) for i in range(3))
        + "\n"
        + json.dumps({**body, "code_commit_id": "main"})
        + "\n"
    )
    code, _, err = run(capsys, "submit-batch", str(bad))
    assert code == 1 and "1 of 4 tasks are invalid" in err and "[3]" in err
    code, out, _ = run(capsys, "tasks", "--json")
    assert json.loads(out)["items"] == []
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{**body, "name": f"g{i}"} for i in range(3)]))
    code, out, err = run(capsys, "submit-batch", str(good))
    assert code == 0, err
    ids = out.split()
    assert len(ids) == 3
    code, out, _ = run(capsys, "tasks", "--json")
    assert {t["id"] for t in json.loads(out)["items"]} == set(ids)


def test_account_members_and_submit_with_an_account(live_server, cli_env, capsys, monkeypatch):
    admin = live_server.token()
    body = {"username": "mia", "password": "mia-password-1", "role": "member"}
    assert live_server.api(admin).post("/api/users", json=body).status_code == 201
    mia = live_server.token("mia", "mia-password-1")
    monkeypatch.setenv("UNIDESK_SERVER", live_server.url)
    monkeypatch.setenv("UNIDESK_TOKEN", mia)
    code, _, err = run(capsys, *submit_args("--account", "apollo"), "--", "true")
    assert code == 1 and "not a member of account 'apollo'" in err
    code, _, err = run(capsys, "account", "add", "apollo", "--user", "mia")
    assert code == 1 and "admin" in err
    monkeypatch.setenv("UNIDESK_TOKEN", admin)
    code, out, err = run(capsys, "account", "add", "apollo", "--user", "mia")
    assert code == 0 and "mia is a member of apollo" in out, err
    code, out, _ = run(capsys, "account", "list")
    assert code == 0 and out.splitlines()[1].split()[:2] == ["apollo", "mia"]
    monkeypatch.setenv("UNIDESK_TOKEN", mia)
    code, out, err = run(capsys, *submit_args("--account", "apollo", "--json"), "--", "true")
    assert code == 0 and json.loads(out)["account"] == "apollo", err
    monkeypatch.setenv("UNIDESK_TOKEN", admin)
    code, out, err = run(capsys, "account", "remove", "apollo", "--user", "mia")
    assert code == 0 and "no longer a member" in out, err
    code, out, _ = run(capsys, "account", "list", "--json")
    assert code == 0 and json.loads(out) == []
