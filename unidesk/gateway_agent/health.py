"""The node's own health checks, sent in every Hello and Heartbeat as ``unhealthy_reason``.

- Docker reachability: the runner's ``health()`` (the Docker Engine answers).
- Disk space: free space under the cache dir must stay above ``min_free_disk_mb``.
- k3s: a NATIVE installation (binary or systemd unit on the host OS / WSL distro) declares the
  ``k3s`` runtime. k3s running INSIDE a container (a ``rancher/k3s`` image, or a container whose
  command is ``k3s server``/``k3s agent``) is forbidden by the platform's rules: the node then
  reports itself unhealthy with that reason and gets no work until the container is gone.

When the agent runs in a container, mount the host's ``/usr/local/bin`` and
``/etc/systemd/system`` read-only under ``host_root`` (e.g. ``/host``) so native k3s is visible.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from .config import AgentConfig
from .runner import Runner

__all__ = [
    "K3S_PATHS",
    "NodeHealth",
    "declared_runtimes",
    "detect_native_k3s",
    "disk_reason",
    "k3s_container_reason",
]

K3S_PATHS = (
    "usr/local/bin/k3s",
    "usr/bin/k3s",
    "etc/systemd/system/k3s.service",
    "etc/systemd/system/k3s-agent.service",
    "lib/systemd/system/k3s.service",
    "usr/lib/systemd/system/k3s.service",
)
"""Where a native k3s install leaves its binary or systemd unit (relative to the host root)."""
_DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"


def detect_native_k3s(host_root: str = "/") -> bool:
    """True when the host (seen at ``host_root``) has a k3s binary or a k3s systemd unit."""
    root = Path(host_root)
    return any((root / rel).exists() for rel in K3S_PATHS)


def declared_runtimes(config: AgentConfig) -> list[str]:
    """``docker`` always; ``k3s`` for a native install; ``host.ssh`` when SSH maintenance is
    configured."""
    runtimes = ["docker"]
    if detect_native_k3s(config.host_root):
        runtimes.append("k3s")
    if config.ssh_host:
        runtimes.append("host.ssh")
    return runtimes


def _is_k3s_image(image: str) -> bool:
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    name = last.split(":", 1)[0]
    return name in ("k3s", "k3d-proxy") or "rancher/k3s" in repo


def _is_k3s_command(command: str) -> bool:
    words = command.split()
    for i, word in enumerate(words[:3]):
        if PurePosixPath(word).name == "k3s" and (
            i + 1 < len(words) and words[i + 1] in ("server", "agent")
        ):
            return True
    return False


def k3s_container_reason(containers: Iterable[dict[str, Any]]) -> str | None:
    """The unhealthy reason if a running container (Docker list entries) is k3s itself."""
    for c in containers:
        image, command = str(c.get("Image", "")), str(c.get("Command", ""))
        if _is_k3s_image(image) or _is_k3s_command(command):
            name = (c.get("Names") or ["?"])[0].lstrip("/")
            return (
                f"k3s runs inside container {name} ({image}); k3s must run natively on the host "
                "OS or WSL "
                "distro: stop that container before this node takes work"
            )
    return None


def disk_reason(path: str, min_free_mb: int) -> str | None:
    """The unhealthy reason if less than ``min_free_mb`` is free under ``path``."""
    target = Path(path).expanduser()
    while not target.exists() and target != target.parent:
        target = target.parent
    try:
        free_mb = shutil.disk_usage(target).free // (1024 * 1024)
    except OSError as exc:
        return f"cannot read free disk space under {path}: {exc.strerror}"
    if free_mb < min_free_mb:
        return f"disk almost full: {free_mb} MB free under {path} (needs at least {min_free_mb} MB)"
    return None


class NodeHealth:
    """Runs every check; ``check()`` returns None (healthy) or the reasons joined by '; '."""

    def __init__(self, config: AgentConfig, runner: Runner, *, docker: Any = None) -> None:
        self.config = config
        self.runner = runner
        self._docker = docker
        self._owns_docker = docker is None
        self.uses_docker = config.runner == "docker"

    async def _docker_client(self) -> Any:
        if self._docker is None:
            import aiodocker

            self._docker = aiodocker.Docker(
                url=str(self.config.docker.get("docker_url", _DEFAULT_DOCKER_URL))
            )
        return self._docker

    async def _k3s_in_container(self) -> str | None:
        docker = await self._docker_client()
        containers = await asyncio.wait_for(docker.containers.list(), 10.0)
        return k3s_container_reason(c._container for c in containers)

    async def check(self) -> str | None:
        reasons: list[str] = []
        try:
            runner_reason = await self.runner.health()
        except Exception as exc:
            runner_reason = f"runner health check failed: {exc}"
        if runner_reason:
            reasons.append(runner_reason)
        elif self.uses_docker:
            try:
                k3s = await self._k3s_in_container()
            except Exception as exc:
                k3s = f"cannot list containers to check for k3s: {type(exc).__name__}: {exc}"
            if k3s:
                reasons.append(k3s)
        disk = disk_reason(self.config.cache_dir, self.config.min_free_disk_mb)
        if disk:
            reasons.append(disk)
        return "; ".join(reasons) or None

    async def close(self) -> None:
        if self._docker is not None and self._owns_docker:
            await self._docker.close()
            self._docker = None
