"""Guarded state transitions for tasks and attempts, each written with its event.

This module is the only writer of ``tasks.state`` and ``task_attempts.state``. A transition
is an UPDATE guarded by the states it may leave (so a duplicate or stale report is a
no-op) plus the event that explains it, in the caller's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.events.kinds import EventKind
from unidesk.core.events.writer import NewEvent, append
from unidesk.core.tasks.models import AttemptRow, TaskRow
from unidesk.core.tasks.states import ATTEMPT_FINAL_STATES, TASK_FINAL_STATES

__all__ = ["move_attempt", "move_task", "task_event"]


def task_event(task_id: uuid.UUID, kind: EventKind, actor: str, **payload: Any) -> NewEvent:
    return NewEvent(
        kind=kind, subject_type="task", subject_id=str(task_id), actor=actor, payload=payload
    )


async def move_task(
    session: AsyncSession,
    task_id: uuid.UUID,
    *,
    from_states: Iterable[str],
    to: str,
    event: NewEvent,
    **values: Any,
) -> bool:
    """Move a task to ``to`` if it is in ``from_states``; write ``event`` only if it moved."""
    if to in TASK_FINAL_STATES:
        values.setdefault("finished_at", func.clock_timestamp())
    result = await session.execute(
        update(TaskRow)
        .where(TaskRow.id == task_id, TaskRow.state.in_(tuple(from_states)))
        .values(state=to, updated_at=func.clock_timestamp(), **values)
        .returning(TaskRow.id)
    )
    if result.first() is None:
        return False
    await append(session, event)
    return True


async def move_attempt(
    session: AsyncSession,
    task_id: uuid.UUID,
    attempt_no: int,
    *,
    from_states: Iterable[str],
    to: str,
    event: NewEvent | None = None,
    **values: Any,
) -> bool:
    """Move an attempt if it is in ``from_states``; its event (if given) is written only if it
    moved."""
    if to in ATTEMPT_FINAL_STATES:
        values.setdefault("finished_at", func.clock_timestamp())
    result = await session.execute(
        update(AttemptRow)
        .where(
            AttemptRow.task_id == task_id,
            AttemptRow.attempt_no == attempt_no,
            AttemptRow.state.in_(tuple(from_states)),
        )
        .values(state=to, **values)
        .returning(AttemptRow.task_id)
    )
    if result.first() is None:
        return False
    if event is not None:
        await append(session, event)
    return True
