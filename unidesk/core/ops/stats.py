"""GET /api/stats: the dashboard's numbers in one call."""

from __future__ import annotations

from litestar import get
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.ops.stats_service import Stats, dashboard_stats

__all__ = ["Stats", "stats"]


@get("/api/stats", operation_id="stats", tags=["dashboard"])
async def stats(db: AsyncSession) -> Stats:
    """Nodes by state, tasks by state, tasks finished per hour (24 h), and the latest failures."""
    return await dashboard_stats(db)
