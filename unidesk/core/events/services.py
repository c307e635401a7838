"""Reading the event log for the API: pages filtered by kind and subject."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import select

from unidesk.core.db.reads import Reads
from unidesk.core.events.models import Event
from unidesk.core.events.schemas import EventOut, EventPage

__all__ = ["event_page"]

_COLUMNS = (
    Event.id,
    Event.ts,
    Event.kind,
    Event.subject_type,
    Event.subject_id,
    Event.actor,
    Event.payload,
)
"""What an EventOut returns (not ``txid``): selected as Core rows on the read pool."""


async def event_page(
    reads: Reads,
    *,
    after: int,
    limit: int,
    kind: str | None = None,
    subject_type: str | None = None,
    subject_id: str | None = None,
) -> EventPage:
    """Events with id greater than ``after``, oldest first, at most ``limit``."""
    stmt = select(*_COLUMNS).where(Event.id > after)
    if kind:
        stmt = stmt.where(Event.kind == kind)
    if subject_type:
        stmt = stmt.where(Event.subject_type == subject_type)
    if subject_id:
        stmt = stmt.where(Event.subject_id == subject_id)
    rows = await reads.all(stmt.order_by(Event.id).limit(limit))
    items = [
        EventOut(
            id=id_,
            ts=ts,
            kind=kind_,
            subject_type=stype,
            subject_id=sid,
            actor=actor,
            payload=payload,
        )
        for id_, ts, kind_, stype, sid, actor, payload in cast(list[tuple[Any, ...]], rows)
    ]
    return EventPage(items=items, last_id=items[-1].id if items else after)
