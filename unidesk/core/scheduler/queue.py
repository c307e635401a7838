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

__all__ = ["all_ranked", "ranked_ahead"]

_RANKING = """
      SELECT t.id, row_number() OVER (
               ORDER BY coalesce(k.share, 0) + coalesce(a.share, 0), -t.priority, t.seq) - 1
             AS ahead
      FROM tasks t
      LEFT JOIN jsonb_to_recordset(CAST(:keys AS jsonb)) AS k(owner text, share float8)
        ON k.owner = coalesce(t.owner_id::text, '')
      LEFT JOIN jsonb_to_recordset(CAST(:accounts AS jsonb)) AS a(account text, share float8)
        ON a.account = coalesce(t.account, '')
      WHERE t.state = 'pending' AND t.pending_reason = ANY(CAST(:reasons AS text[]))
"""
_AHEAD_SQL = text(
    f"SELECT x.id, x.ahead FROM ({_RANKING}) x WHERE x.id = ANY(CAST(:ids AS uuid[]))"
)
"""One ranking of the waiting tasks per call, however many of them a page shows."""
_ALL_SQL = text(
    f"SELECT coalesce(array_agg(x.id::text), '{{}}'), coalesce(array_agg(x.ahead), '{{}}')"
    f" FROM ({_RANKING}) x"
)
"""Every waiting task's rank, as two arrays (ids as text: no UUID objects for thousands)."""


async def ranked_ahead(
    session: AsyncSession, settings: Settings, tasks: list[TaskRow]
) -> dict[uuid.UUID, int]:
    """For each task waiting for resources (or held for a reservation): the waiting tasks ranked
    ahead of it by (owner's plus account's fair-share key, -priority, age), as the scheduler
    orders them (ignoring how one pass interleaves lanes)."""
    waiting = [t for t in tasks if t.state == "pending" and t.pending_reason in RANKED_REASONS]
    if not waiting:
        return {}
    params = await _params(session, settings)
    rows = await session.execute(_AHEAD_SQL, {**params, "ids": [str(t.id) for t in waiting]})
    return {task_id: int(ahead) for task_id, ahead in rows.all()}


async def all_ranked(session: AsyncSession, settings: Settings) -> dict[str, int]:
    """``ranked_ahead`` of every waiting task at once, by task id (text): for lists, which
    keep it per write (``ReadCache.memo``) instead of ranking every waiting task per page."""
    ids, ahead = (await session.execute(_ALL_SQL, await _params(session, settings))).one()
    return dict(zip(ids, ahead, strict=True))


async def _params(session: AsyncSession, settings: Settings) -> dict[str, object]:
    keys = await share_keys(session, settings)
    return {
        "keys": json.dumps(
            [{"owner": str(k) if k else "", "share": v} for k, v in keys.users.items()]
        ),
        "accounts": json.dumps([{"account": k, "share": v} for k, v in keys.accounts.items()]),
        "reasons": list(RANKED_REASONS),
    }
