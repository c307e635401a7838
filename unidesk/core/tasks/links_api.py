"""GET /api/tasks/{id}/links: the plugins' pages a task belongs to (pipeline step, work item)."""

from __future__ import annotations

import uuid

import msgspec
from litestar import get
from litestar.datastructures import State
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.plugins.types import TaskLink
from unidesk.core.tasks.models import TaskRow
from unidesk.errors import NotFound

__all__ = ["TaskLinks", "task_links"]


class TaskLinks(msgspec.Struct, kw_only=True):
    items: list[TaskLink]


@get("/api/tasks/{task_id:uuid}/links", operation_id="task_links", tags=["tasks"])
async def task_links(task_id: uuid.UUID, db: AsyncSession, state: State) -> TaskLinks:
    """Links to the pages of the loaded plugins that the task belongs to (every member may read
    a task; none when no plugin claims it). 404 when there is no such task."""
    if await db.scalar(select(TaskRow.id).where(TaskRow.id == task_id)) is None:
        raise NotFound(f"no task {task_id}")
    return TaskLinks(items=await state.plugins.task_links(db, task_id))
