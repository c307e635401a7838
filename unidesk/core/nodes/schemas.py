"""Public shapes of nodes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from unidesk.core.nodes.models import NodeState

__all__ = [
    "MAX_MAINTENANCE_TIMEOUT_S",
    "CacheClearRequest",
    "MaintenanceCreate",
    "Node",
    "NodeFree",
    "RunningAttempt",
    "Sample",
    "SamplePage",
]

MAX_MAINTENANCE_TIMEOUT_S = 3600


class NodeFree(msgspec.Struct, kw_only=True):
    cpus: float
    memory_mb: int
    gpus: int


class RunningAttempt(msgspec.Struct, kw_only=True):
    task_id: uuid.UUID
    attempt_no: int
    state: str


class Node(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    state: NodeState
    draining: bool
    unhealthy_reason: str | None
    hostname: str
    os: str
    agent_version: str
    cpus: float
    memory_mb: int
    gpus: list[dict[str, Any]]
    labels: dict[str, str]
    runtimes: list[str]
    host_mounts: dict[str, str]
    """Named host directories the node declares (name -> ``ro``/``rw``); tasks request them."""
    last_heartbeat_at: datetime | None
    connected_at: datetime | None
    created_at: datetime
    usage: dict[str, Any]
    running_attempts: list[RunningAttempt]
    free: NodeFree
    allowed_actions: list[str] = []
    """What the caller may do to this node (admins: drain, undrain, delete, maintenance,
    clear_caches); the access policy applied, so the UI can hide the other buttons."""


class Sample(msgspec.Struct, kw_only=True):
    ts: datetime
    cpu_percent: float
    memory_used_mb: int
    memory_total_mb: int
    gpus: list[dict[str, Any]]


class SamplePage(msgspec.Struct, kw_only=True):
    node_id: uuid.UUID
    step_s: int
    items: list[Sample]


class CacheClearRequest(msgspec.Struct, kw_only=True):
    """A recorded "clear caches" request (event ``node.caches_clear_requested``)."""

    node_id: uuid.UUID
    request_id: str


class MaintenanceCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``probe``: OS, uptime, disk, Docker and k3s presence. ``exec``: one shell command."""

    op: Literal["probe", "exec"]
    command: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None
    timeout_s: Annotated[int, msgspec.Meta(ge=1, le=MAX_MAINTENANCE_TIMEOUT_S)] = 60
