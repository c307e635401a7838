"""Hellos that arrive together are registered together: one transaction, one event INSERT and one
NOTIFY for a batch of nodes, and one delivery read for the batch's first dispatches.

After a server restart every node redials within seconds (a reconnect storm); registering each
in its own transaction (plus a delivery read and a cancel read per socket) made that cost a
dozen round trips per node. A single writer drains the queue: the batch's nodes are
registered in token order in one transaction (``register_node`` for each, events deferred); if
the batch fails, each hello is tried alone so one bad registration cannot refuse the others.
The welcomed connections are then handed their unacknowledged dispatches and unanswered
cancels in one read per batch.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk import protocol
from unidesk.core.auth.models import NodeToken
from unidesk.core.background import cancel_and_wait
from unidesk.core.db.tx import in_transaction
from unidesk.core.events.writer import defer_events, flush_deferred
from unidesk.core.ingress.connections import NodeConnection
from unidesk.core.ingress.delivery import Delivery
from unidesk.core.ingress.registration import Registration, register_node

__all__ = ["Registrar"]

log = structlog.get_logger("unidesk.ingress")


@dataclass
class _Hello:
    token: NodeToken
    hello: protocol.Hello
    connection_id: str
    done: asyncio.Future[Registration] = field(
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
    ) -> None:
        self._sessions = sessions
        self._delivery = delivery
        self.instance_id = instance_id
        self.max_batch = max_batch
        self._hellos: asyncio.Queue[_Hello] = asyncio.Queue()
        self._welcomed: dict[str, NodeConnection] = {}
        self._welcome_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.batches = 0

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._register_loop(), name="registrar"),
            asyncio.create_task(self._deliver_loop(), name="registrar-deliver"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        while not self._hellos.empty():  # nobody will register these: their sockets close
            item = self._hellos.get_nowait()
            if not item.done.done():
                item.done.set_exception(RuntimeError("server stopping"))

    async def register(
        self, token: NodeToken, hello: protocol.Hello, *, connection_id: str
    ) -> Registration:
        """Queue this hello and wait for its batch to commit; raises what its registration
        raised (the database is down: the socket answers 1013 and the agent retries)."""
        item = _Hello(token, hello, connection_id)
        self._hellos.put_nowait(item)
        return await item.done

    def welcomed(self, conn: NodeConnection) -> None:
        """``conn`` has its Welcome and Reconcile: send its pending dispatches and cancels with
        the batch's others."""
        self._welcomed[conn.connection_id] = conn
        self._welcome_wake.set()

    async def _register_loop(self) -> None:
        while True:
            batch = [await self._hellos.get()]
            while len(batch) < self.max_batch and not self._hellos.empty():
                batch.append(self._hellos.get_nowait())
            await self._apply(batch)

    async def _apply(self, batch: list[_Hello]) -> None:
        # Token order (stable: two hellos of one token keep their order) locks node rows in one
        # order on every instance.
        ordered = sorted(batch, key=lambda h: str(h.token.id))

        async def work(session: AsyncSession) -> list[Registration]:
            defer_events(session)
            regs = [
                await register_node(
                    session,
                    h.token,
                    h.hello,
                    instance_id=self.instance_id,
                    connection_id=h.connection_id,
                )
                for h in ordered
            ]
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
        for h, reg in zip(ordered, regs, strict=True):
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
