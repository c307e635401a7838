"""The task page's link to the work item a task was run for."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.plugin_api import TaskLink
from unidesk.plugins.projects.models import TaskLink as TaskLinkRow
from unidesk.plugins.projects.models import WorkItem

__all__ = ["task_links"]


async def task_links(session: AsyncSession, task_id: uuid.UUID) -> list[TaskLink]:
    """ "Work item <title>" → ``/projects/items/<id>``; none for a task of no work item."""
    rows = await session.execute(
        select(WorkItem.id, WorkItem.title)
        .join(TaskLinkRow, TaskLinkRow.work_item_id == WorkItem.id)
        .where(TaskLinkRow.task_id == task_id)
    )
    return [TaskLink(label=f"Work item {r.title}", path=f"/projects/items/{r.id}") for r in rows]
