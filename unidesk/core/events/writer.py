"""The event writer: appends events in the caller's transaction and queues a NOTIFY for commit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

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


# One statement with a fixed text whatever the number of events (psycopg caches its parse and
# prepares it; a multi-row VALUES list is a new, long text per size that psycopg re-parses):
# the rows come as one JSON array (msgspec encodes the whole batch in one C call; arrays per
# column cost psycopg's list dumper ~13 % of the server in the 1,000-node dispatch bench), are
# inserted in the order given (ids follow it), and the NOTIFY of the highest id rides in the
# same round trip.
_INSERT_SQL = text(
    """
    WITH ins AS (
      INSERT INTO events (kind, subject_type, subject_id, actor, payload)
      SELECT e.kind, e.subject_type, e.subject_id, e.actor, e.payload
      FROM ROWS FROM (jsonb_to_recordset(CAST(:rows AS jsonb))
             AS (kind text, subject_type text, subject_id text, actor text, payload jsonb))
           WITH ORDINALITY AS e(kind, subject_type, subject_id, actor, payload, n)
      ORDER BY e.n
      RETURNING id
    )
    SELECT pg_notify(:channel, max(id)::text), array_agg(id ORDER BY id) FROM ins
    """
)
_encode = msgspec.json.Encoder().encode


async def append_many(session: AsyncSession, events: Iterable[NewEvent]) -> list[int]:
    """Write events in order in one statement; PostgreSQL delivers the NOTIFY only on commit.
    While the session defers events, they are only collected (and no ids are returned)."""
    deferred = session.info.get(_DEFERRED)
    if deferred is not None:
        deferred.extend(events)
        return []
    batch = list(events)
    if not batch:
        return []
    row = (
        await session.execute(
            _INSERT_SQL,
            {"rows": _encode(batch).decode(), "channel": NOTIFY_CHANNEL},
        )
    ).one()
    return list(row[1])
