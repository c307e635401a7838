"""Agent configuration: defaults < TOML file < ``UNIDESK_AGENT_*`` environment < command-line
flags."""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from unidesk.errors import BadRequest
from unidesk.gateway_agent.hostmounts import declared_mounts, parse_host_mounts

__all__ = [
    "ENV_PREFIX",
    "AgentConfig",
    "ConfigError",
    "load_config",
    "parse_labels",
    "require_connection_settings",
]

ENV_PREFIX = "UNIDESK_AGENT_"


class ConfigError(BadRequest):
    """The agent's configuration is missing a value or has a bad one."""

    title = "Bad agent configuration"


class AgentConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything ``unidesk-agent`` needs; the token is never shown by ``repr``."""

    server_url: str = ""
    """Server base URL (http, https, ws or wss); the agent dials ``<url>/api/agent/ws``."""
    token: str = ""
    """Node token issued by an admin (``udn_…``); prefer ``token_file`` over a flag."""
    token_file: str = ""
    """File holding the node token; read at start, surrounding whitespace stripped."""
    node_name: str = msgspec.field(default_factory=socket.gethostname)
    """Name declared to the server; defaults to the hostname."""
    labels: dict[str, str] = {}
    """Labels tasks can require (``gpu=a100``, ``zone=lab``)."""
    host_mounts: dict[str, str] = {}
    """Named host directories tasks may request: name -> ``/path[:ro|:rw]`` (default ``ro``);
    ``--host-mount home=/home/ubuntu:rw`` (see ``hostmounts.py``)."""
    cache_dir: str = "~/.cache/unidesk-agent"
    """Git mirrors and build context live here."""
    state_dir: str = "~/.local/state/unidesk-agent"
    """The local state file (owned attempts, unsent final reports) lives here."""
    concurrency: int = 4
    """How many attempts may run at once; more dispatches wait for a free slot."""
    heartbeat_interval_s: float | None = None
    """Override the interval the server announces in Welcome (tests use short ones)."""
    allow_file_urls: bool = False
    """Allow ``file://`` repository URLs (tests and single-machine setups only)."""
    network_mode: Literal["none", "host"] = "none"
    """Container network: ``none`` by default; ``host`` when tasks need loopback."""
    runner: str = "docker"
    """``docker`` (the default and only production runner) or ``subprocess-test`` (tests only)."""
    cpus: float | None = None
    """Declare fewer CPUs than detected."""
    memory_mb: int | None = None
    """Declare less memory than detected."""
    backoff_cap_s: float = 60.0
    """Upper bound of the reconnect delay (exponential backoff with full jitter)."""
    restart_redial_cap_s: float = 5.0
    """After the server closed for a stop or restart (1001/1012), the reconnect delay's upper
    bound for ``restart_window_s``: the fleet is back within seconds of the server."""
    restart_window_s: float = 120.0
    """How long after a restart close the short reconnect bound applies (then the usual
    backoff, capped at ``backoff_cap_s``)."""
    shutdown_grace_s: float = 10.0
    """On SIGTERM, how long running attempts may finish before they are stopped."""
    report_resend_s: float = 10.0
    """A final state, log chunk or data batch the server has not acknowledged this long after it
    went out is sent again on the same socket; the delay doubles with each try (a Nack from the
    server brings the next try forward)."""
    report_resend_cap_s: float = 60.0
    """Upper bound of the delay between two tries of one unacknowledged report."""
    self_fence_after_s: float | None = None
    """With no contact with the server for this long, stop every running attempt and report it
    ``killed`` when the server is reachable again (the server has declared it lost by then).
    Unset: the server's offline timeout, announced in Welcome (90 s by default)."""
    log_level: str = "info"
    log_format: str = "auto"
    """``json`` (lines), ``console``, or ``auto``: JSON unless stderr is a terminal."""
    docker: dict[str, Any] = {}
    """Further Docker runner settings (a ``[docker]`` TOML table; see
    ``exec_config.ExecConfig``)."""
    min_free_disk_mb: int = 2048
    """Below this much free disk under ``cache_dir`` the node reports itself unhealthy."""
    host_root: str = "/"
    """Where the host's filesystem is visible (``/host`` in a container) to detect a native k3s."""
    k3s_socket: str = "/run/k3s/containerd/containerd.sock"
    """Host path of k3s's containerd socket: a native k3s is declared when it answers (or when
    ``systemctl is-active k3s``/``k3s-agent`` says active)."""
    ssh_host: str = ""
    """The host OS / WSL distro's SSH address for host.ssh maintenance; empty: no host.ssh
    runtime."""
    ssh_port: int = 22
    """SSH port of ``ssh_host``."""
    ssh_user: str = ""
    """SSH user on the host."""
    ssh_key_file: str = ""
    """Private key the agent logs in with (public-key auth only)."""
    ssh_known_hosts: str = ""
    """known_hosts file with the host's key; required, and an unknown or changed key is refused."""
    ssh_output_cap_bytes: int = 1024 * 1024
    """Output kept from one host.ssh operation; past it the command is stopped."""
    ssh_max_timeout_s: float = 600.0
    """Upper bound of one host.ssh operation, whatever the request asks."""

    def __repr__(self) -> str:
        shown = {f: getattr(self, f) for f in self.__struct_fields__ if f != "token"}
        shown["token"] = "[redacted]" if self.token else ""
        return f"AgentConfig({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    __str__ = __repr__

    @property
    def ws_url(self) -> str:
        """The ingress URL: ``http(s)://host[/prefix]`` becomes ``ws(s)://host[/prefix]/api/agent/ws``."""
        url = self.server_url.rstrip("/")
        for http, ws in (("https://", "wss://"), ("http://", "ws://")):
            if url.startswith(http):
                url = ws + url[len(http) :]
        return url if url.endswith("/api/agent/ws") else url + "/api/agent/ws"

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir).expanduser() / "agent-state.json"


