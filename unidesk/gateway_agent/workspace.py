"""Per-attempt workspaces under ``<cache_dir>/work/<task_id>-<attempt_no>``, bind-mounted at
/workspace."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

from unidesk.gateway_agent.exec_config import ExecConfig
from unidesk.gateway_agent.exec_errors import PrepareFailed
from unidesk.protocol import AttemptRef

__all__ = ["Workspaces", "attempt_name"]

_TASK_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def attempt_name(ref: AttemptRef) -> str:
    """``<task_id>-<attempt_no>``: the workspace directory and (prefixed) container name."""
    if not _TASK_ID_RE.match(ref.task_id) or ref.attempt_no < 0:
        raise PrepareFailed(
            f"task id {ref.task_id[:80]!r} / attempt {ref.attempt_no} cannot name a workspace"
        )
    return f"{ref.task_id}-{ref.attempt_no}"


class Workspaces:
    def __init__(self, config: ExecConfig) -> None:
        self._config = config
        self.root = config.cache_path / "work"

    def path(self, ref: AttemptRef) -> Path:
        return self.root / attempt_name(ref)

    def create(self, ref: AttemptRef) -> Path:
        """A fresh empty directory (a leftover from a crashed run is replaced); the runner
        hands it to the container's user once the code is checked out. The parent stays
        private to the agent."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)
        path = self.path(ref)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(mode=0o700)
        return path

    def host_path(self, path: Path) -> str:
        """The bind-mount source Docker must use (``host_cache_dir`` mapping applied)."""
        return self._config.host_path(path)

    async def remove(self, ref: AttemptRef) -> None:
        await asyncio.to_thread(shutil.rmtree, self.path(ref), True)

    async def remove_except(self, keep: set[str]) -> list[str]:
        """Remove workspaces whose name is not in ``keep``; returns the removed names."""
        if not self.root.exists():
            return []
        removed = []
        for entry in self.root.iterdir():
            if entry.is_dir() and entry.name not in keep:
                await asyncio.to_thread(shutil.rmtree, entry, True)
                removed.append(entry.name)
        return removed
