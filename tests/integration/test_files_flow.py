"""A task consumes a dataset artifact and produces an output artifact, end to end through
presigned URLs.

Real parts: a ``unidesk-server`` process (local backend, or s3 against ``moto_server`` on
loopback), a ``unidesk-agent`` process with the Docker runner, the real Docker engine running
the busybox test image with ``--network none`` (the agent moves the bytes, not the container),
git repositories made here, and the ``unidesk`` CLI for ``files put/get`` and ``submit``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from tests.conftest import free_port
from tests.docker_images import ensure_busybox_image
from tests.gateway_agent.gitrepos import GitRepo
from unidesk.client.cli import main

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory):
    """A loopback S3 endpoint (moto's server; it does not check signatures, see TESTING.md)."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            boto3.client(
                "s3",
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id="k",
                aws_secret_access_key="s",
            ).list_buckets()
            break
        except Exception:
            assert time.monotonic() < deadline and proc.poll() is None, "moto_server did not start"
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(10)


def s3_settings(url: str, bucket: str) -> dict[str, str]:
    boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
    ).create_bucket(Bucket=bucket)
    return {
        "storage_backend": "s3",
        "s3_endpoint_url": url,
        "s3_bucket": bucket,
        "s3_access_key_id": "k",
        "s3_secret_access_key": "s",
        "s3_multipart_threshold_bytes": str(5 * 1024 * 1024),
        "s3_part_size_bytes": str(5 * 1024 * 1024),
    }


