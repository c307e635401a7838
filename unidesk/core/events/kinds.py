"""Every kind of event the core writes, defined once (plugins add their own, prefixed with
their name: ``project.created``, ``experiment.run_added``)."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["CORE_EVENT_KINDS", "EventKind"]

EventKind = Literal[
    "account.member_added",
    "account.member_removed",
    "api_token.created",
    "api_token.revoked",
    "artifact.created",
    "artifact.deleted",
    "artifact.upload_failed",
    "artifact.upload_started",
    "backup.failed",
    "backup.restored",
    "backup.succeeded",
    "node.caches_clear_requested",
    "node.connected",
    "node.deleted",
    "node.disconnected",
    "node.draining",
    "node.foreign_report",
    "node.healthy",
    "node.maintenance_requested",
    "node.offline",
    "node.online",
    "node.reconcile_kill",
    "node.registered",
    "node.undrained",
    "node.unhealthy",
    "node_token.created",
    "node_token.revoked",
    "quota.set",
    "secret.created",
    "secret.deleted",
    "secret.replaced",
    "secrets.key_rotated",
    "task.acked",
    "task.assigned",
    "task.attempt_lost",
    "task.cancel_requested",
    "task.cancelled",
    "task.cancelling",
    "task.exited",
    "task.failed",
    "task.outputs",
    "task.preparing",
    "task.retried",
    "task.stage",
    "task.stale_report",
    "task.started",
    "task.submitted",
    "task.succeeded",
    "task.unschedulable",
    "task.waiting",
    "user.created",
    "user.updated",
]
CORE_EVENT_KINDS: frozenset[str] = frozenset(get_args(EventKind))
