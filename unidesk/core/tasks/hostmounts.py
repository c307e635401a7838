"""A task's requests for a node's named host directories: ``mounts`` and ``workspace``.

A node's owner declares host directories by name in the agent config
(``--host-mount home=/home/ubuntu:rw``); the host path never leaves the node. A task asks for
one by name: ``mounts: {"home": "/home/ubuntu"}`` binds it at that container path, and
``workspace: "home"`` binds it at ``/workspace`` as the working directory (the code checkout
then sits read-only at ``/code``). The scheduler places such a task only on nodes that declare
every name it asks for (``scheduler.placement.host_mounts_fit``).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from unidesk.errors import BadRequest

__all__ = ["MOUNT_NAME_RE", "RESERVED_PATHS", "host_mount_request"]

MOUNT_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
RESERVED_PATHS = ("/workspace", "/code", "/inputs", "/proc", "/sys", "/dev", "/etc", "/tmp")
"""Container paths a host mount may not take or sit under (the platform's own and the OS's)."""


def host_mount_request(mounts: dict[str, str], workspace: str) -> dict[str, Any]:
    """Validate and normalise; returns the ``extra`` keys the task stores (empty if none)."""
    if len(mounts) > 16:
        raise BadRequest("mounts: at most 16 host mounts", field="mounts")
    seen: set[str] = set()
    for name, path in mounts.items():
        if not MOUNT_NAME_RE.match(name):
            raise BadRequest(
                f"mounts: {name[:40]!r} is not a host mount name (lowercase letters, digits, - _)",
                field="mounts",
            )
        if (
            not path.startswith("/")
            or "\x00" in path
            or len(path) > 512
            or posixpath.normpath(path) != path
            or path == "/"
        ):
            raise BadRequest(
                f"mounts.{name}: {path[:100]!r} must be a normalised absolute path other than /",
                field="mounts",
            )
        for reserved in RESERVED_PATHS:
            if path == reserved or path.startswith(reserved + "/"):
                raise BadRequest(
                    f"mounts.{name}: {path} is reserved ({reserved}); choose another path",
                    field="mounts",
                )
        for other in seen:
            if path == other or path.startswith(other + "/") or other.startswith(path + "/"):
                raise BadRequest(f"mounts.{name}: {path} overlaps {other}", field="mounts")
        seen.add(path)
    if workspace and not MOUNT_NAME_RE.match(workspace):
        raise BadRequest(
            f"workspace: {workspace[:40]!r} is not a host mount name", field="workspace"
        )
    if not mounts and not workspace:
        return {}
    out: dict[str, Any] = {
        "host_mounts": sorted(set(mounts) | ({workspace} if workspace else set()))
    }
    if mounts:
        out["mounts"] = dict(mounts)
    if workspace:
        out["workspace"] = workspace
    return out