def start_agent(server, tmp_path: Path, name: str) -> subprocess.Popen:
    with server.api() as api:
        secret = api.post("/api/node-tokens", json={"name": name}).json()["secret"]
    token_file = tmp_path / f"{name}.token"
    token_file.write_text(secret)
    log = open(tmp_path / f"{name}.log", "wb")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "unidesk.gateway_agent.cli",
            "--server",
            server.url,
            "--token-file",
            str(token_file),
            "--runner",
            "docker",
            "--allow-file-urls",
            "--node-name",
            name,
            "--label",
            f"zone={name}",
            "--state-dir",
            str(tmp_path / f"{name}-state"),
            "--cache-dir",
            str(tmp_path / f"{name}-cache"),
        ],
        env={k: v for k, v in os.environ.items() if not k.startswith("UNIDESK_")},
        stdout=log,
        stderr=log,
    )


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_task_consumes_dataset_and_produces_artifact(
    backend, live_server_factory, moto_url, tmp_path, capsys, monkeypatch
):
    extra = (
        s3_settings(moto_url, f"flow-{os.getpid()}-{time.monotonic_ns() % 10**6}")
        if backend == "s3"
        else {}
    )
    server = live_server_factory(**extra)
    assert server.api().get("/health").json()["checks"]["storage"] == "ok"
    image = ensure_busybox_image()
    code_repo = GitRepo(tmp_path / "code")
    code_sha = code_repo.commit(
        {
            "run.sh": "tr a-z A-Z < /inputs/words.txt > /workspace/outputs/upper.txt\n"
            "mkdir -p /workspace/outputs/ckpt && cp /workspace/data/big.bin "
            "/workspace/outputs/ckpt/\n"
            "wc -c < /workspace/data/big.bin\n"
        }
    )
    env_repo = GitRepo(tmp_path / "env")
    env_sha = env_repo.commit({"Dockerfile": f"FROM {image}\n"})
    agent = start_agent(server, tmp_path, f"files-{backend}")
    monkeypatch.setenv("UNIDESK_CLI_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("UNIDESK_SERVER", server.url)
    monkeypatch.setenv("UNIDESK_TOKEN", server.token())
    try:
        words = tmp_path / "words.txt"
        words.write_text("hello large files\n")
        big = tmp_path / "big.bin"
        big.write_bytes(
            os.urandom(6 * 1024 * 1024 + 123)
        )  # multipart on s3 (5 MiB parts), chunked on local
        code, out, err = cli(
            capsys, "files", "put", str(words), "--name", "datasets/words.txt", "--json"
        )
        assert code == 0, err
        code, out, err = cli(
            capsys,
            "files",
            "put",
            str(big),
            "--name",
            "datasets/big.bin",
            "--chunk-mb",
            "2",
            "--json",
        )
        assert code == 0, err
        assert json.loads(out)["state"] == "ready"

        submit = [
            "submit",
            "--code-repo",
            code_repo.url,
            "--code-commit",
            code_sha,
            "--env-repo",
            env_repo.url,
            "--env-commit",
            env_sha,
            "--dockerfile",
            "Dockerfile",
            "--label",
            f"zone=files-{backend}",
            "--input",
            "datasets/words.txt",
            "--input",
            "datasets/big.bin:/workspace/data/big.bin",
            "--output",
            "upper.txt",
            "--output",
            "/workspace/outputs/ckpt/*",
            "--timeout",
            "120",
            "--wait",
        ]
        code, out, err = cli(capsys, *submit, "--name", "first", "--", "sh /workspace/run.sh")
        assert code == 0, err + (tmp_path / f"files-{backend}.log").read_text()[-3000:]
        assert out.strip() == str(big.stat().st_size)
        task_id = err.splitlines()[0].split()[-1]

        code, out, _ = cli(capsys, "files", "ls", "--json", "--name", f"tasks/{task_id}/")
        made = {a["name"].rsplit("/", 1)[-1]: a for a in json.loads(out)["items"]}
        assert set(made) == {"upper.txt", "big.bin"}
        assert made["upper.txt"]["task_id"] == task_id and made["upper.txt"]["attempt_no"] == 1
        assert made["upper.txt"]["backend"] == backend and made["upper.txt"]["state"] == "ready"
        code, out, err = cli(
            capsys,
            "files",
            "get",
            f"tasks/{task_id}/1/upper.txt",
            "-o",
            str(tmp_path / "upper.txt"),
        )
        assert code == 0, err
        assert (tmp_path / "upper.txt").read_text() == "HELLO LARGE FILES\n"
        code, out, err = cli(
            capsys, "files", "get", made["big.bin"]["id"], "-o", str(tmp_path / "copy.bin")
        )
        assert (tmp_path / "copy.bin").read_bytes() == big.read_bytes()
        code, out, _ = cli(capsys, "task", task_id, "--json")
        kinds = [e["kind"] for e in json.loads(out)["trace"]]
        assert "task.outputs" in kinds and kinds.index("task.outputs") < kinds.index(
            "task.succeeded"
        )

        # a second task on the same dataset downloads nothing: the node caches inputs by hash
        code, out, err = cli(
            capsys, *submit[:-1], "--name", "second", "--", "cat /inputs/words.txt"
        )
        assert code == 0, err
        second = out.strip()
        code, out, err = cli(
            capsys, *submit[:-1], "--wait", "--name", "second-wait", "--", "cat /inputs/words.txt"
        )
        assert code == 0 and out == "hello large files\n", err
        with server.api() as api:
            logs = []
            for tid in (task_id, second):
                deadline = time.monotonic() + 60
                while api.get(f"/api/tasks/{tid}").json()["state"] not in ("succeeded", "failed"):
                    assert time.monotonic() < deadline
                    time.sleep(0.3)
                logs.append(
                    "".join(
                        i["data"]
                        for i in api.get(f"/api/tasks/{tid}/logs", params={"limit": 1000}).json()[
                            "items"
                        ]
                    )
                )
        assert "input datasets/words.txt → /inputs/words.txt: downloaded" in logs[0]
        assert "input datasets/words.txt → /inputs/words.txt: cached" in logs[1]
        assert "input datasets/big.bin → /workspace/data/big.bin: cached" in logs[1]

        # the input is read-only inside the container
        code, out, err = cli(capsys, *submit, "--name", "ro", "--", "echo x > /inputs/words.txt")
        assert code != 0
    finally:
        agent.terminate()
        try:
            agent.wait(30)
        except subprocess.TimeoutExpired:
            agent.kill()


def test_outputs_symlinked_to_the_host_fail_the_task_and_upload_nothing(
    live_server_factory, tmp_path
):
    """Escape (a) end to end: the command swaps /workspace/outputs for a symlink to a host
    directory; the task fails with the agent's refusal, the server holds no artifact of it,
    and the host directory is untouched."""
    server = live_server_factory()
    image = ensure_busybox_image()
    host = tmp_path / "host-secrets"
    host.mkdir()
    (host / "secret.txt").write_text("host secret\n")
    os.chmod(host / "secret.txt", 0o600)
    os.chmod(host, 0o700)
    before = [(p.name, p.stat().st_mode, p.stat().st_uid) for p in [host, *host.iterdir()]]
    code_repo = GitRepo(tmp_path / "code")
    code_sha = code_repo.commit(
        {"run.sh": f"rm -rf /workspace/outputs\nln -s {host} /workspace/outputs\n"}
    )
    env_repo = GitRepo(tmp_path / "env")
    env_sha = env_repo.commit({"Dockerfile": f"FROM {image}\n"})
    agent = start_agent(server, tmp_path, "escape")
    try:
        with server.api() as api:
            r = api.post(
                "/api/tasks",
                json={
                    "code_repo_url": code_repo.url,
                    "code_commit_id": code_sha,
                    "env_repo_url": env_repo.url,
                    "env_commit_id": env_sha,
                    "dockerfile_path": "Dockerfile",
                    "command": ["sh", "/workspace/run.sh"],
                    "outputs": ["secret.txt"],
                    "max_attempts": 1,
                    "timeout_s": 120,
                    "resources": {"labels": {"zone": "escape"}},
                },
            )
            assert r.status_code == 201, r.text
            task_id = r.json()["id"]
            deadline = time.monotonic() + 120
            while (task := api.get(f"/api/tasks/{task_id}").json())["state"] not in (
                "succeeded",
                "failed",
            ):
                assert time.monotonic() < deadline, task
                time.sleep(0.5)
            assert task["state"] == "failed", task
            assert "symlink" in (task["message"] or ""), task
            r = api.get("/api/files", params={"task_id": task_id})
            assert r.status_code == 200 and r.json()["items"] == [], r.text
    finally:
        agent.terminate()
        agent.wait(20)
    after = [(p.name, p.stat().st_mode, p.stat().st_uid) for p in [host, *host.iterdir()]]
    assert after == before and (host / "secret.txt").read_text() == "host secret\n"
