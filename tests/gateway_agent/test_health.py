"""Node health checks: native k3s declared as a runtime, k3s inside a container (real Docker)
unhealthy,
Docker unreachable, disk almost full."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.docker_images import ensure_busybox_image
from unidesk.gateway_agent.config import AgentConfig
from unidesk.gateway_agent.health import (
    NodeHealth,
    declared_runtimes,
    detect_native_k3s,
    disk_reason,
    k3s_container_reason,
)


class HealthyRunner:
    async def health(self) -> str | None:
        return None


class DockerGoneRunner:
    async def health(self) -> str | None:
        return "docker unreachable: Cannot connect to unix:///nonexistent.sock"


def fake_systemctl(bin_dir: Path, active: set[str]) -> None:
    """A boundary fake of ``systemctl`` on PATH: ``is-active UNIT`` answers like systemd does
    (``active`` and 0 for units in ``active``, ``inactive`` and 3 otherwise). The detection
    calls the real command name; only the host's init system is faked."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "systemctl"
    units = " ".join(sorted(active))
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = is-active ] || exit 1\n'
        f'for u in {units}; do [ "$2" = "$u" ] && echo active && exit 0; done\n'
        "echo inactive; exit 3\n"
    )
    script.chmod(0o755)


def test_k3s_installed_but_not_running_is_not_declared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    fake_systemctl(tmp_path / "bin", set())
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    root = Path(tempfile.mkdtemp(prefix="k3s-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    assert detect_native_k3s(str(root)) is None
    for rel in ("usr/local/bin/k3s", "etc/systemd/system/k3s.service"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("installed\n")
    stale = root / "run/k3s/containerd/containerd.sock"
    stale.parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX) as s:  # a socket file nobody listens on any more
        s.bind(str(stale))
    assert detect_native_k3s(str(root)) is None
    assert declared_runtimes(AgentConfig(host_root=str(root))) == ["docker"]


def test_k3s_service_active_declares_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_systemctl(tmp_path / "bin", {"k3s-agent"})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    assert detect_native_k3s(str(tmp_path / "nothing")) == "systemctl: k3s-agent active"
    assert declared_runtimes(
        AgentConfig(host_root=str(tmp_path / "nothing"), ssh_host="127.0.0.1")
    ) == ["docker", "k3s", "host.ssh"]


def test_k3s_socket_that_answers_declares_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent in a container: no systemd to ask, the host's /run/k3s mounted under host_root;
    a real server listening on the unix socket stands in for k3s's containerd."""
    fake_systemctl(tmp_path / "bin", set())
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    root = Path(tempfile.mkdtemp(prefix="k3s-", dir="/tmp"))  # unix socket paths are short
    path = root / "run/k3s/containerd/containerd.sock"
    path.parent.mkdir(parents=True)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(4)
    try:
        assert detect_native_k3s(str(root)) == (
            "socket /run/k3s/containerd/containerd.sock answers"
        )
        assert declared_runtimes(AgentConfig(host_root=str(root))) == ["docker", "k3s"]
        server.close()
        assert detect_native_k3s(str(root)) is None  # stopped: the same file no longer answers
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize(
    "entry, bad",
    [
        (
            {
                "Image": "rancher/k3s:v1.30.1-k3s1",
                "Command": "/bin/k3s server",
                "Names": ["/k3s-server"],
            },
            True,
        ),
        (
            {
                "Image": "docker.io/rancher/k3s@sha256:abc",
                "Command": "/bin/k3s agent",
                "Names": ["/w"],
            },
            True,
        ),
        (
            {
                "Image": "myorg/tools:1",
                "Command": "/usr/local/bin/k3s server --disable traefik",
                "Names": ["/x"],
            },
            True,
        ),
        ({"Image": "busybox", "Command": "sh -c 'echo k3s server'", "Names": ["/echo"]}, False),
        ({"Image": "nginx", "Command": "nginx -g daemon off;", "Names": ["/web"]}, False),
    ],
)
def test_k3s_container_classification(entry: dict, bad: bool) -> None:
    assert (k3s_container_reason([entry]) is not None) is bad


def test_disk_reason(tmp_path: Path) -> None:
    assert disk_reason(str(tmp_path / "not-yet-created"), 1) is None
    reason = disk_reason(str(tmp_path), 1 << 40)
    assert reason and reason.startswith("disk almost full") and str(tmp_path) in reason


async def test_docker_unreachable_is_the_reason(tmp_path: Path) -> None:
    health = NodeHealth(
        AgentConfig(cache_dir=str(tmp_path), min_free_disk_mb=1), DockerGoneRunner()
    )  # type: ignore[arg-type]
    assert (await health.check() or "").startswith("docker unreachable")
    await health.close()


@pytest.mark.docker
async def test_k3s_running_in_a_container_makes_the_node_unhealthy(tmp_path: Path) -> None:
    base = ensure_busybox_image()
    tag = f"rancher/k3s:unidesk-test-{uuid.uuid4().hex[:8]}"
    name = f"unidesk-test-k3s-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "tag", base, tag], check=True)
    health = NodeHealth(AgentConfig(cache_dir=str(tmp_path), min_free_disk_mb=1), HealthyRunner())  # type: ignore[arg-type]
    try:
        assert "k3s" not in (await health.check() or "")
        subprocess.run(
            [
                "docker",
                "run",
                "-d",
                "--rm",
                "--network",
                "none",
                "--name",
                name,
                tag,
                "sleep",
                "300",
            ],
            check=True,
            capture_output=True,
        )
        reason = await health.check()
        assert reason and f"k3s runs inside container {name}" in reason and "natively" in reason
        subprocess.run(["docker", "rm", "-f", name], check=True, capture_output=True)
        assert "k3s" not in (await health.check() or "")  # gone: healthy again
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "rmi", tag], capture_output=True)
        await health.close()
