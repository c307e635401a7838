"""Compute tasks linked to work items: the task extension, manual links, and state following."""

from __future__ import annotations

import uuid
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.plugin_api import TASKS, EventOut, PluginState, Principal, append
from unidesk.errors import BadRequest, Conflict, NotFound
from unidesk.plugins.projects import models as m
from unidesk.plugins.projects.services import ProjectService, item_event

__all__ = [
    "EXTENSION",
    "account_of",
    "follow_task_states",
    "link_existing",
    "link_task",
    "on_submit",
    "project_account",
    "resync_links",
    "unlink",
]

log = structlog.get_logger("unidesk.plugins.projects")
EXTENSION = "projects"


async def link_task(
    session: AsyncSession,
    principal: Principal,
    work_item_id: uuid.UUID,
    task_id: uuid.UUID,
    task_state: str,
    *,
    via: str,
) -> None:
    """Link a task to a work item the caller may change, in the caller's transaction."""
    item = await session.get(m.WorkItem, work_item_id)
    if item is None:
        raise BadRequest(
            f"work_item_id: work item {work_item_id} does not exist", field="work_item_id"
        )
    await ProjectService(session, principal).project(item.project_id)
    existing = await session.get(m.TaskLink, task_id)
    if existing is not None:
        raise Conflict(
            f"task {task_id} is already linked to work item {existing.work_item_id}",
            task_id=str(task_id),
        )
    session.add(m.TaskLink(task_id=task_id, work_item_id=work_item_id, task_state=task_state))
    await append(
        session,
        item_event(
            work_item_id, "work_item.task_linked", principal.actor, task_id=str(task_id), via=via
        ),
    )


def project_account(project_id: uuid.UUID) -> str:
    """The account of a project's tasks (fair share, quotas and usage per project)."""
    return f"project:{project_id}"


async def account_of(session: AsyncSession, extensions: dict[str, Any]) -> str | None:
    """The account of a task submitted with a work item: its project's. None when there is no
    work item, or a bad one (``on_submit`` refuses that with its own message)."""
    ext = extensions.get(EXTENSION)
    if not isinstance(ext, dict) or set(ext) != {"work_item_id"}:
        return None
    try:
        work_item_id = uuid.UUID(str(ext["work_item_id"]))
    except ValueError:
        return None
    project_id = await session.scalar(
        select(m.WorkItem.project_id).where(m.WorkItem.id == work_item_id)
    )
    return project_account(project_id) if project_id is not None else None


async def on_submit(
    session: AsyncSession, task_id: uuid.UUID, extensions: dict[str, Any], principal: Principal
) -> None:
    ext = extensions.get(EXTENSION)
    if ext is None:
        return
    if set(ext) != {"work_item_id"}:
        raise BadRequest(
            'extensions.projects: expected exactly {"work_item_id": "<uuid>"}',
            field="extensions.projects",
        )
    try:
        work_item_id = uuid.UUID(str(ext["work_item_id"]))
    except ValueError:
        raise BadRequest(
            "extensions.projects.work_item_id: not a work item id",
            field="extensions.projects.work_item_id",
        ) from None
    await link_task(session, principal, work_item_id, task_id, "pending", via="submit")


async def link_existing(
    session: AsyncSession, principal: Principal, work_item_id: uuid.UUID, task_id: uuid.UUID
) -> None:
    state = await session.scalar(select(TASKS.c.state).where(TASKS.c.id == task_id))
    if state is None:
        raise BadRequest(f"task_id: task {task_id} does not exist", field="task_id")
    if await session.get(m.WorkItem, work_item_id) is None:
        raise NotFound(f"work item {work_item_id} not found")
    await link_task(session, principal, work_item_id, task_id, state, via="link")
    await session.commit()


async def unlink(
    session: AsyncSession, principal: Principal, work_item_id: uuid.UUID, task_id: uuid.UUID
) -> None:
    link = await session.get(m.TaskLink, task_id)
    if link is None or link.work_item_id != work_item_id:
        raise NotFound(f"task {task_id} is not linked to work item {work_item_id}")
    item = await session.get(m.WorkItem, work_item_id)
    assert item is not None
    await ProjectService(session, principal).project(item.project_id)
    await session.delete(link)
    await append(
        session,
        item_event(work_item_id, "work_item.task_unlinked", principal.actor, task_id=str(task_id)),
    )
    await session.commit()


async def _copy_states(session: AsyncSession, task_ids: list[uuid.UUID] | None) -> int:
    stmt = (
        update(m.TaskLink)
        .where(m.TaskLink.task_id == TASKS.c.id, m.TaskLink.task_state != TASKS.c.state)
        .values(task_state=TASKS.c.state, updated_at=func.now())
    )
    if task_ids is not None:
        stmt = stmt.where(m.TaskLink.task_id.in_(task_ids))
    result = cast("CursorResult[Any]", await session.execute(stmt))  # an UPDATE: a cursor result
    return result.rowcount or 0


_NO_STATE_CHANGE = frozenset(
    {
        "task.submitted",  # a link made at submit starts at the task's first state, pending
        "task.waiting",
        "task.unschedulable",
        "task.stage",
        "task.outputs",
        "task.stale_report",
        "task.cancel_requested",
    }
)
"""Task events that never come with a change of the task's state: no UPDATE for them (a
burst of submits or pending reasons costs the listener nothing)."""


async def follow_task_states(events: list[EventOut], state: PluginState) -> None:
    """Event listener: after task events commit, copy the tasks' states onto their links (a
    projection of the task's own events, so it writes no event of its own)."""
    ids = {
        uuid.UUID(e.subject_id)
        for e in events
        if e.subject_type == "task" and e.kind not in _NO_STATE_CHANGE
    }
    if not ids:
        return
    async with state.sessions() as session:
        if await _copy_states(session, sorted(ids)):
            await session.commit()


async def resync_links(state: PluginState) -> None:
    """At startup: catch up links whose task moved while no server was listening."""
    async with state.sessions() as session:
        changed = await _copy_states(session, None)
        await session.commit()
    if changed:
        log.info("task links resynchronised", changed=changed)