def parse_labels(items: list[str] | str) -> dict[str, str]:
    """``["a=1", "b=2"]`` or ``"a=1,b=2"`` → ``{"a": "1", "b": "2"}``; refuses items without
    ``=``."""
    if isinstance(items, str):
        items = [p for p in items.split(",") if p.strip()]
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"label {item!r} is not key=value")
        labels[key.strip()] = value.strip()
    return labels


_ENV_FIELDS = {f.upper(): f for f in AgentConfig.__struct_fields__}


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        name = _ENV_FIELDS.get(key[len(ENV_PREFIX) :])
        if name is None:
            raise ConfigError(f"unknown setting {key}")
        if name == "labels":
            out[name] = parse_labels(value)
        elif name == "host_mounts":
            out[name] = parse_host_mounts(value)
        else:
            out[name] = value
    return out


def load_config(
    flags: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> AgentConfig:
    """Merge the layers, validate them, and read ``token_file``. Raises ``ConfigError``."""
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    if path:
        try:
            merged.update(tomllib.loads(Path(path).expanduser().read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
    merged.update(_from_env(env))
    merged.update({k: v for k, v in (flags or {}).items() if v is not None})
    try:
        config = msgspec.convert(merged, AgentConfig, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"bad agent configuration: {exc}") from None
    if config.token_file and not config.token:
        try:
            token = Path(config.token_file).expanduser().read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read token file {config.token_file}: {exc.strerror}"
            ) from None
        config = msgspec.structs.replace(config, token=token)
    if config.concurrency < 1:
        raise ConfigError("concurrency must be at least 1")
    try:
        parse_host_mounts(config.host_mounts)
        declared_mounts(config.host_mounts, config.host_root)
    except BadRequest as exc:
        raise ConfigError(exc.detail) from None
    return config


def require_connection_settings(config: AgentConfig) -> None:
    """Fail before dialing when the server URL or the token is missing."""
    if not config.server_url:
        raise ConfigError("no server URL: pass --server or set UNIDESK_AGENT_SERVER_URL")
    if not config.server_url.startswith(("http://", "https://", "ws://", "wss://")):
        raise ConfigError(
            f"server URL {config.server_url!r} must start with http(s):// or ws(s)://"
        )
    if not config.token:
        raise ConfigError("no node token: pass --token-file or set UNIDESK_AGENT_TOKEN")
