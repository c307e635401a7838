"""Reading attempt logs: pages after a sequence number, whether the attempt has ended, and the
live follow (which also delivers a chunk stored after a higher-numbered one)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk.core.logs.models import LogChunkRow
from unidesk.core.tasks.models import ATTEMPT_FINAL_STATES, AttemptRow, TaskRow
from unidesk.errors import NotFound
from unidesk.protocol import LogStream

__all__ = ["LATE_WAIT_S", "LogEnd", "LogLine", "LogPage", "LogService", "follow"]

FOLLOW_POLL_S = 0.25
LATE_WAIT_S = 60.0
"""How long a follow looks for a chunk missing below the highest seq it sent (a resend after a
failed store, usually within seconds); later ones show on reload."""
FINAL_LATE_WAIT_S = 5.0
"""How long a follow of an ended attempt still waits for its missing chunks before ``end``."""
MAX_MISSING = 1000
"""At most this many missing seqs (the highest) are looked for at once."""


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


class LogEnd(msgspec.Struct, kw_only=True):
    """The follow is over: the attempt ended and its log was sent."""

    attempt_no: int | None
    truncated: bool


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

    async def chunks(self, task_id: uuid.UUID, attempt_no: int, seqs: list[int]) -> list[LogLine]:
        """The stored chunks of ``seqs`` (those that exist), in seq order."""
        if not seqs:
            return []
        rows = (
            await self.s.scalars(
                select(LogChunkRow)
                .where(
                    LogChunkRow.task_id == task_id,
                    LogChunkRow.attempt_no == attempt_no,
                    LogChunkRow.seq.in_(seqs),
                )
                .order_by(LogChunkRow.seq)
            )
        ).all()
        return [LogLine(seq=r.seq, stream=r.stream, data=r.data, ts=r.ts) for r in rows]

    async def size(self, task_id: uuid.UUID, attempt_no: int) -> int:
        return int(
            await self.s.scalar(
                select(func.count())
                .select_from(LogChunkRow)
                .where(LogChunkRow.task_id == task_id, LogChunkRow.attempt_no == attempt_no)
            )
            or 0
        )


async def follow(
    sessions: async_sessionmaker[AsyncSession],
    task_id: uuid.UUID,
    attempt_no: int | None,
    after: int,
    *,
    deadline_s: float,
    stop: Callable[[], bool] = lambda: False,
) -> AsyncIterator[LogLine | LogEnd]:
    """An attempt's chunks with seq above ``after`` as they are stored, then a ``LogEnd``.

    Seqs start at 1 and have no gaps once stored, but a chunk may be stored after a
    higher-numbered one (an agent resends it after a failed store). The seqs skipped below the
    highest one sent are looked for on every poll for ``LATE_WAIT_S`` and sent when they come
    (a reader places a chunk by its seq, not by arrival). Returns without ``LogEnd`` when
    ``stop()`` says so or at ``deadline_s``."""
    cursor = after
    number = attempt_no
    missing: dict[int, float] = {}
    final_since: float | None = None
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and not stop():
        async with sessions() as s:
            svc = LogService(s)
            page = await svc.page(task_id, number, cursor, 1000)
            number = number or page.attempt_no
            late = await svc.chunks(task_id, number, sorted(missing)) if number else []
        now = time.monotonic()
        for line in late:
            missing.pop(line.seq, None)
            yield line
        for line in page.items:
            for gap in range(max(cursor + 1, line.seq - MAX_MISSING), line.seq):
                missing[gap] = now
            cursor = max(cursor, line.seq)
            yield line
        for seq in [q for q, t in missing.items() if now - t >= LATE_WAIT_S]:
            del missing[seq]
        for seq in sorted(missing)[: max(0, len(missing) - MAX_MISSING)]:
            del missing[seq]
        if page.final and not page.items and not late:
            final_since = final_since or now
            if not missing or now - final_since >= FINAL_LATE_WAIT_S:
                yield LogEnd(attempt_no=number, truncated=page.truncated)
                return
        if not page.items:
            await asyncio.sleep(FOLLOW_POLL_S)
