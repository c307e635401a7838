"""HTTP handlers for tasks: submit, list, get, trace, cancel, retry."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.auth.policy import allowed_actions
from unidesk.core.auth.schemas import Principal
from unidesk.core.db.readcache import cached_answer
from unidesk.core.db.reads import Reads
from unidesk.core.deps import owner_filter
from unidesk.core.events.schemas import EventOut
from unidesk.core.settings import Settings
from unidesk.core.tasks import schemas
from unidesk.core.tasks.listing import TaskSort
from unidesk.core.tasks.services import TaskService, list_tasks
from unidesk.errors import BadRequest, UnideskError

__all__ = ["TaskBatchController", "TaskController"]

MAX_LIST_OFFSET = 100_000
"""Deepest ``offset`` of ``GET /api/tasks`` (an offset reads every row it skips)."""

BATCH_MAX_BYTES = 64 * 1024 * 1024
"""Largest ``POST /api/task-batches`` body (10,000 specs of a few KiB each)."""


def _for(principal: Principal, task: schemas.Task) -> schemas.Task:
    task.allowed_actions = allowed_actions(principal, "task", task.owner_id)
    return task


class TaskController(Controller):
    path = "/api/tasks"
    tags = ("tasks",)

    @post("/", operation_id="submit_task", status_code=201)
    async def submit(
        self, data: schemas.TaskCreate, request: Request[Any, Any, Any], state: State
    ) -> schemas.Task:
        """Submit a task pinned to a code commit and an environment commit; it starts `pending`."""
        # The hot path: no dependency providers; a session is made only if a check reads
        # (files, secrets, plugin extensions).
        principal: Principal = request.user
        svc = TaskService(state.sessions, state.settings, state.plugins)
        try:
            task = await svc.submit_queued(data, principal, state.submit_queue)
        finally:
            if svc.opened is not None:
                await svc.opened.close()
        # Committed; the queue woke this instance's scheduler unless the tasks were given
        # their pending reason in the same transaction (nothing can be placed: see the queue).
        return _for(principal, task)

    @get("/", operation_id="list_tasks")
    async def list_tasks(
        self,
        request: Request[Any, Any, Any],
        state: State,
        reads: Reads,
        principal: Principal,
        settings: Settings,
        state_filter: Annotated[list[str] | None, Parameter(query="state")] = None,
        owner: Annotated[str | None, Parameter(description="'me' or a user id")] = None,
        q: Annotated[str | None, Parameter(max_length=200)] = None,
        node: uuid.UUID | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Parameter(max_length=200)] = None,
        total: Annotated[
            bool, Parameter(description="also count every matching task (one more query)")
        ] = False,
        sort: Annotated[
            TaskSort,
            Parameter(
                description="order: created_at, name, state, priority, started_at or "
                "finished_at; a leading '-' for descending (ties: submission order; tasks "
                "with no value last)"
            ),
        ] = "-created_at",
        offset: Annotated[
            int,
            Parameter(
                ge=0,
                le=MAX_LIST_OFFSET,
                description="skip this many rows (page jumps; cursors are cheaper for paging)",
            ),
        ] = 0,
    ) -> Response[schemas.TaskPage]:
        """Tasks in ``sort`` order (newest first by default), filtered by state, owner, name and
        node; paged by ``next_cursor``/``prev_cursor`` (keyset) or ``offset`` (page jumps).
        Answers carry an ``ETag``; ``If-None-Match`` with it gets 304 while nothing changed."""
        owner_id = owner_filter(owner, principal)

        async def page() -> bytes:
            return await list_tasks(
                reads,
                state.sessions,
                settings,
                principal,
                state.read_cache,
                states=state_filter or [],
                owner=owner_id,
                q=q,
                node=node,
                limit=limit,
                cursor=cursor,
                with_total=total,
                sort=sort,
                offset=offset,
            )

        return await cached_answer(request, principal, page)

    @get("/{task_id:uuid}", operation_id="get_task")
    async def get_task(
        self, task_id: uuid.UUID, db: AsyncSession, principal: Principal, settings: Settings
    ) -> schemas.Task:
        """One task with its attempts (every member may read it; ``allowed_actions`` says what
        the caller may do to it)."""
        return _for(principal, await TaskService(db, settings).get(task_id))

    @get("/{task_id:uuid}/trace", operation_id="task_trace")
    async def trace(
        self,
        request: Request[Any, Any, Any],
        task_id: uuid.UUID,
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
    ) -> Response[dict[str, list[EventOut]]]:
        """The task's events in order: its complete history (``ETag``)."""

        async def page() -> dict[str, list[EventOut]]:
            return {"items": await TaskService(db, settings).trace(task_id)}

        return await cached_answer(request, principal, page)

    @post("/{task_id:uuid}/cancel", operation_id="cancel_task", status_code=200)
    async def cancel(
        self, task_id: uuid.UUID, db: AsyncSession, principal: Principal, settings: Settings
    ) -> schemas.Task:
        """Cancel a task: pending ends at once; a running attempt is stopped on its node."""
        task, _ = await TaskService(db, settings).request_cancel(task_id, principal)
        return _for(principal, task)

    @post("/{task_id:uuid}/retry", operation_id="retry_task", status_code=201)
    async def retry(
        self,
        task_id: uuid.UUID,
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
        state: State,
    ) -> schemas.Task:
        """Submit a new task with the same spec (and the same plugin extensions); only the
        task's owner or an admin may."""
        return _for(
            principal, await TaskService(db, settings, state.plugins).retry(task_id, principal)
        )


def _decode(spec: dict[str, object]) -> schemas.TaskCreate | UnideskError:
    try:
        return msgspec.convert(spec, schemas.TaskCreate)
    except msgspec.ValidationError as exc:
        return BadRequest(str(exc))


class TaskBatchController(Controller):
    path = "/api/task-batches"
    tags = ("tasks",)

    @post(
        "/",
        operation_id="submit_task_batch",
        status_code=201,
        request_max_body_size=BATCH_MAX_BYTES,
    )
    async def submit_batch(
        self,
        data: schemas.TaskBatchCreate,
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
        state: State,
    ) -> schemas.TaskBatch:
        """Submit up to 10,000 tasks (each a TaskCreate) in one transaction: every spec is
        checked first, and if any is bad nothing is created and the problem lists every bad
        index (``errors``: ``[{index, detail, field?}]``)."""
        batch = [_decode(spec) for spec in data.tasks]
        ids = await TaskService(db, settings, state.plugins).submit_many(batch, principal)
        state.scheduler_wake_submitted()
        return schemas.TaskBatch(count=len(ids), task_ids=ids)
