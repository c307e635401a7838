"""Server-side masking: the secret values of each task, cached, to mask its logs before storing."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.secrets.keyring import Keyring
from unidesk.core.secrets.services import SecretService
from unidesk.core.tasks.models import TaskRow
from unidesk.errors import Unavailable
from unidesk.masking import SecretMasker

__all__ = ["AttemptMasks", "secret_ids"]

log = structlog.get_logger("unidesk.secrets")
_MAX_TASKS = 10_000
_TTL_S = 300.0


def secret_ids(extra: dict[str, Any]) -> list[str]:
    """Ids of every secret a task's ``extra`` references (env secrets and credentials)."""
    ids = [r["id"] for r in (extra.get("secrets") or {}).values()]
    creds = extra.get("credentials") or {}
    ids += [creds[k]["id"] for k in ("code_repo", "env_repo", "known_hosts") if k in creds]
    ids += [r["id"] for r in (creds.get("registries") or {}).values()]
    return ids


class AttemptMasks:
    """A bounded cache task id → masker (None when the task uses no secrets)."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._cache: OrderedDict[uuid.UUID, tuple[float, SecretMasker | None]] = OrderedDict()

    async def masker(self, session: AsyncSession, task_id: uuid.UUID) -> SecretMasker | None:
        hit = self._cache.get(task_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < _TTL_S:
            self._cache.move_to_end(task_id)
            return hit[1]
        extra = await session.scalar(select(TaskRow.extra).where(TaskRow.id == task_id))
        ids = secret_ids(extra or {})
        masker = None
        if ids:
            try:
                values = await SecretService(session, self.keyring).values(ids)
            except Unavailable as exc:
                # The agent masked already; storing must not stall on a lost key file.
                log.error("cannot decrypt a task's secrets to mask its logs", error=exc.detail)
                values = {}
            masker = SecretMasker(values.values()) or None
        self._cache[task_id] = (now, masker)
        while len(self._cache) > _MAX_TASKS:
            self._cache.popitem(last=False)
        return masker
