"""``unidesk secrets`` and ``submit --secret`` against a real server: values go in through stdin
or a file, never come back out."""

from __future__ import annotations

import io
import json
from pathlib import Path

from tests.client.test_cli_live import cli_env, run, submit_args  # noqa: F401
from unidesk.client.cli import main

VALUE = "cli-secret-value-0a1b2c"


def test_set_list_use_rm(live_server, cli_env, capsys, monkeypatch, tmp_path: Path):  # noqa: F811
    assert main(["login", "--server", live_server.url, "--token", live_server.token()]) == 0
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO(VALUE + "\n"))
    code, out, err = run(capsys, "secrets", "set", "wandb")
    assert code == 0 and "wandb" in out and VALUE not in out + err, err
    key_file = tmp_path / "key"
    key_file.write_text("-----BEGIN KEY-----\nline-one-of-key\n-----END KEY-----\n")
    code, out, _ = run(capsys, "secrets", "set", "deploy", "--global", "--from-file", str(key_file))
    assert code == 0 and "global/deploy" in out
    code, out, _ = run(capsys, "secrets", "list")
    assert code == 0 and "wandb" in out and "global/deploy" in out and VALUE not in out
    assert out.splitlines()[0].split()[:2] == ["REFERENCE", "SCOPE"]
    code, out, _ = run(capsys, "secrets", "list", "--json")
    assert {s["ref"] for s in json.loads(out)} == {"wandb", "global/deploy"}

    code, out, _ = run(
        capsys,
        *submit_args(
            "--secret",
            "WANDB_API_KEY=wandb",
            "--code-credential",
            "global/deploy",
            "--json",
            "--",
            "echo",
            "hi",
        ),
    )
    assert code == 0, out
    task = json.loads(out)
    assert task["secrets"] == {"WANDB_API_KEY": "wandb"}
    assert task["extra"]["credentials"]["code_repo"]["ref"] == "global/deploy"
    code, out, _ = run(capsys, "task", task["id"])
    assert VALUE not in out

    code, _, err = run(capsys, *submit_args("--secret", "X=nope", "--", "true"))
    assert code == 1 and "no secret 'nope'" in err
    code, _, err = run(capsys, *submit_args("--secret", "bad", "--", "true"))
    assert code == 1 and "KEY=VALUE" in err

    code, out, _ = run(capsys, "secrets", "rm", "wandb")
    assert code == 0 and "deleted" in out
    code, _, err = run(capsys, "secrets", "rm", "wandb")
    assert code == 1 and "no user secret" in err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = run(capsys, "secrets", "set", "empty")
    assert code == 1 and "empty value" in err
