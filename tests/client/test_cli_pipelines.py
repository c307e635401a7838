"""``unidesk pipeline submit [--wait]``, ``unidesk pipeline ID``, ``unidesk pipelines`` end to end:
real server process (pipelines plugin), real ``unidesk-agent`` process with the subprocess runner,
real git checkout for ``--from-repo``."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gateway_agent.gitrepos import GitRepo
from unidesk.client.api import ApiClient
from unidesk.client.cli import main
from unidesk.plugins.pipelines.progress import PipelineWatcher, step_layers, step_lines

pytestmark = pytest.mark.plugins
SHA = "e" * 40


@pytest.fixture
def cli(live_server, monkeypatch, tmp_path):
    monkeypatch.setenv("UNIDESK_CLI_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("UNIDESK_SERVER", live_server.url)
    monkeypatch.setenv("UNIDESK_TOKEN", live_server.token())
    return live_server


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def wait_online(live_server) -> None:
    deadline = time.monotonic() + 30
    with live_server.api() as api:
        while True:
            nodes = api.get("/api/nodes").json()["items"]
            if any(n["name"] == "cli-node" and n["state"] == "online" for n in nodes):
                return
            assert time.monotonic() < deadline, f"agent never came online: {nodes}"
            time.sleep(0.2)


def spec(name: str, *, fail_train: bool = False) -> dict[str, Any]:
    train = "echo train {{ matrix.lr }}" + ("; exit 4" if fail_train else "")
    return {
        "name": name,
        "defaults": {
            "code_repo_url": "file:///srv/code",
            "code_commit_id": SHA,
            "env_repo_url": "file:///srv/env",
            "env_commit_id": SHA,
            "dockerfile_path": "Dockerfile",
            "resources": {"cpus": 0.1, "memory_mb": 16, "labels": {"zone": "cli"}},
            "max_attempts": 1,
        },
        "steps": [
            {"name": "prepare", "task": {"command": "echo prepared"}},
            {
                "name": "train",
                "depends_on": ["prepare"],
                "matrix": {"lr": [0.1, 0.01]},
                "task": {"command": train},
            },
            {"name": "aggregate", "depends_on": ["train"], "task": {"command": "echo agg"}},
            {
                "name": "report-failure",
                "depends_on": ["train"],
                "when": "on_failure",
                "task": {"command": "echo reporting"},
            },
        ],
    }


def test_submit_wait_follows_the_steps_and_exits_with_the_outcome(
    cli, node, capsys, tmp_path: Path
) -> None:
    wait_online(cli)
    good = tmp_path / "good.yml"
    good.write_text(yaml.safe_dump(spec("cli-good")))
    code, out, err = run(capsys, "pipeline", "submit", str(good), "--wait")
    assert code == 0, err
    pipeline_id = err.splitlines()[0].strip()  # not a TTY: the bare id first, then plain lines
    assert re.fullmatch(r"[0-9a-f-]{36}", pipeline_id), err
    lines = [re.sub(r"^\[\d\d:\d\d:\d\d\] ", "", line) for line in err.splitlines()[1:]]
    assert any(line.startswith("step prepare succeeded") for line in lines), err
    assert any(line.startswith("step train succeeded  2/2 points done") for line in lines), err
    assert any(line.startswith("step aggregate succeeded") for line in lines), err
    assert any(line.startswith("step report-failure skipped") for line in lines), err
    assert lines[-1] == "pipeline cli-good succeeded", err
    # each step's state changes are printed once, in the order they happened
    assert lines.index(next(x for x in lines if x.startswith("step prepare succeeded"))) < (
        lines.index(next(x for x in lines if x.startswith("step aggregate succeeded")))
    )
    assert out == ""

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spec("cli-bad", fail_train=True)))
    code, out, err = run(capsys, "pipeline", "submit", str(bad), "--wait", "--json")
    assert code == 1, err
    final = json.loads(out)
    steps = {s["name"]: s for s in final["steps"]}
    assert final["state"] == "failed"
    assert steps["train"]["state"] == "failed" and steps["aggregate"]["state"] == "skipped"
    assert steps["report-failure"]["state"] == "succeeded"

    code, out, _ = run(capsys, "pipelines")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "STATE", "OWNER"]
    by_name = {r.split()[1]: r for r in rows}
    assert by_name["cli-good"].split()[2] == "succeeded"
    assert "3 succeeded, 1 skipped" in by_name["cli-good"]
    assert by_name["cli-bad"].split()[2] == "failed"
    code, out, _ = run(capsys, "pipelines", "--state", "failed", "--json")
    assert [p["name"] for p in json.loads(out)["items"]] == ["cli-bad"]

    code, out, _ = run(capsys, "pipeline", pipeline_id)
    assert code == 0
    assert out.startswith("Pipeline cli-good  succeeded")
    good_detail = cli_get(cli, f"/api/pipelines/{pipeline_id}")
    for s in good_detail["steps"]:
        for pt in s["points"]:
            if pt["task_id"]:
                assert pt["task_id"] in out  # every task of every step is shown
    assert re.search(r"train\s+succeeded\s+prepare\s+-\s+lr=0.1", out), out
    assert re.search(r"^\s+lr=0.01\s+[0-9a-f-]{36}\s+succeeded", out, re.M), out


def cli_get(server, path: str) -> Any:
    with server.api() as api:
        r = api.get(path)
        r.raise_for_status()
        return r.json()


def test_submit_from_repo_pins_the_commit_and_reads_its_pipeline_file(
    cli, capsys, tmp_path: Path
) -> None:
    repo = GitRepo(tmp_path / "checkout")
    body = spec("from-repo")
    del body["defaults"]["code_commit_id"], body["defaults"]["code_repo_url"]
    first = repo.commit({".unidesk/pipeline.yml": yaml.safe_dump(body)})
    body["name"] = "from-repo-later"
    repo.commit({".unidesk/pipeline.yml": yaml.safe_dump(body)})
    repo.git("remote", "add", "origin", "https://git.example.org/exp.git")

    code, out, err = run(
        capsys, "pipeline", "submit", "--from-repo", str(repo.path), "--commit", first, "--json"
    )
    assert code == 0, err
    created = json.loads(out)
    assert created["name"] == "from-repo"  # the file as it was at that commit
    assert created["spec"]["defaults"]["code_commit_id"] == first
    assert created["spec"]["defaults"]["code_repo_url"] == "https://git.example.org/exp.git"

    code, out, err = run(  # a branch is resolved to its full SHA at submit
        capsys, "pipeline", "submit", "--from-repo", str(repo.path), "--commit", "main", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["spec"]["defaults"]["code_commit_id"] == repo.git("rev-parse", "main")

    code, _, err = run(capsys, "pipeline", "submit", "--from-repo", str(repo.path))
    assert code == 2 and "--commit" in err
    code, _, err = run(
        capsys, "pipeline", "submit", "--from-repo", str(repo.path), "--commit", "no-such-rev"
    )
    assert code == 2 and "no-such-rev" in err


def test_submit_refusals_list_every_problem_and_create_nothing(cli, capsys, tmp_path: Path) -> None:
    body = spec("broken")
    body["steps"][1]["depends_on"] = ["prepare", "ghost"]
    body["steps"][2]["when"] = "sometimes"
    body["steps"][0]["depends_on"] = ["aggregate"]  # a cycle
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(body))
    code, out, err = run(capsys, "pipeline", "submit", str(path))
    assert code == 1 and out == ""
    assert "ghost" in err and "sometimes" in err and "cycle" in err.lower(), err
    assert len([line for line in err.splitlines() if line.startswith("  [")]) >= 3, err
    assert cli_get(cli, "/api/pipelines")["items"] == []

    path.write_text("name: [unclosed")
    code, _, err = run(capsys, "pipeline", "submit", str(path))
    assert code == 2 and "not YAML or JSON" in err
    path.write_text("- a list\n")
    code, _, err = run(capsys, "pipeline", "submit", str(path))
    assert code == 2 and "mapping" in err
    code, _, err = run(capsys, "pipeline", "submit")
    assert code == 2 and "FILE" in err


def test_live_view_redraws_the_steps_in_place_on_a_terminal(cli, capsys) -> None:
    body = spec("live-view")
    body["steps"][1]["task"]["outputs"] = ["model.txt"]
    body["steps"][2]["task"]["inputs"] = [{"from": "train/model.txt"}]
    with cli.api() as http:
        r = http.post("/api/pipelines", json=body)
        assert r.status_code == 201, r.text
        created = r.json()
        http.post(f"/api/pipelines/{created['id']}/cancel").raise_for_status()
    err = io.StringIO()
    with ApiClient(cli.url, cli.token()) as api:
        final = PipelineWatcher(api, created["id"], live=True, poll_s=0.05, err=err).run()
    assert final["state"] == "cancelled"
    text = err.getvalue()
    assert "pipeline live-view cancelled" in text
    # the DAG in order and indented by depth, with a state icon per step
    lines = text.splitlines()
    names = [line.split()[1] for line in lines[1:]]
    assert names == ["prepare", "train", "aggregate", "report-failure"], text
    depth = [line.index(name) for line, name in zip(lines[1:], names, strict=True)]
    assert depth[0] < depth[1] < depth[2] == depth[3], text
    assert all(line.strip()[0] in "◌◎▶✓✗↷⊘" for line in lines[1:]), text

    # The files a step takes from another show before it starts (from the spec).
    code, out, _ = run(capsys, "pipeline", created["id"])
    assert code == 0
    assert re.search(r"^aggregate\s+\S+\s+train\s+-\s+-\s+-\s+-\s+train/model.txt$", out, re.M), out


def test_submit_wait_on_a_real_terminal_redraws_in_place(cli, node, tmp_path: Path) -> None:
    """The command in a pseudo-terminal, as a person runs it: the DAG drawn with icons and
    redrawn in place (cursor up, clear), the outcome as the exit code."""
    wait_online(cli)
    path = tmp_path / "tty.yml"
    path.write_text(yaml.safe_dump(spec("cli-tty")))
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIDESK_")}
    env |= {
        "UNIDESK_CLI_CONFIG": str(tmp_path / "none.toml"),
        "UNIDESK_SERVER": cli.url,
        "UNIDESK_TOKEN": cli.token(),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "unidesk.client.cli", "pipeline", "submit", str(path), "--wait"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the terminal closed: the command ended
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert code == 0, text
    assert text.startswith("Submitted pipeline "), text
    assert "\x1b[" in text and "F\x1b[J" in text, "never redrawn in place: " + repr(text)
    last = text.rsplit("\x1b[J", 1)[-1]
    assert "pipeline cli-tty succeeded" in last, repr(last)
    assert re.search(r"✓ +prepare +succeeded", last) and re.search(r"↷ +report-failure", last)


def test_step_layers_and_lines_follow_the_dag() -> None:
    steps = [
        {"name": "z", "state": "waiting", "depends_on": ["b", "a"]},
        {"name": "b", "state": "running", "depends_on": ["a"]},
        {"name": "a", "state": "succeeded", "depends_on": []},
        {"name": "loop", "state": "waiting", "depends_on": ["loop", "ghost"]},
    ]
    assert step_layers(steps) == {"z": 2, "b": 1, "a": 0, "loop": 0}
    lines = step_lines({"steps": steps}, icons=False)
    assert [line.split()[0] for line in lines] == ["a", "loop", "b", "z"]
    assert "after b, a" in lines[-1]
