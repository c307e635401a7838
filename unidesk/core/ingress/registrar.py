"""Sockets that arrive together are handled together: their node tokens resolved in one read,
their hellos registered in one transaction (one event INSERT, one NOTIFY), their first
dispatches and cancels read once per batch, and the scheduler woken once per batch.

After a server restart every node redials within seconds (a reconnect storm); registering each
in its own transaction (plus a token read, a delivery read and a cancel read per socket) made
that cost a dozen round trips per node. One writer drains each queue. A registration batch
holds one hello per token (a second hello of a token waits for the next batch); if the batch
fails, each hello is tried alone, so one bad registration cannot refuse the others.

Admission: ``waiting`` counts the sockets between the handshake and the end of their
registration; past the ``ingress_max_waiting`` setting (or while the server drains for a stop)
the handler refuses a new socket before the upgrade with HTTP 503 and ``retry_after_s()``: each
refused agent gets its own slot after the backlog drains, one per 1/rate s at the measured
registration rate, so a fleet refused together comes back spread at the pace the server can
take instead of all at once again (or waiting in the queue past its timeouts).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk import protocol
from unidesk.core.auth.models import NodeToken
from unidesk.core.auth.services import NodeTokenService
from unidesk.core.background import cancel_and_wait
from unidesk.core.db.tx import in_transaction
from unidesk.core.events.writer import defer_events, flush_deferred
from unidesk.core.ingress.connections import NodeConnection
from unidesk.core.ingress.delivery import Delivery
from unidesk.core.ingress.registration import NodeHello, Registration, register_nodes

__all__ = ["MIN_RATE", "RATE_WINDOW_S", "RETRY_AFTER_MAX_S", "Registrar"]

log = structlog.get_logger("unidesk.ingress")

RATE_WINDOW_S = 5.0
MIN_RATE = 200.0
"""Registrations/s assumed before enough were measured (one process on a loaded 2-core
machine registered 340-510/s in a storm)."""
RETRY_AFTER_MAX_S = 60


@dataclass
class _Hello:
    item: NodeHello
    done: asyncio.Future[Registration] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass
class _Secret:
    secret: str
    done: asyncio.Future[NodeToken] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Registrar:
    """Registers nodes in batches and sends welcomed nodes their pending work in batches."""

    name = "registrar"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        delivery: Delivery,
        *,
        instance_id: str,
        max_batch: int = 200,
        on_registered: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._delivery = delivery
        self.instance_id = instance_id
        self.max_batch = max_batch
        self._on_registered = on_registered
        self._secrets: asyncio.Queue[_Secret] = asyncio.Queue()
        self._hellos: asyncio.Queue[_Hello] = asyncio.Queue()
        self._held: list[_Hello] = []
        """Hellos of a token already in the batch being built: they go in the next one."""
        self._welcomed: dict[str, NodeConnection] = {}
        self._welcome_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.batches = 0
        self.waiting = 0
        """Sockets past the handshake whose registration has not ended (the handler counts)."""
        self._registered: deque[tuple[float, int]] = deque()
        self._next_slot = 0.0
        """When the next refused agent is told to come back (``retry_after_s``)."""
        """(when, how many) of the registration batches of the last ``RATE_WINDOW_S``."""

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._resolve_loop(), name="registrar-tokens"),
            asyncio.create_task(self._register_loop(), name="registrar"),
            asyncio.create_task(self._deliver_loop(), name="registrar-deliver"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        waiting: list[_Hello | _Secret] = [*self._held]
        for q in (self._hellos, self._secrets):
            while not q.empty():
                waiting.append(q.get_nowait())
        for w in waiting:  # nobody will answer these: their sockets close
            if not w.done.done():
                w.done.set_exception(RuntimeError("server stopping"))

    def rate(self) -> float:
        """Registrations per second over the last ``RATE_WINDOW_S`` (at least ``MIN_RATE``)."""
        now = time.monotonic()
        while self._registered and self._registered[0][0] < now - RATE_WINDOW_S:
            self._registered.popleft()
        return max(MIN_RATE, sum(n for _, n in self._registered) / RATE_WINDOW_S)

    def retry_after_s(self, *, rand: Callable[[], float] = random.random) -> int:
        """Whole seconds a refused agent should wait: a slot of its own in the schedule of
        refused agents, one per 1/rate s after the waiting backlog drains (so a fleet refused
        together comes back at the rate the server registers, not together again), plus a
        jitter of up to 1 s. At most ``RETRY_AFTER_MAX_S``."""
        now = time.monotonic()
        rate = self.rate()
        slot = max(now + self.waiting / rate, self._next_slot)
        self._next_slot = min(slot, now + RETRY_AFTER_MAX_S) + 1.0 / rate
        return max(1, min(RETRY_AFTER_MAX_S, math.ceil(slot - now + rand())))

    async def resolve(self, secret: str) -> NodeToken:
        """The node token a handshake presents, read with the other handshakes waiting; raises
        Unauthenticated for an unknown or revoked one."""
        item = _Secret(secret)
        self._secrets.put_nowait(item)
        return await item.done

    async def register(
        self, token: NodeToken, hello: protocol.Hello, *, connection_id: str
    ) -> Registration:
        """Queue this hello and wait for its batch to commit; raises what its registration
        raised (the database is down: the socket answers 1013 and the agent retries)."""
        item = _Hello(NodeHello(token=token, hello=hello, connection_id=connection_id))
        self._hellos.put_nowait(item)
        return await item.done

    async def _resolve_loop(self) -> None:
        while True:
            batch = [await self._secrets.get()]
            while len(batch) < self.max_batch and not self._secrets.empty():
                batch.append(self._secrets.get_nowait())
            try:
                async with self._sessions() as s:
                    found = await NodeTokenService(s).resolve_many([b.secret for b in batch])
            except Exception as exc:  # the database is away: these handshakes fail
                for b in batch:
                    if not b.done.done():
                        b.done.set_exception(exc)
                continue
            for b in batch:
                if b.done.done():
                    continue
                result = found[b.secret]
                if isinstance(result, NodeToken):
                    b.done.set_result(result)
                else:
                    b.done.set_exception(result)

    def welcomed(self, conn: NodeConnection) -> None:
        """``conn`` has its Welcome and Reconcile: send its pending dispatches and cancels with
        the batch's others."""
        self._welcomed[conn.connection_id] = conn
        self._welcome_wake.set()

    async def _register_loop(self) -> None:
        while True:
            if not self._held:
                self._held.append(await self._hellos.get())
            waiting, self._held = self._held, []
            while len(waiting) < self.max_batch and not self._hellos.empty():
                waiting.append(self._hellos.get_nowait())
            batch: list[_Hello] = []
            tokens: set[object] = set()
            for h in waiting:  # one hello per token; a later one waits for the next batch
                if h.item.token.id in tokens:
                    self._held.append(h)
                else:
                    tokens.add(h.item.token.id)
                    batch.append(h)
            await self._apply(batch)
            self._on_registered()

    async def _apply(self, batch: list[_Hello]) -> None:
        async def work(session: AsyncSession) -> list[Registration]:
            defer_events(session)
            regs = await register_nodes(
                session, [h.item for h in batch], instance_id=self.instance_id
            )
            await flush_deferred(session)
            return regs

        try:
            regs = await in_transaction(self._sessions, work, name="register")
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0].done.done():
                    batch[0].done.set_exception(exc)
                return
            for h in batch:  # isolate the failing hello; the rest still register
                await self._apply([h])
            return
        self.batches += 1
        self._registered.append((time.monotonic(), len(batch)))
        for h, reg in zip(batch, regs, strict=True):
            if not h.done.done():
                h.done.set_result(reg)

    async def _deliver_loop(self) -> None:
        while True:
            await self._welcome_wake.wait()
            self._welcome_wake.clear()
            batch, self._welcomed = self._welcomed, {}
            conns = {c.node_id: c for c in batch.values() if not c.closed.is_set()}
            try:
                await self._delivery.deliver_many(conns)
                await self._delivery.resend_cancels_many(conns)
            except Exception:  # redelivery sends them after the ack timeout
                log.exception("delivery to reconnected nodes failed", nodes=len(conns))
