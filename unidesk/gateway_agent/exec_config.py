"""Settings of attempt execution on a node: caches, Docker, hardening, limits, git credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

__all__ = ["ExecConfig"]


class ExecConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How ``DockerRunner`` fetches code, builds env images and runs containers."""

    cache_dir: str = "~/.cache/unidesk-agent"
    """Root of the git cache (``git/``), build contexts (``envctx/``) and workspaces (``work/``)."""
    host_cache_dir: str = ""
    """When the agent runs in a container with the host's Docker socket: the HOST path of
    ``cache_dir``. Bind-mount sources are rewritten from ``cache_dir`` to this path."""
    docker_url: str = "unix:///var/run/docker.sock"
    """Docker Engine API endpoint (``unix://`` socket path or ``tcp://``)."""
    allow_file_urls: bool = False
    """Accept ``file://`` repository URLs (tests and single-machine setups only)."""
    container_user: str = "1000:1000"
    """User (``uid:gid``) task containers run as when their env image declares no ``USER``;
    the workspace is chowned to it. ``0:0`` runs as root (not recommended)."""
    network_mode: Literal["none", "host"] = "none"
    """Container network mode; ``none`` unless tasks need loopback (``host``)."""
    keep_finished: bool = False
    """Keep finished containers and workspaces for debugging instead of removing them."""
    image_budget_mb: int = 0
    """Cap of ``unidesk-env`` images (MB); least recently used ones beyond it are removed.
    0: 30 % of the free disk under ``cache_dir`` at start."""
    git_cache_mb: int = 0
    """Cap of the git cache (MB), LRU-evicted; 0: 10 % of (free disk + the cache) at start."""
    input_cache_mb: int = 0
    """Cap of the input-file cache (MB), LRU-evicted; 0: 20 % of (free disk + the cache) at
    start."""
    stop_grace_s: int = 10
    """Seconds between SIGTERM and SIGKILL when an attempt is stopped (timeout, cancel)."""
    pids_limit: int = 256
    """Processes per container unless the task asks for more (the server caps what it may ask);
    low enough that a fork bomb stays contained on a 2-core machine."""
    cgroup_root: str = "/sys/fs/cgroup"
    """Where the host's cgroup filesystem is seen: the last step of a stop Docker did not confirm
    kills the container's cgroup there (mount the host's at this path when the agent runs in a
    container)."""
    log_cap_bytes: int = 256 * 1024 * 1024
    """Output kept per attempt (build + stdout + stderr); past it, one marker line and nothing
    more."""
    git_credential_helper: str = ""
    """A git ``credential.helper`` value used for https fetches (e.g. ``store --file
    /etc/unidesk/git-cred``)."""
    git_ssh_key: str = ""
    """Private key file for ``ssh://`` and ``user@host:path`` repositories."""
    git_timeout_s: float = 600.0
    """Upper bound for one git command (fetch of a large repository)."""
    host_mounts: dict[str, str] = {}
    """Named host directories tasks may request: name -> ``/path[:ro|:rw]`` (``hostmounts.py``)."""
    host_root: str = "/"
    """Where the host's filesystem is visible to the agent (``/host`` in a container)."""
    docker_timeout_s: float = 30.0
    """Upper bound for short Docker API calls (inspect, create, health)."""

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser().resolve()

    @property
    def cgroup_path(self) -> Path:
        return Path(self.cgroup_root)

    def host_path(self, path: Path) -> str:
        """The path Docker must see for ``path`` (under ``cache_dir``) as a bind-mount source."""
        path = path.resolve()
        if not self.host_cache_dir:
            return str(path)
        return str(Path(self.host_cache_dir) / path.relative_to(self.cache_path))
