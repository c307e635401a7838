"""Pure parts of the CLI: config file handling, request bodies, exit codes, rendering."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import pytest

from unidesk.client.cli import build_parser
from unidesk.client.follow import exit_code_for
from unidesk.client.render import format_time, pending_text, table, task_detail, usage_rows
from unidesk.client.settings import ClientSettings, NotLoggedIn, load_settings, save_settings
from unidesk.client.submit import task_create_body

SHA = "b" * 40


def test_settings_file_is_private_and_env_overrides(tmp_path: Path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    path = save_settings(ClientSettings(server="http://127.0.0.1:9", token='udk_"quoted"\\x'), env)
    assert path == tmp_path / "xdg" / "unidesk" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_settings(env) == ClientSettings(
        server="http://127.0.0.1:9", token='udk_"quoted"\\x'
    )
    over = load_settings({**env, "UNIDESK_TOKEN": "udk_env", "UNIDESK_SERVER": "http://h/"})
    assert (over.server, over.token) == ("http://h", "udk_env")
    assert "udk_env" not in repr(over)


def test_not_logged_in_is_clear(tmp_path: Path):
    with pytest.raises(NotLoggedIn, match="unidesk login"):
        load_settings({"UNIDESK_CLI_CONFIG": str(tmp_path / "none.toml")})
    with pytest.raises(NotLoggedIn, match="unidesk login"):
        load_settings(
            {"UNIDESK_CLI_CONFIG": str(tmp_path / "none.toml"), "UNIDESK_SERVER": "http://h"}
        )


def parse_submit(*flags: str) -> argparse.Namespace:
    base = [
        "submit",
        "--code-repo",
        "https://git.example/c.git",
        "--code-commit",
        SHA,
        "--env-repo",
        "https://git.example/e.git",
        "--env-commit",
        SHA,
        "--dockerfile",
        "Dockerfile",
    ]
    return build_parser().parse_args([*base, *flags])


def test_submit_body_from_flags():
    ns = parse_submit(
        "--cpus",
        "2",
        "--memory-mb",
        "1024",
        "--gpus",
        "1",
        "--label",
        "gpu=a100",
        "--env",
        "A=1",
        "--env",
        "B=x=y",
        "--timeout",
        "60",
        "--priority",
        "5",
        "--max-attempts",
        "2",
        "--name",
        "train",
    )
    body = task_create_body(ns, ["python", "train.py", "--lr", "0.1"])
    assert body["command"] == ["python", "train.py", "--lr", "0.1"]
    assert body["env"] == {"A": "1", "B": "x=y"}
    assert body["resources"] == {
        "cpus": 2.0,
        "memory_mb": 1024,
        "gpus": 1,
        "labels": {"gpu": "a100"},
    }
    assert (body["timeout_s"], body["priority"], body["max_attempts"], body["name"]) == (
        60,
        5,
        2,
        "train",
    )
    assert task_create_body(ns, ["echo hi && sleep 1"])["command"] == "echo hi && sleep 1"


@pytest.mark.parametrize(
    "flags,command,needle",
    [
        ((), [], "no command"),
        (("--env", "NOEQUALS"), ["x"], "--env"),
        (("--label", "=v"), ["x"], "--label"),
    ],
)
def test_submit_body_refuses_bad_input(flags, command, needle):
    with pytest.raises(ValueError, match=needle):
        task_create_body(parse_submit(*flags), command)


@pytest.mark.parametrize(
    "task,code",
    [
        ({"state": "succeeded"}, 0),
        ({"state": "cancelled"}, 3),
        ({"state": "failed", "reason": "exit_nonzero", "attempts": [{"exit_code": 7}]}, 7),
        ({"state": "failed", "reason": "exit_nonzero", "attempts": [{"exit_code": 300}]}, 1),
        ({"state": "failed", "reason": "node_lost", "attempts": [{"exit_code": None}]}, 1),
        ({"state": "failed", "reason": "timed_out", "attempts": [{"exit_code": 137}]}, 1),
    ],
)
def test_exit_code_for(task, code):
    assert exit_code_for(task) == code


def test_times_are_beijing():
    assert format_time("2026-11-27T10:00:00.123456Z") == "2026-11-27 18:00:00"
    assert format_time("2026-12-31T20:30:00+00:00") == "2027-01-01 04:30:00"
    assert format_time(None) == "-"


def test_table_aligns_columns():
    out = table(["ID", "STATE"], [("a", "running"), ("bbbb", None)]).splitlines()
    assert out == ["ID    STATE", "a     running", "bbbb  -"]


def test_task_detail_shows_attempts():
    task = {
        "id": "t1",
        "name": "n",
        "state": "failed",
        "reason": "exit_nonzero",
        "code_repo_url": "c",
        "code_commit_id": SHA,
        "env_repo_url": "e",
        "env_commit_id": SHA,
        "dockerfile_path": "D",
        "command": ["sh", "-c", "exit 2"],
        "resources": {"cpus": 1, "memory_mb": 512, "gpus": 0, "labels": {}},
        "attempts": [
            {
                "attempt_no": 1,
                "node_name": "n1",
                "state": "failed",
                "exit_code": 2,
                "reason": "exit_nonzero",
                "started_at": "2026-11-27T10:00:00Z",
            }
        ],
    }
    text = task_detail(task)
    assert (
        "State     failed  (exit_nonzero)" in text
        and "n1" in text
        and "2026-11-27 18:00:00" in text
    )


@pytest.mark.parametrize(
    ("task", "text"),
    [
        ({"state": "running", "pending_reason": "no_node_fits"}, None),
        (
            {"state": "pending", "pending_reason": "waiting_for_resources", "ranked_ahead": 3},
            "waiting_for_resources (3 ranked ahead)",
        ),
        (
            {
                "state": "pending",
                "pending_reason": "waiting_for_resources",
                "ranked_ahead": 0,
                "pending_detail": {"reserved_node": "gpu-1"},
            },
            "waiting_for_resources (0 ranked ahead, reserved gpu-1)",
        ),
        (
            {
                "state": "pending",
                "pending_reason": "retry_backoff",
                "not_before": "2026-11-27T10:00:00Z",
            },
            "retry_backoff until 2026-11-27 18:00:00",
        ),
        (
            {
                "state": "pending",
                "pending_reason": "over_quota",
                "pending_detail": {"message": "owner holds 2 of 2 GPUs"},
            },
            "over_quota: owner holds 2 of 2 GPUs",
        ),
        (
            {
                "state": "pending",
                "pending_reason": "held_for_reservation",
                "pending_detail": {"node": "gpu-1"},
            },
            "held_for_reservation (node gpu-1)",
        ),
    ],
)
def test_pending_text(task, text):
    assert pending_text(task) == text


def test_usage_rows():
    out = usage_rows(
        {
            "items": [
                {
                    "day": "2026-11-30",
                    "username": "mia",
                    "attempts": 2,
                    "cpu_hours": 1.5,
                    "gpu_hours": 0.25,
                    "memory_gb_hours": 3,
                }
            ],
            "fair_share": [{"username": "mia", "share_cpu_hours": 4.125}],
        }
    )
    assert "2026-11-30  mia   2         1.50   0.25   3.00" in out and "4.12" in out
