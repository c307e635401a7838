"""The plugin API: everything a plugin may import from the core, typed, in one module.

Plugins (the built-in ``unidesk.plugins.*`` and third-party ones alike) import from here and
from ``unidesk.errors`` only; the rest of ``unidesk.core`` may change without notice. What is
here keeps its meaning across releases:

- ``hookimpl`` marks implementations of the hooks in ``unidesk.core.hookspecs``;
  ``UiContribution`` is what ``unidesk_ui_contributions`` returns.
- ``Base``, ``CreatedAt``, ``new_id``: declare the plugin's own tables (its Alembic branch
  creates them).
- ``NewEvent`` and ``append``: every change a plugin writes carries its event in the same
  transaction (the events table is the bus); ``EventOut`` is what event listeners receive.
- ``Principal`` (the signed-in user or token, injected into route handlers as ``principal``),
  ``require_owner_or_admin`` (the core's access rule), ``attachment`` (a safe
  ``Content-Disposition`` value).
- ``TASKS``, ``USERS`` and ``ARTIFACTS``: read-only views of tasks, users and artifacts to
  select from or join against (columns listed below); plugins never write the core's tables.
  ``events_of`` reads one subject's events (a trace), oldest first.
- ``TaskCreate`` and ``TaskSubmitter``: submit tasks on a user's behalf inside the plugin's
  own transaction, with the same checks as ``POST /api/tasks`` (and cancel them as a user).
- ``PluginState``: what ``unidesk_startup`` and event listeners get as ``state`` (route
  handlers can ask for ``state`` too); ``plugin_settings(state, MySettings)`` returns the
  validated values of the struct the plugin's ``unidesk_settings`` declared.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar, cast

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk.core.auth.models import User
from unidesk.core.auth.policy import require_owner_or_admin
from unidesk.core.auth.schemas import Principal
from unidesk.core.db.base import Base, CreatedAt, new_id
from unidesk.core.events.hub import to_out
from unidesk.core.events.models import Event
from unidesk.core.events.schemas import EventOut
from unidesk.core.events.writer import NewEvent, append
from unidesk.core.hookspecs import hookimpl
from unidesk.core.plugins.types import TaskLink, UiContribution
from unidesk.core.settings import Settings
from unidesk.core.storage.disposition import attachment
from unidesk.core.storage.models import ArtifactRow
from unidesk.core.tasks.models import TaskRow
from unidesk.core.tasks.schemas import TaskCreate
from unidesk.core.tasks.services import TaskService
from unidesk.core.tasks.states import TASK_FINAL_STATES
from unidesk.errors import Conflict

__all__ = [
    "ARTIFACTS",
    "TASKS",
    "TASK_FINAL_STATES",
    "USERS",
    "Base",
    "CreatedAt",
    "EventOut",
    "NewEvent",
    "PluginState",
    "Principal",
    "Settings",
    "TaskCreate",
    "TaskLink",
    "TaskSubmitter",
    "UiContribution",
    "append",
    "attachment",
    "events_of",
    "hookimpl",
    "new_id",
    "plugin_settings",
    "require_owner_or_admin",
]

TASKS = select(
    TaskRow.id,
    TaskRow.name,
    TaskRow.state,
    TaskRow.owner_id,
    TaskRow.finished_at,
).subquery("tasks_view")
"""Tasks, read-only: ``id``, ``name``, ``state``, ``owner_id``, ``finished_at``; a task in one
of ``TASK_FINAL_STATES`` never moves again."""

USERS = select(User.id, User.username).subquery("users_view")
"""Users, read-only: ``id``, ``username``."""

ARTIFACTS = select(
    ArtifactRow.id,
    ArtifactRow.name,
    ArtifactRow.state,
    ArtifactRow.size,
    ArtifactRow.task_id,
    ArtifactRow.attempt_no,
).subquery("artifacts_view")
"""Artifacts, read-only: ``id``, ``name``, ``state``, ``size``, ``task_id``, ``attempt_no`` (a
task's outputs are named ``tasks/<task_id>/<attempt_no>/<path>``)."""


async def events_of(
    session: AsyncSession, subject_type: str, subject_id: str | list[str]
) -> list[EventOut]:
    """The events of one subject (its trace), or of several of one type, oldest first."""
    ids = [subject_id] if isinstance(subject_id, str) else subject_id
    rows = await session.scalars(
        select(Event)
        .where(Event.subject_type == subject_type, Event.subject_id.in_(ids))
        .order_by(Event.id)
    )
    return [to_out(e) for e in rows.all()]


class PluginState(Protocol):
    """The server state handed to ``unidesk_startup`` and to event listeners."""

    sessions: async_sessionmaker[AsyncSession]
    """Open a database session: ``async with state.sessions() as session: ...``."""
    settings: Settings
    plugins: Any
    """The core's plugin facade (pass it to ``TaskSubmitter``)."""
    plugin_settings: Mapping[type, msgspec.Struct]
    """Each loaded plugin's settings by struct class; read them with ``plugin_settings()``."""


S = TypeVar("S", bound=msgspec.Struct)


def plugin_settings(state: PluginState, struct: type[S]) -> S:
    """The validated settings of ``struct`` (what this plugin's ``unidesk_settings`` returned).
    Raises ``LookupError`` when no loaded plugin declared ``struct``."""
    try:
        value = state.plugin_settings[struct]
    except KeyError:
        raise LookupError(f"no loaded plugin declared settings {struct.__name__}") from None
    return cast(S, value)


class TaskSubmitter:
    """Submit tasks inside ``session`` (the caller commits) with the checks of the task API:
    validation, priority cap, input/output files, secrets, and every plugin's
    ``unidesk_task_submitting``."""

    def __init__(self, session: AsyncSession, settings: Settings, plugins: Any) -> None:
        self._tasks = TaskService(session, settings, plugins)

    def validate(self, data: TaskCreate) -> None:
        """Refuse (400) a body the task API would refuse, before anything is written."""
        self._tasks.validate(data)

    async def check_account(self, account: str, principal: Principal) -> None:
        """Refuse (403) an account ``principal`` may not charge tasks to (not one of its
        members, and not an admin), as a submit naming it would be."""
        await self._tasks.check_member(account, principal)

    async def submit(self, data: TaskCreate, principal: Principal) -> uuid.UUID:
        """Submit one task as ``principal``; returns its id."""
        return (await self._tasks.submit(data, principal)).id

    async def submit_many(self, batch: list[TaskCreate], principal: Principal) -> list[uuid.UUID]:
        """Submit many tasks as ``principal`` in the caller's transaction, all or none (a 400
        lists every bad index); returns their ids in order. One INSERT for the rows and one
        for their events, however many."""
        return await self._tasks.submit_many(batch, principal, commit=False)

    async def cancel(self, task_id: uuid.UUID, principal: Principal) -> None:
        """Cancel a task as ``principal`` (like ``POST /api/tasks/{id}/cancel``); this COMMITS
        the session. A task already final is left alone."""
        try:
            await self._tasks.request_cancel(task_id, principal)
        except Conflict:
            await self._tasks.s.rollback()
