"""HTTP handlers for attempt logs: a page after a sequence number, or a live follow stream (SSE)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.events.controllers import SHUTDOWN_MESSAGE
from unidesk.core.logs.services import LogEnd, LogPage, LogService, follow

__all__ = ["LogController"]

FOLLOW_MAX_S = 6 * 3600


class LogController(Controller):
    path = "/api/tasks/{task_id:uuid}/logs"
    tags = ("logs",)

    @get("/", operation_id="task_logs")
    async def logs(
        self,
        task_id: uuid.UUID,
        db: AsyncSession,
        attempt: Annotated[int | None, Parameter(ge=1)] = None,
        after: Annotated[int, Parameter(ge=0)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=5000)] = 1000,
        tail: Annotated[
            int | None, Parameter(ge=1, le=200, description="only the last N chunks")
        ] = None,
        stream: Annotated[
            Literal["stdout", "stderr"] | None, Parameter(description="only this stream")
        ] = None,
    ) -> LogPage:
        """Log chunks of one attempt (default: the latest) with seq greater than ``after``; with
        ``tail``, the last N of them (a failure banner's last stderr lines)."""
        return await LogService(db).page(task_id, attempt, after, limit, tail=tail, stream=stream)

    @get("/stream", operation_id="task_logs_stream")
    async def stream(
        self,
        task_id: uuid.UUID,
        state: State,
        db: AsyncSession,
        attempt: Annotated[int | None, Parameter(ge=1)] = None,
        after: Annotated[int, Parameter(ge=0)] = 0,
    ) -> ServerSentEvent:
        """Follow an attempt's log live (SSE): each chunk as it is stored (a chunk stored late,
        after a higher-numbered one, too: place chunks by their seq, the event id), then
        ``event: end``."""
        await LogService(db).page(
            task_id, attempt, after, 1
        )  # 404 now rather than inside the stream

        async def gen() -> AsyncIterator[ServerSentEventMessage]:
            async for item in follow(
                state.sessions,
                task_id,
                attempt,
                after,
                deadline_s=FOLLOW_MAX_S,
                stop=lambda: getattr(state, "draining", False),
            ):
                if isinstance(item, LogEnd):
                    yield ServerSentEventMessage(
                        event="end", data=msgspec.json.encode(item).decode()
                    )
                    return
                yield ServerSentEventMessage(
                    id=str(item.seq), event="log", data=msgspec.json.encode(item).decode()
                )
            if getattr(state, "draining", False):
                yield SHUTDOWN_MESSAGE

        return ServerSentEvent(gen())
