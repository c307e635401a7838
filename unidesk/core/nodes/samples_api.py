"""GET /api/nodes/{id}/samples: utilisation samples for a node's charts, in time buckets."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from litestar import get
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.nodes.schemas import SamplePage
from unidesk.core.nodes.services import NodeService

__all__ = ["node_samples"]


@get("/api/nodes/{node_id:uuid}/samples", operation_id="node_samples", tags=["nodes"])
async def node_samples(
    node_id: uuid.UUID,
    db: AsyncSession,
    since: datetime | None = None,
    step_s: Annotated[int, Parameter(ge=15, le=86400)] = 60,
) -> SamplePage:
    """CPU, memory and GPU utilisation of a node since ``since`` (default 24 h ago), averaged per
    ``step_s``."""
    return await NodeService(db).samples(node_id, since=since, step_s=step_s)
