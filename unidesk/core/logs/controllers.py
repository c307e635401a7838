"""HTTP handlers for attempt logs: a page after a sequence number, or a live follow stream (SSE)."""

from __future__ import annotations

import asyncio
import time
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
from unidesk.core.logs.services import LogPage, LogService

__all__ = ["LogController"]

FOLLOW_POLL_S = 0.25
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
        """Follow an attempt's log live (SSE): each chunk as it is stored, then ``event: end``."""
        await LogService(db).page(
            task_id, attempt, after, 1
        )  # 404 now rather than inside the stream

        async def gen() -> AsyncIterator[ServerSentEventMessage]:
            cursor = after
            number = attempt
            deadline = time.monotonic() + FOLLOW_MAX_S
            while time.monotonic() < deadline:
                if getattr(state, "draining", False):
                    yield SHUTDOWN_MESSAGE
                    return
                async with state.sessions() as s:
                    page = await LogService(s).page(task_id, number, cursor, 1000)
                number = number or page.attempt_no
                for line in page.items:
                    yield ServerSentEventMessage(
                        id=str(line.seq), event="log", data=msgspec.json.encode(line).decode()
                    )
                cursor = page.next_after
                if page.final and not page.items:
                    yield ServerSentEventMessage(
                        event="end",
                        data=msgspec.json.encode(
                            {"attempt_no": number, "truncated": page.truncated}
                        ).decode(),
                    )
                    return
                if not page.items:
                    await asyncio.sleep(FOLLOW_POLL_S)

        return ServerSentEvent(gen())
