"""Single submits that arrive together are written together: one transaction for all of them.

``POST /api/tasks`` checks its task on its own (schema, edges, secrets, account),
then hands the row to the process's ``SubmitQueue``. Whatever is queued when the previous write
ends goes in the next: one INSERT … RETURNING of the tasks (their rows as one JSON array, so
one prepared statement whatever their number), one INSERT of their
``task.submitted`` events, one NOTIFY, one commit. An idle server writes a lone submit at once
(no waiting for company); under load, N concurrent submits cost one transaction and wake the
scheduler and the event listeners once instead of N times. If the shared transaction fails,
each submit of it is retried alone, so one bad row never fails the others.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, cast

import msgspec
from sqlalchemy import String, Table, TextClause, text
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk.core.events.writer import NewEvent, append_many
from unidesk.core.tasks.models import TaskRow
from unidesk.errors import Unavailable

__all__ = ["MAX_BATCH", "SubmitQueue"]

MAX_BATCH = 500
"""Most submits in one transaction."""
_TASKS = cast(Table, TaskRow.__table__)
_COLUMNS = [
    c
    for c in _TASKS.c
    if c.computed is None and c.identity is None and c.server_default is None
    and c.name not in ("reason", "message", "unschedulable_reason", "pending_reason",
                       "pending_detail", "not_before", "finished_at")
]  # fmt: skip
"""What a submit sets: every column without a server default (those without a Python one
as well, e.g. ``attempt_count``, are filled from ``_DEFAULTS``)."""
_DEFAULTS = {
    c.name: cast(Any, c.default).arg
    for c in _COLUMNS
    if c.default is not None and c.default.is_scalar
}


@functools.cache
def _insert() -> TextClause:
    """One statement text whatever the number of rows (one JSON parameter), so psycopg converts
    it once and PostgreSQL runs it prepared; a multi-row VALUES list is a new text per size.
    Built on first use: a foreign key column's type is known once its table is loaded."""
    dialect = cast(Callable[[], Dialect], PGDialect)()
    names = ", ".join(c.name for c in _COLUMNS)
    types = ", ".join(  # strings as text: the column's own length check applies on insert
        f"{c.name} {'text' if isinstance(c.type, String) else c.type.compile(dialect)}"
        for c in _COLUMNS
    )
    return text(
        f"INSERT INTO tasks ({names}) SELECT {names} "
        f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({types}) RETURNING *"
    )


def _rows_json(batch: list[_Item]) -> str:
    return msgspec.json.encode([{**_DEFAULTS, **i.values} for i in batch]).decode()


class _Item:
    __slots__ = ("done", "event", "values")

    def __init__(self, values: dict[str, Any], event: NewEvent) -> None:
        self.values = values
        self.event = event
        self.done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()


class SubmitQueue:
    """One per server process: queued task rows, written by one writer at a time."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self.scheduler: Any = None
        """This process's scheduler (set when it runs): it may give the new tasks their pending
        reason in the submit's own transaction; else (and without one) it is woken after."""
        self.passes_saved = 0
        self._queue: list[_Item] = []
        self._writer: asyncio.Task[None] | None = None
        self.transactions = 0
        self.submits = 0

    async def submit(self, values: dict[str, Any], event: NewEvent) -> Any:
        """Insert the ``tasks`` row ``values`` with its ``task.submitted`` event; the stored
        row (server defaults included) once committed."""
        item = _Item(values, event)
        self._queue.append(item)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="submit-queue")
        # Shielded: a client that goes away does not cancel the others' transaction.
        return await asyncio.shield(item.done)

    def wake(self) -> None:
        """Wake this process's scheduler: new pending tasks need a pass."""
        if self.scheduler is not None:
            self.scheduler.wake_submitted()

    async def _write_all(self) -> None:
        batch: list[_Item] = []
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    await self._write(batch)
                except Exception:
                    for item in batch:  # each alone: only a bad one fails
                        try:
                            await self._write([item])
                        except Exception as exc:
                            if not item.done.done():
                                item.done.set_exception(exc)
        except BaseException:  # cancelled (server stopping): no submit is left waiting
            for item in batch + self._queue:
                if not item.done.done():
                    item.done.set_exception(Unavailable("the server is stopping; submit again"))
            self._queue = []
            raise

    async def _write(self, batch: list[_Item]) -> None:
        sched = self.scheduler
        async with self._sessions() as s:
            rows = (await s.execute(_insert(), {"rows": _rows_json(batch)})).all()
            epoch = sched.epoch if sched is not None else None
            verdicts = sched.judge_submitted(rows) if sched is not None else None
            reasons = await sched.reason_events(s, verdicts) if verdicts else []
            await append_many(s, [i.event for i in batch] + reasons)
            await s.commit()
        self.transactions += 1
        self.submits += len(batch)
        if verdicts and sched.epoch == epoch:
            self.passes_saved += 1  # judged here, and nothing asked for a full pass meanwhile
        else:
            self.wake()
        by_id = {row.id: row for row in rows}
        for item in batch:
            if not item.done.done():
                item.done.set_result(by_id[item.values["id"]])
