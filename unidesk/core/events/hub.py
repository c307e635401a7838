"""Live fan-out of committed events: LISTEN once per process, read by id, deliver in order.

The events table is the only source: NOTIFY only says "there is something after id N".
A pump reads committed events in id order; an id that is missing (a transaction still in
flight, or rolled back) holds delivery back until it appears or ``GAP_TIMEOUT_S`` passes,
so subscribers never see events out of order or miss one that commits late. The events read
past such a gap are kept, not read again, and the pump waits for the gap's NOTIFY (sent when
its transaction commits) or half a second, instead of re-reading while it is in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import structlog
from sqlalchemy import BigInteger, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk.backoff import backoff_delay
from unidesk.core.background import cancel_and_wait
from unidesk.core.db.reads import Reads
from unidesk.core.events.models import Event
from unidesk.core.events.schemas import EventOut
from unidesk.core.events.writer import NOTIFY_CHANNEL

__all__ = ["KEEPALIVE", "EventHub", "Keepalive", "Listener", "read_events", "to_out"]

log = structlog.get_logger("unidesk.events")

GAP_TIMEOUT_S = 2.0
SUBSCRIBER_BUFFER = 10_000
STOP_TIMEOUT_S = 5.0
Listener = Callable[[list[EventOut]], Awaitable[None]]


class Keepalive:
    """A sign of life on a quiet subscription: the process and its event loop still answer."""


KEEPALIVE = Keepalive()


_COLUMNS = (
    Event.id,
    Event.ts,
    Event.kind,
    Event.subject_type,
    Event.subject_id,
    Event.actor,
    Event.payload,
)
_AFTER = (
    select(*_COLUMNS)
    .where(Event.id > bindparam("after"))
    .where(Event.id != func.all(bindparam("have", type_=ARRAY(BigInteger))))
    .order_by(Event.id)
    .limit(bindparam("limit"))
)
"""The pump's read: events after its cursor that it does not hold already (plain rows)."""


def to_out(row: Any) -> EventOut:
    """An event row (ORM object or plain row) as the API shows it."""
    return EventOut(
        id=row.id,
        ts=row.ts,
        kind=row.kind,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        actor=row.actor,
        payload=row.payload,
    )


async def read_events(
    session: AsyncSession, after: int, limit: int, *, until: int | None = None
) -> list[EventOut]:
    stmt = select(Event).where(Event.id > after).order_by(Event.id).limit(limit)
    if until is not None:
        stmt = stmt.where(Event.id <= until)
    return [to_out(r) for r in (await session.scalars(stmt)).all()]


