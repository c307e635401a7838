"""The event writer: appends events in the caller's transaction and queues a NOTIFY for commit."""

from __future__ import annotations

from typing import Any, Iterable

import msgspec
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.events.models import Event

__all__ = ["NOTIFY_CHANNEL", "NewEvent", "append", "append_many"]

NOTIFY_CHANNEL = "unidesk_events"


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event about to be written: what happened, to what, by whom."""

    kind: str
    subject_type: str
    subject_id: str
    actor: str
    payload: dict[str, Any] = {}


async def append(session: AsyncSession, event: NewEvent) -> int:
    """Write one event in the session's transaction; returns its id."""
    ids = await append_many(session, [event])
    return ids[0]


async def append_many(session: AsyncSession, events: Iterable[NewEvent]) -> list[int]:
    """Write events in order in one statement; PostgreSQL delivers the NOTIFY only on commit."""
    rows = [msgspec.structs.asdict(e) for e in events]
    if not rows:
        return []
    result = await session.execute(insert(Event).returning(Event.id, sort_by_parameter_order=True), rows)
    ids = [r[0] for r in result.all()]
    await session.execute(text("SELECT pg_notify(:ch, :id)"), {"ch": NOTIFY_CHANNEL, "id": str(max(ids))})
    return ids
