"""The Docker Engine container config for one attempt: mounts, limits, GPUs, hardening, labels."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from unidesk.gateway_agent.datafeed import METRICS_PATH_IN_CONTAINER
from unidesk.gateway_agent.exec_config import ExecConfig
from unidesk.gateway_agent.exec_errors import PrepareFailed
from unidesk.gateway_agent.workspace import attempt_name
from unidesk.protocol import AttemptRef, Dispatch

__all__ = [
    "CONTAINER_PREFIX",
    "LABEL_ATTEMPT",
    "LABEL_CACHE",
    "LABEL_NODE",
    "LABEL_OUTPUTS",
    "LABEL_TASK",
    "LABEL_TIMEOUT",
    "container_config",
    "container_name",
    "numeric_user",
    "owner_labels",
    "ref_from_labels",
]

CONTAINER_PREFIX = "unidesk-"
LABEL_TASK = "unidesk.task_id"
LABEL_ATTEMPT = "unidesk.attempt_no"
LABEL_NODE = "unidesk.node"
LABEL_TIMEOUT = "unidesk.timeout_s"
LABEL_CACHE = "unidesk.cache_dir"
LABEL_OUTPUTS = "unidesk.outputs"
"""The attempt's output patterns (JSON list): an agent adopting the container after a restart
uploads them when it ends (it has no dispatch)."""
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NUMERIC_USER_RE = re.compile(r"^(\d+)(?::(\d+))?$")


def numeric_user(user: str) -> tuple[int, int] | None:
    """``(uid, gid)`` of a Docker ``User`` value when it is numeric (``1000``, ``1000:100``)
    or ``root``; None for a name only the image's /etc/passwd can resolve."""
    if user.split(":")[0] == "root":
        return (0, 0)
    m = _NUMERIC_USER_RE.match(user)
    if m is None:
        return None
    uid = int(m.group(1))
    return (uid, int(m.group(2)) if m.group(2) is not None else uid)


def container_name(ref: AttemptRef) -> str:
    return CONTAINER_PREFIX + attempt_name(ref)


def owner_labels(config: ExecConfig, node: str) -> dict[str, str]:
    """The labels that make a container this agent's: its node name AND its cache dir (host
    path), so two agents declaring one name on one host (two servers' local agents both named
    after the host) never adopt or remove each other's containers."""
    return {LABEL_NODE: node, LABEL_CACHE: config.host_path(config.cache_path)}


def ref_from_labels(labels: dict[str, str]) -> AttemptRef | None:
    try:
        return AttemptRef(labels[LABEL_TASK], int(labels[LABEL_ATTEMPT]))
    except (KeyError, ValueError):
        return None


def _env(dispatch: Dispatch, metrics_path: str = METRICS_PATH_IN_CONTAINER) -> list[str]:
    env = {**dispatch.env, **dispatch.secret_env}
    for key, value in env.items():
        if not _ENV_KEY_RE.match(key) or "\x00" in value:
            raise PrepareFailed(f"environment variable {key[:80]!r} has a bad name or a NUL byte")
    env["UNIDESK_TASK_ID"] = dispatch.task_id
    env["UNIDESK_ATTEMPT"] = str(dispatch.attempt_no)
    env["UNIDESK_METRICS_FILE"] = metrics_path
    return [f"{k}={v}" for k, v in env.items()]


def container_config(
    dispatch: Dispatch,
    *,
    image: str,
    workspace_source: str,
    config: ExecConfig,
    node: str,
    extra_binds: list[str] | None = None,
    user: str | None = None,
    workspace_read_only: bool = False,
    metrics_path: str = METRICS_PATH_IN_CONTAINER,
) -> dict[str, Any]:
    """The body of ``POST /containers/create`` for this attempt; ``user`` defaults to the
    agent's ``container_user`` (non-root); ``workspace_source`` is the checkout, or a declared
    host directory (``hostmounts.py``)."""
    if any("\x00" in part for part in dispatch.command):
        raise PrepareFailed("command contains a NUL byte")
    memory = max(dispatch.memory_mb, 6) * 1024 * 1024
    host: dict[str, Any] = {
        "Binds": [
            f"{workspace_source}:/workspace:{'ro' if workspace_read_only else 'rw'}",
            *(extra_binds or []),
        ],
        "NetworkMode": config.network_mode,
        "NanoCpus": int(dispatch.cpus * 1e9) if dispatch.cpus > 0 else 0,
        "Memory": memory,
        "MemorySwap": memory,
        "PidsLimit": dispatch.pids_limit or config.pids_limit,
        "Privileged": False,
        "SecurityOpt": ["no-new-privileges:true"],
        "CapDrop": ["ALL"],
        "ReadonlyRootfs": False,
        "Init": True,
        # the agent follows this log (timestamps order stdout/stderr); 3 files of slack for a
        # reader that lags behind a fast writer
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
    }
    if dispatch.gpu_indices:
        host["DeviceRequests"] = [
            {
                "Driver": "nvidia",
                "DeviceIDs": [str(i) for i in dispatch.gpu_indices],
                "Capabilities": [["gpu"]],
            }
        ]
    body: dict[str, Any] = {
        "Image": image,
        "User": user or config.container_user,
        "Env": _env(dispatch, metrics_path),
        "WorkingDir": "/workspace",
        "Labels": {
            LABEL_TASK: dispatch.task_id,
            LABEL_ATTEMPT: str(dispatch.attempt_no),
            **owner_labels(config, node),
            LABEL_TIMEOUT: str(dispatch.timeout_s),
            **(
                {LABEL_OUTPUTS: msgspec.json.encode(dispatch.outputs).decode()}
                if dispatch.outputs
                else {}
            ),
        },
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "HostConfig": host,
    }
    if dispatch.command:
        body["Cmd"] = list(dispatch.command)
    return body