class EventHub:
    """One per server process: LISTENs on the bus and fans events out to subscribers."""

    def __init__(
        self,
        dsn: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        on_notify: Callable[[], None] = lambda: None,
        keepalive_s: float = 2.0,
        reads: Reads | None = None,
    ) -> None:
        """``on_notify`` runs on every NOTIFY heard (and on each (re)connect), before the
        events are read: the read cache's sign that someone committed. Every ``keepalive_s``
        one task gives each idle ``subscribe(keepalive=True)`` a ``KEEPALIVE``. ``reads``:
        the autocommit read pool, for the pump's reads (one round trip each: no BEGIN and
        ROLLBACK around a single SELECT)."""
        self._dsn = dsn
        self._sessions = sessionmaker
        self._reads = reads
        self._on_notify = on_notify
        self._listeners: list[tuple[str, Listener]] = []
        self._queues: set[asyncio.Queue[EventOut | Keepalive | None]] = set()
        self._pinged: set[asyncio.Queue[EventOut | Keepalive | None]] = set()
        self.keepalive_s = keepalive_s
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.cursor = 0
        self.error: str | None = "not started"
        self.closing = False
        """Set by ``close_subscribers`` (server shutdown): no stream starts or goes on."""

    @property
    def healthy(self) -> bool:
        return self.error is None

    def add_listener(self, name: str, listener: Listener) -> None:
        """Call ``listener`` with every batch of committed events, in order. Failures are logged."""
        self._listeners.append((name, listener))

    async def start(self) -> None:
        async with self._sessions() as s:
            self.cursor = (await s.scalar(select(func.coalesce(func.max(Event.id), 0)))) or 0
        self._tasks = [
            asyncio.create_task(self._listen(), name="events-listen"),
            asyncio.create_task(self._pump(), name="events-pump"),
            asyncio.create_task(self._keepalive(), name="events-keepalive"),
        ]

    async def stop(self) -> None:
        # Bounded: a LISTEN connection stuck in the driver must not hang server shutdown.
        pending = await cancel_and_wait(self._tasks, timeout_s=STOP_TIMEOUT_S)
        if pending:
            log.warning(
                "event hub tasks did not stop in time", tasks=[t.get_name() for t in pending]
            )
        for q in list(self._queues):
            q.put_nowait(None)

    def close_subscribers(self) -> None:
        """Server shutdown: end every subscription now and refuse new ones."""
        self.closing = True
        for q in list(self._queues):
            q.put_nowait(None)

    async def _listen(self) -> None:
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.error = None
                    failures = 0
                    self._on_notify()
                    self._wake.set()
                    async for _ in conn.notifies():
                        self._on_notify()
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the bus is down: say so on /health, retry
                self.error = f"event stream listener down: {type(exc).__name__}"
                log.warning("event listener lost", error=str(exc))
                await asyncio.sleep(backoff_delay(failures, base_s=0.5, cap_s=10.0))
                failures += 1

    async def _pump(self) -> None:
        gap_since: float | None = None
        ahead: list[EventOut] = []
        """Events read past a gap (an id still in flight): kept, not read again."""
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands as
            # the event fires, and stop() would then wait for this loop forever.
            try:
                async with asyncio.timeout(0.5 if gap_since else 5.0):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                params = {"after": self.cursor, "have": [e.id for e in ahead], "limit": 1000}
                if self._reads is not None:
                    rows = await self._reads.all(_AFTER, params)
                else:
                    async with self._sessions() as s:
                        rows = (await s.execute(_AFTER, params)).all()
                read = [to_out(r) for r in rows]
            except Exception as exc:
                log.warning("event pump read failed", error=str(exc))
                await asyncio.sleep(0.5)
                continue
            batch = sorted(ahead + read, key=lambda e: e.id) if ahead else read
            ready: list[EventOut] = []
            for ev in batch:
                expected = (ready[-1].id if ready else self.cursor) + 1
                if ev.id != expected:
                    gap_since = gap_since or time.monotonic()
                    if time.monotonic() - gap_since < GAP_TIMEOUT_S:
                        break
                ready.append(ev)
                gap_since = None
            ahead = batch[len(ready) :]
            if ready:
                self.cursor = ready[-1].id
                await self._deliver(ready)
            if len(read) == 1000:
                self._wake.set()  # more to read now
            # A gap waits for its transaction's NOTIFY (sent at commit) or, if it rolled
            # back, for the 0.5 s timeout above: no re-reading while it is in flight.

    async def _keepalive(self) -> None:
        # One timer for every subscriber of the process; a queue that already holds something
        # is about to write anyway.
        while True:
            await asyncio.sleep(self.keepalive_s)
            for q in list(self._pinged):
                if q.empty():
                    q.put_nowait(KEEPALIVE)

    async def _deliver(self, events: list[EventOut]) -> None:
        for q in list(self._queues):
            if q.qsize() + len(events) > SUBSCRIBER_BUFFER:
                # A subscriber this far behind is cut off; it resumes from its last id by
                # re-reading.
                self._queues.discard(q)
                self._pinged.discard(q)
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(None)
                continue
            for ev in events:
                q.put_nowait(ev)
        for name, listener in self._listeners:
            try:
                await listener(events)
            except Exception:
                log.exception("event listener failed", listener=name)

    async def subscribe(self, after: int) -> AsyncIterator[EventOut]:
        """Every committed event with id > ``after``, in order, then live ones as they commit."""
        async for item in self._subscribe(after, keepalive=False):
            if isinstance(item, EventOut):
                yield item

    def subscribe_with_keepalive(self, after: int) -> AsyncIterator[EventOut | Keepalive]:
        """``subscribe``, with a ``KEEPALIVE`` every ``keepalive_s`` while no event comes."""
        return self._subscribe(after, keepalive=True)

    async def _subscribe(
        self, after: int, *, keepalive: bool
    ) -> AsyncIterator[EventOut | Keepalive]:
        q: asyncio.Queue[EventOut | Keepalive | None] = asyncio.Queue()
        if self.closing:
            return
        self._queues.add(q)
        if keepalive:
            self._pinged.add(q)
        try:
            last = after
            live_from = self.cursor
            while last < live_from:
                async with self._sessions() as s:
                    page = await read_events(s, last, 500, until=live_from)
                if not page:
                    break
                for ev in page:
                    yield ev
                    last = ev.id
            while not self.closing:
                live = await q.get()
                if live is None:
                    # hub stopped or this subscriber fell too far behind: the client resumes by id
                    return
                if isinstance(live, Keepalive):
                    if q.empty():  # an event queued behind it says as much
                        yield live
                    continue
                if live.id > last:
                    last = live.id
                    yield live
        finally:
            self._queues.discard(q)
            self._pinged.discard(q)
