"""Utilisation samples for a node's charts, downsampled into time buckets."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import get
from litestar.params import Parameter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.nodes.models import NodeRow
from unidesk.errors import BadRequest, NotFound

__all__ = ["Sample", "SamplePage", "node_samples"]


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


_SQL = text("""
SELECT date_bin(make_interval(secs => :step), ts, TIMESTAMPTZ '2000-01-01') AS bucket,
       avg(cpu_percent) AS cpu, avg(memory_used_mb)::int AS mem, max(memory_total_mb) AS total,
       (array_agg(gpus ORDER BY ts DESC))[1] AS gpus
FROM node_samples WHERE node_id = :node AND ts >= :since
GROUP BY bucket ORDER BY bucket
""")


@get("/api/nodes/{node_id:uuid}/samples", operation_id="node_samples", tags=["nodes"])
async def node_samples(
    node_id: uuid.UUID,
    db: AsyncSession,
    since: datetime | None = None,
    step_s: Annotated[int, Parameter(ge=15, le=86400)] = 60,
) -> SamplePage:
    """CPU, memory and GPU utilisation of a node since ``since`` (default 24 h ago), averaged per
    ``step_s``."""
    if await db.get(NodeRow, node_id) is None:
        raise NotFound(f"node {node_id} not found")
    now = datetime.now(UTC)
    since = since or now - timedelta(hours=24)
    if since.tzinfo is None:
        raise BadRequest("since: give a time zone (e.g. 2026-01-01T00:00:00Z)")
    if (now - since) / timedelta(seconds=step_s) > 5000:
        raise BadRequest("too many points: raise step_s or move since closer")
    rows = (await db.execute(_SQL, {"step": step_s, "node": node_id, "since": since})).all()
    return SamplePage(
        node_id=node_id,
        step_s=step_s,
        items=[
            Sample(
                ts=r.bucket,
                cpu_percent=round(float(r.cpu), 2),
                memory_used_mb=r.mem,
                memory_total_mb=r.total,
                gpus=list(r.gpus or []),
            )
            for r in rows
        ],
    )
