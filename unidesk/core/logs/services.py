"""Reading attempt logs: pages after a sequence number, and whether the attempt has ended."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.logs.models import LogChunkRow
from unidesk.core.tasks.models import ATTEMPT_FINAL_STATES, AttemptRow, TaskRow
from unidesk.errors import NotFound
from unidesk.protocol import LogStream

__all__ = ["LogLine", "LogPage", "LogService"]


class LogLine(msgspec.Struct, kw_only=True):
    seq: int
    stream: LogStream
    data: str
    ts: datetime


class LogPage(msgspec.Struct, kw_only=True):
    task_id: uuid.UUID
    attempt_no: int | None
    items: list[LogLine]
    next_after: int
    truncated: bool
    final: bool


class LogService:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def resolve_attempt(
        self, task_id: uuid.UUID, attempt_no: int | None
    ) -> AttemptRow | None:
        task = await self.s.get(TaskRow, task_id)
        if task is None:
            raise NotFound(f"task {task_id} not found", task_id=str(task_id))
        number = attempt_no if attempt_no is not None else task.attempt_count
        if number == 0:
            return None
        attempt = await self.s.scalar(
            select(AttemptRow)
            .where(AttemptRow.task_id == task_id, AttemptRow.attempt_no == number)
            .execution_options(populate_existing=True)
        )
        if attempt is None:
            raise NotFound(f"task {task_id} has no attempt {number}", task_id=str(task_id))
        return attempt

    async def page(
        self,
        task_id: uuid.UUID,
        attempt_no: int | None,
        after: int,
        limit: int,
        *,
        tail: int | None = None,
        stream: str | None = None,
    ) -> LogPage:
        """Chunks after ``after`` (oldest first), or with ``tail`` the last ``tail`` chunks
        (of ``stream`` when given), still oldest first."""
        attempt = await self.resolve_attempt(task_id, attempt_no)
        if attempt is None:
            return LogPage(
                task_id=task_id,
                attempt_no=None,
                items=[],
                next_after=after,
                truncated=False,
                final=False,
            )
        query = select(LogChunkRow).where(
            LogChunkRow.task_id == task_id,
            LogChunkRow.attempt_no == attempt.attempt_no,
            LogChunkRow.seq > after,
        )
        if stream is not None:
            query = query.where(LogChunkRow.stream == stream)
        if tail is not None:
            last = (await self.s.scalars(query.order_by(LogChunkRow.seq.desc()).limit(tail))).all()
            rows = list(reversed(last))
        else:
            rows = list((await self.s.scalars(query.order_by(LogChunkRow.seq).limit(limit))).all())
        items = [LogLine(seq=r.seq, stream=r.stream, data=r.data, ts=r.ts) for r in rows]
        return LogPage(
            task_id=task_id,
            attempt_no=attempt.attempt_no,
            items=items,
            next_after=items[-1].seq if items else after,
            truncated=attempt.log_truncated,
            final=attempt.state in ATTEMPT_FINAL_STATES,
        )

    async def size(self, task_id: uuid.UUID, attempt_no: int) -> int:
        return int(
            await self.s.scalar(
                select(func.count())
                .select_from(LogChunkRow)
                .where(LogChunkRow.task_id == task_id, LogChunkRow.attempt_no == attempt_no)
            )
            or 0
        )
