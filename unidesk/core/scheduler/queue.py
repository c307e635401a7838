"""Where a waiting task stands: how many competing tasks are ranked ahead of it."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.scheduler.reasons import RANKED_REASONS
from unidesk.core.scheduler.shares import share_keys
from unidesk.core.settings import Settings
from unidesk.core.tasks.models import TaskRow

__all__ = ["ranked_ahead"]

_AHEAD_SQL = text(
    """
    SELECT x.id, x.ahead FROM (
      SELECT t.id, row_number() OVER (
               ORDER BY coalesce(k.share, 0) + coalesce(a.share, 0), -t.priority, t.seq) - 1
             AS ahead
      FROM tasks t
      LEFT JOIN jsonb_to_recordset(CAST(:keys AS jsonb)) AS k(owner text, share float8)
        ON k.owner = coalesce(t.owner_id::text, '')
      LEFT JOIN jsonb_to_recordset(CAST(:accounts AS jsonb)) AS a(account text, share float8)
        ON a.account = coalesce(t.account, '')
      WHERE t.state = 'pending' AND t.pending_reason = ANY(CAST(:reasons AS text[]))
    ) x WHERE x.id = ANY(CAST(:ids AS uuid[]))
    """
)
"""One ranking of the waiting tasks per call, however many of them a page shows."""


async def ranked_ahead(
    session: AsyncSession, settings: Settings, tasks: list[TaskRow]
) -> dict[uuid.UUID, int]:
    """For each task waiting for resources (or held for a reservation): the waiting tasks ranked
    ahead of it by (owner's plus account's fair-share key, -priority, age), as the scheduler
    orders them (ignoring how one pass interleaves lanes)."""
    waiting = [t for t in tasks if t.state == "pending" and t.pending_reason in RANKED_REASONS]
    if not waiting:
        return {}
    keys = await share_keys(session, settings)
    payload = json.dumps(
        [{"owner": str(k) if k else "", "share": v} for k, v in keys.users.items()]
    )
    accounts = json.dumps([{"account": k, "share": v} for k, v in keys.accounts.items()])
    rows = await session.execute(
        _AHEAD_SQL,
        {
            "keys": payload,
            "accounts": accounts,
            "reasons": list(RANKED_REASONS),
            "ids": [str(t.id) for t in waiting],
        },
    )
    return {task_id: int(ahead) for task_id, ahead in rows.all()}
