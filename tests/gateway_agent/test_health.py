"""Node health checks: native k3s declared as a runtime, k3s inside a container (real Docker)
unhealthy,
Docker unreachable, disk almost full."""

from __future__ import annotations

import subprocess
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


def test_native_k3s_binary_or_unit_declares_the_runtime(tmp_path: Path) -> None:
    assert not detect_native_k3s(str(tmp_path))
    assert declared_runtimes(AgentConfig(host_root=str(tmp_path))) == ["docker"]
    unit = tmp_path / "etc/systemd/system/k3s.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/usr/local/bin/k3s server\n")
    assert declared_runtimes(AgentConfig(host_root=str(tmp_path), ssh_host="127.0.0.1")) == [
        "docker",
        "k3s",
        "host.ssh",
    ]


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
