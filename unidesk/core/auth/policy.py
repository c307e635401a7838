"""The access policy, in one place: every member reads everything; owners and admins act.

Members of one UniDesk share visibility: tasks, traces, logs, artifacts, nodes and
experiments are readable by every signed-in user (research groups compare each other's
runs). Acting on a thing someone owns (cancel, retry, delete or change a task; delete or
change an artifact; delete an experiment; report its metrics) is for its owner or an admin;
anyone else gets 403 with a problem body that names who may. Admin-only routes (users, node
tokens, node drain/delete/maintenance) use ``admin_only`` (``guards.py``). Projects keep
their own membership rule (``unidesk.plugins.projects``). docs/access.md lists every route.
"""

from __future__ import annotations

import uuid
from typing import Any

from unidesk.core.auth.schemas import Principal
from unidesk.errors import Forbidden

__all__ = [
    "ADMIN_ACTIONS",
    "OWNER_ACTIONS",
    "admin_actions",
    "allowed_actions",
    "may_act",
    "require_owner_or_admin",
]

OWNER_ACTIONS: dict[str, tuple[str, ...]] = {
    "task": ("cancel", "retry", "delete", "change"),
    "artifact": ("delete", "change"),
    "experiment": ("delete", "report_metrics"),
}
"""What only a thing's owner or an admin may do, per kind of thing."""
ADMIN_ACTIONS: dict[str, tuple[str, ...]] = {
    "node": ("drain", "undrain", "delete", "maintenance", "clear_caches"),
    "node_token": ("issue", "revoke"),
    "user": ("create", "change"),
}
"""What only an admin may do, per kind of thing (routes guarded by ``admin_only``)."""


def may_act(principal: Principal, owner_id: uuid.UUID | None) -> bool:
    """True when ``principal`` owns the thing or is an admin."""
    return principal.is_admin or (owner_id is not None and owner_id == principal.user_id)


def require_owner_or_admin(
    principal: Principal, owner_id: uuid.UUID | None, *, kind: str, verb: str, **context: Any
) -> None:
    """Raise 403 (saying who may) unless ``principal`` may ``verb`` this ``kind`` of thing."""
    if not may_act(principal, owner_id):
        raise Forbidden(
            f"only the {kind}'s owner or an admin may {verb} it; every member may read it",
            **context,
        )


def allowed_actions(
    principal: Principal, kind: str, owner_id: uuid.UUID | None = None
) -> list[str]:
    """The actions beyond reading that ``principal`` may take on this thing (for the UI's
    buttons); reading is always allowed and not listed."""
    if kind in ADMIN_ACTIONS:
        return list(ADMIN_ACTIONS[kind]) if principal.is_admin else []
    return list(OWNER_ACTIONS[kind]) if may_act(principal, owner_id) else []


def admin_actions(role: str) -> dict[str, list[str]]:
    """The admin-only actions a user of ``role`` may take, by kind (for the UI's buttons; the
    ``admin_only`` guard enforces them): all of ``ADMIN_ACTIONS`` for admins, none for members."""
    return {k: list(v) for k, v in ADMIN_ACTIONS.items()} if role == "admin" else {}
