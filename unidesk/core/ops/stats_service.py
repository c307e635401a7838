"""The dashboard's numbers, read from the database in one session (``GET /api/stats``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.auth.models import User
from unidesk.core.nodes.models import NodeRow
from unidesk.core.tasks.models import TaskRow
from unidesk.core.tasks.schemas import Task
from unidesk.core.tasks.services import task_out
from unidesk.core.tasks.states import TaskState

__all__ = ["HourBucket", "Stats", "dashboard_stats"]


class HourBucket(msgspec.Struct, kw_only=True):
    hour: datetime
    succeeded: int
    failed: int
    cancelled: int


class Stats(msgspec.Struct, kw_only=True):
    nodes: dict[str, int]
    tasks: dict[TaskState, int]
    finished_per_hour: list[HourBucket]
    recent_failures: list[Task]


_HOURLY = text("""
SELECT h.hour,
       count(t.id) FILTER (WHERE t.state = 'succeeded') AS succeeded,
       count(t.id) FILTER (WHERE t.state = 'failed') AS failed,
       count(t.id) FILTER (WHERE t.state = 'cancelled') AS cancelled
FROM generate_series(date_trunc('hour', now()) - interval '23 hours', date_trunc('hour', now()),
interval '1 hour') AS h(hour)
LEFT JOIN tasks t ON t.finished_at >= h.hour AND t.finished_at < h.hour + interval '1 hour'
GROUP BY h.hour ORDER BY h.hour
""")


async def dashboard_stats(db: AsyncSession) -> Stats:
    """Nodes by state, tasks by state, tasks finished per hour (24 h), and the latest failures."""
    nodes = (
        await db.execute(select(NodeRow.state, NodeRow.draining, NodeRow.unhealthy_reason))
    ).all()
    node_counts: dict[str, Any] = {"online": 0, "offline": 0, "draining": 0, "unhealthy": 0}
    for state, draining, unhealthy in nodes:
        node_counts[state] = node_counts.get(state, 0) + 1
        node_counts["draining"] += int(bool(draining))
        node_counts["unhealthy"] += int(bool(unhealthy) and state == "online")
    tasks = dict(
        (await db.execute(select(TaskRow.state, func.count()).group_by(TaskRow.state))).all()
    )
    hourly = [
        HourBucket(hour=r.hour, succeeded=r.succeeded, failed=r.failed, cancelled=r.cancelled)
        for r in (await db.execute(_HOURLY)).all()
    ]
    failures = (
        await db.execute(
            select(TaskRow, User.username)
            .outerjoin(User, User.id == TaskRow.owner_id)
            .where(TaskRow.state == "failed")
            .order_by(TaskRow.finished_at.desc())
            .limit(10)
        )
    ).all()
    return Stats(
        nodes=node_counts,
        tasks=tasks,
        finished_per_hour=hourly,
        recent_failures=[task_out(t, u) for t, u in failures],
    )
