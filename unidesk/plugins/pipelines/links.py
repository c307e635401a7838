"""The task page's link back to the pipeline step a task ran for."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.plugin_api import TaskLink
from unidesk.plugins.pipelines.models import PipelineRow, StepTask

__all__ = ["task_links"]


async def task_links(session: AsyncSession, task_id: uuid.UUID) -> list[TaskLink]:
    """ "Pipeline <name> · step <step>" → ``/pipelines/<id>`` for a step's task; none otherwise."""
    row = (
        await session.execute(
            select(PipelineRow.id, PipelineRow.name, StepTask.step)
            .join(StepTask, StepTask.pipeline_id == PipelineRow.id)
            .where(StepTask.task_id == task_id)
        )
    ).first()
    if row is None:
        return []
    return [TaskLink(label=f"Pipeline {row.name} · step {row.step}", path=f"/pipelines/{row.id}")]
