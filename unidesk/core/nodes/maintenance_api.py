"""``POST /api/nodes/{id}/maintenance``: one audited host.ssh operation on a node (admins)."""

from __future__ import annotations

import uuid

from litestar import post
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.auth.guards import admin_only
from unidesk.core.auth.schemas import Principal
from unidesk.core.nodes.maintenance import create_maintenance_task
from unidesk.core.nodes.schemas import MaintenanceCreate
from unidesk.core.tasks import schemas

__all__ = ["request_maintenance"]


@post(
    "/api/nodes/{node_id:uuid}/maintenance",
    operation_id="request_node_maintenance",
    status_code=201,
    guards=[admin_only],
    tags=["nodes"],
)
async def request_maintenance(
    node_id: uuid.UUID, data: MaintenanceCreate, db: AsyncSession, principal: Principal
) -> schemas.Task:
    """Run one bounded host.ssh operation (probe or exec) on a node's host OS; admins only, audited.
    The result is the task's logs and exit code (``GET /api/tasks/{id}``, ``/logs``)."""
    return await create_maintenance_task(db, node_id, data, principal)
