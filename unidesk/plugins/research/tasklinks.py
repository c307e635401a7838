"""The task page's link to the experiment a task is a run of."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.plugin_api import TaskLink
from unidesk.plugins.research.models import Experiment, Run

__all__ = ["task_links"]


async def task_links(session: AsyncSession, task_id: uuid.UUID) -> list[TaskLink]:
    """ "Experiment <name>" (with "· sweep" for a sweep's run) → ``/experiments/<id>``."""
    rows = await session.execute(
        select(Experiment.id, Experiment.name, Run.sweep_id)
        .join(Run, Run.experiment_id == Experiment.id)
        .where(Run.task_id == task_id)
    )
    return [
        TaskLink(
            label=f"Experiment {r.name}" + (" · sweep" if r.sweep_id else ""),
            path=f"/experiments/{r.id}",
        )
        for r in rows
    ]
