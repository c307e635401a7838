"""Reading the event log for the API: pages filtered by kind and subject."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.events.hub import to_out
from unidesk.core.events.models import Event
from unidesk.core.events.schemas import EventPage

__all__ = ["event_page"]


async def event_page(
    session: AsyncSession,
    *,
    after: int,
    limit: int,
    kind: str | None = None,
    subject_type: str | None = None,
    subject_id: str | None = None,
) -> EventPage:
    """Events with id greater than ``after``, oldest first, at most ``limit``."""
    stmt = select(Event).where(Event.id > after)
    if kind:
        stmt = stmt.where(Event.kind == kind)
    if subject_type:
        stmt = stmt.where(Event.subject_type == subject_type)
    if subject_id:
        stmt = stmt.where(Event.subject_id == subject_id)
    rows = (await session.scalars(stmt.order_by(Event.id).limit(limit))).all()
    items = [to_out(e) for e in rows]
    return EventPage(items=items, last_id=items[-1].id if items else after)
