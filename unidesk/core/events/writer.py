"""The event writer: appends events in the caller's transaction and queues a NOTIFY for commit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.events.models import Event

__all__ = ["NOTIFY_CHANNEL", "NewEvent", "append", "append_many", "defer_events", "flush_deferred"]

NOTIFY_CHANNEL = "unidesk_events"
_DEFERRED = "unidesk.deferred_events"


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event about to be written: what happened, to what, by whom."""

    kind: str
    subject_type: str
    subject_id: str
    actor: str
    payload: dict[str, Any] = {}


def defer_events(session: AsyncSession) -> None:
    """From now on, collect this session's events in memory (in order) until ``flush_deferred``:
    a batch of many small transitions then costs one INSERT and one NOTIFY instead of two
    statements per event. The caller must flush before commit."""
    session.info[_DEFERRED] = []


async def flush_deferred(session: AsyncSession) -> list[int]:
    """Write the events collected since ``defer_events`` and stop deferring."""
    return await append_many(session, session.info.pop(_DEFERRED, []))


async def append(session: AsyncSession, event: NewEvent) -> int:
    """Write one event in the session's transaction; returns its id (0 while deferred)."""
    ids = await append_many(session, [event])
    return ids[0] if ids else 0


async def append_many(session: AsyncSession, events: Iterable[NewEvent]) -> list[int]:
    """Write events in order in one statement; PostgreSQL delivers the NOTIFY only on commit.
    While the session defers events, they are only collected (and no ids are returned)."""
    deferred = session.info.get(_DEFERRED)
    if deferred is not None:
        deferred.extend(events)
        return []
    rows = [msgspec.structs.asdict(e) for e in events]
    if not rows:
        return []
    result = await session.execute(
        insert(Event).returning(Event.id, sort_by_parameter_order=True), rows
    )
    ids = [r[0] for r in result.all()]
    await session.execute(
        text("SELECT pg_notify(:ch, :id)"), {"ch": NOTIFY_CHANNEL, "id": str(max(ids))}
    )
    return ids
