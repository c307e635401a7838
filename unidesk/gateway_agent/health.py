"""The node's own health checks, sent in every Hello and Heartbeat as ``unhealthy_reason``.

- Docker reachability: the runner's ``health()`` (the Docker Engine answers).
- Disk space: free space under the cache dir must stay above ``min_free_disk_mb``.
- k3s: the ``k3s`` runtime is declared only when a NATIVE k3s on the host OS / WSL distro
  answers: ``systemctl is-active k3s`` (or ``k3s-agent``) says ``active``, or k3s's containerd
  socket (``k3s_socket``, seen under ``host_root``) accepts a connection. A k3s binary or unit
  file alone declares nothing (an installed but stopped k3s runs no work). k3s running INSIDE a
  container (a ``rancher/k3s`` image, or a container whose command is ``k3s server``/``k3s
  agent``) is forbidden by the platform's rules: the node then reports itself unhealthy with
  that reason and gets no work until the container is gone.

When the agent runs in a container (no host systemd to ask), mount the host's ``/run``
read-only under ``host_root`` (e.g. ``-v /run:/host/run:ro``) so the socket check
sees a native k3s. Detection runs when the agent starts; restart it after installing k3s.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from .config import AgentConfig
from .runner import Runner

__all__ = [
    "K3S_PATHS",
    "K3S_SERVICES",
    "K3S_SOCKET",
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
"""Where a native k3s install leaves its binary or systemd unit (relative to the host root):
named in the log when k3s is installed but does not answer."""
K3S_SERVICES = ("k3s", "k3s-agent")
"""systemd units of a native k3s server and agent."""
K3S_SOCKET = "/run/k3s/containerd/containerd.sock"
"""k3s's containerd socket: it accepts connections while a native k3s (server or agent) runs."""
_DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"

log = logging.getLogger(__name__)


def _service_active(unit: str) -> bool:
    """``systemctl is-active <unit>`` printed ``active`` (a missing systemctl or systemd: no)."""
    try:
        done = subprocess.run(
            ["systemctl", "is-active", unit],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and done.stdout.strip() == "active"


def _socket_answers(path: Path) -> bool:
    """A unix socket at ``path`` accepts a connection (a stale socket file does not)."""
    if not path.is_socket():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2.0)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def detect_native_k3s(host_root: str = "/", k3s_socket: str = K3S_SOCKET) -> str | None:
    """How a running native k3s answered (``systemctl: k3s active`` or ``socket …``), or None
    when none does (installed-but-stopped and absent alike)."""
    for unit in K3S_SERVICES:
        if _service_active(unit):
            return f"systemctl: {unit} active"
    sock = Path(host_root) / k3s_socket.lstrip("/")
    if _socket_answers(sock):
        return f"socket {k3s_socket} answers"
    installed = [rel for rel in K3S_PATHS if (Path(host_root) / rel).exists()]
    if installed:
        log.info(
            "k3s is installed (%s) but neither its service nor its socket answers: "
            "the k3s runtime is not declared",
            ", ".join("/" + rel for rel in installed),
        )
    return None


def declared_runtimes(config: AgentConfig) -> list[str]:
    """``docker`` always; ``k3s`` when a native k3s answers; ``host.ssh`` when SSH maintenance
    is configured."""
    runtimes = ["docker"]
    how = detect_native_k3s(config.host_root, config.k3s_socket)
    if how:
        log.info("native k3s detected (%s): declaring the k3s runtime", how)
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
