"""Deliver dispatches and cancels to the nodes this instance holds, at least once.

The database says what each node should be doing (attempts ``assigned`` and not yet acked;
tasks ``cancelling``). Events on the bus wake delivery; a periodic pass redelivers whatever
is still unacknowledged after ``dispatch_ack_timeout_s``. Whichever instance holds a node's
socket delivers to it; the others ignore the event.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk import protocol
from unidesk.core.background import cancel_and_wait
from unidesk.core.events.schemas import EventOut
from unidesk.core.ingress.connections import ConnectionTable, NodeConnection
from unidesk.core.tasks.models import AttemptRow, TaskRow

__all__ = ["Delivery", "DispatchExtender", "build_dispatch"]

log = structlog.get_logger("unidesk.delivery")

DispatchExtender = Callable[[AsyncSession, TaskRow, AttemptRow, protocol.Dispatch], Any]
"""Async hook that may return a changed Dispatch (e.g. adding presigned input URLs)."""


def build_dispatch(t: TaskRow, a: AttemptRow) -> protocol.Dispatch:
    return protocol.Dispatch(
        task_id=str(t.id),
        attempt_no=a.attempt_no,
        code_repo_url=t.code_repo_url,
        code_commit_id=t.code_commit_id,
        env_repo_url=t.env_repo_url,
        env_commit_id=t.env_commit_id,
        dockerfile_path=t.dockerfile_path,
        command=list(t.command),
        env=dict(t.env),
        cpus=t.cpus,
        memory_mb=t.memory_mb,
        gpu_indices=list(a.gpu_indices),
        timeout_s=t.timeout_s,
        pids_limit=int(t.extra.get("pids_limit") or 0),
        kind=str(t.extra.get("kind", "container")),
        params={k: str(v) for k, v in (t.extra.get("params") or {}).items()},
        mounts={str(k): str(v) for k, v in (t.extra.get("mounts") or {}).items()},
        workspace=str(t.extra.get("workspace") or ""),
    )


class Delivery:
    name = "delivery"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        connections: ConnectionTable,
        *,
        ack_timeout_s: float,
    ) -> None:
        self._sessions = sessions
        self._connections = connections
        self.ack_timeout_s = ack_timeout_s
        self.extenders: list[DispatchExtender] = []
        self._task: asyncio.Task[None] | None = None
        self.dispatched = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._redeliver_loop(), name="redeliver")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])

    async def on_events(self, events: list[EventOut]) -> None:
        """Event-bus listener: act on assignments, cancels, replaced sockets and revoked tokens."""
        wanted: dict[uuid.UUID, set[str]] = {}
        for ev in events:
            if ev.kind == "task.assigned":
                node_id = uuid.UUID(ev.payload["node_id"])
                conn = self._connections.get(node_id)
                # already sent by ``deliver_assigned`` (this instance's scheduler): not again
                if conn and (ev.subject_id, ev.payload.get("attempt_no")) not in conn.sent_dispatch:
                    wanted.setdefault(node_id, set()).add(ev.subject_id)
            elif ev.kind == "task.cancelling":
                node_id = uuid.UUID(ev.payload["node_id"])
                conn = self._connections.get(node_id)
                if conn:
                    await conn.send(
                        protocol.Cancel(task_id=ev.subject_id, attempt_no=ev.payload["attempt_no"])
                    )
                    conn.sent_cancel[(ev.subject_id, ev.payload["attempt_no"])] = time.monotonic()
            elif ev.kind == "node.caches_clear_requested":
                conn = self._connections.get(uuid.UUID(ev.subject_id))
                if conn:
                    await conn.send(
                        protocol.ClearCaches(request_id=str(ev.payload.get("request_id", "")))
                    )
            elif ev.kind == "node.connected":
                conn = self._connections.get(uuid.UUID(ev.subject_id))
                if conn and conn.connection_id != ev.payload.get("connection_id"):
                    await conn.close(
                        protocol.CLOSE_REPLACED,
                        "replaced by a newer connection with the same node token",
                    )
        if wanted:
            conns = {n: c for n in wanted if (c := self._connections.get(n)) is not None}
            await self.deliver_many(conns, only_tasks=set().union(*wanted.values()))

    async def deliver_assigned(self, assigned: list[tuple[uuid.UUID, int, uuid.UUID]]) -> int:
        """Send a committed pass's ``(task_id, attempt_no, node_id)`` assignments to the nodes
        this instance holds, now. Each is marked sent before the read, so the same assignment
        coming back as a ``task.assigned`` event is not sent twice; one whose send fails is
        sent again by the redelivery pass after the ack timeout."""
        conns: dict[uuid.UUID, NodeConnection] = {}
        tasks: set[str] = set()
        now = time.monotonic()
        for task_id, attempt_no, node_id in assigned:
            conn = self._connections.get(node_id)
            if conn is None:
                continue
            conns[node_id] = conn
            tasks.add(str(task_id))
            conn.sent_dispatch.setdefault((str(task_id), attempt_no), now)
        if not conns:
            return 0
        return await self.deliver_many(conns, only_tasks=tasks)

    async def deliver_many(
        self,
        conns: dict[uuid.UUID, NodeConnection],
        *,
        only_tasks: set[str] | None = None,
        resend_after: float | None = None,
    ) -> int:
        """Send the unacked dispatches of many held nodes, read in one query (per 1000 nodes).

        With ``resend_after`` (redelivery), a dispatch is sent again only when it went out that
        long ago and the node has not acked it (an ack whose write is still queued counts)."""
        if not conns:
            return 0
        base = (
            select(TaskRow, AttemptRow)
            .join(
                AttemptRow,
                (AttemptRow.task_id == TaskRow.id)
                & (AttemptRow.attempt_no == TaskRow.attempt_count),
            )
            .where(AttemptRow.state == "assigned", AttemptRow.acked_at.is_(None))
        )
        if (
            resend_after is not None
        ):  # fresh assignments are the event listener's to send, not redelivery's
            base = base.where(
                AttemptRow.assigned_at
                < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, resend_after)
            )
        if only_tasks:
            statements = [base.where(TaskRow.id.in_([uuid.UUID(t) for t in only_tasks]))]
        else:
            ids = list(conns)
            statements = [
                base.where(AttemptRow.node_id.in_(ids[i : i + 1000]))
                for i in range(0, len(ids), 1000)
            ]
        read_at = time.monotonic()
        # Read and build every message first; the pooled session is back before any send, so a
        # slow socket never holds a database connection.
        outgoing: list[tuple[NodeConnection, tuple[str, int], protocol.Dispatch]] = []
        found: list[tuple[uuid.UUID | None, tuple[str, int]]] = []
        async with self._sessions() as s:
            rows = [row for stmt in statements for row in (await s.execute(stmt)).all()]
            now = time.monotonic()
            for t, a in rows:
                key = (str(t.id), a.attempt_no)
                found.append((a.node_id, key))
                conn = conns.get(a.node_id) if a.node_id is not None else None
                if conn is None:
                    continue
                if (
                    resend_after is not None
                    and now - max(conn.sent_dispatch.get(key, 0), conn.acked.get(key, 0))
                    < resend_after
                ):
                    continue
                msg = build_dispatch(t, a)
                for extend in self.extenders:
                    msg = (await extend(s, t, a, msg)) or msg
                outgoing.append((conn, key, msg))
        sent = 0
        for conn, key, msg in outgoing:
            if await conn.send(msg):
                conn.sent_dispatch[key] = now
                sent += 1
        if not only_tasks:
            # A full pass: forget what is no longer waiting for an ack (bounded memory). A
            # redelivery pass does not read assignments younger than ``resend_after``, so
            # marks of that age stay (twice it: the database's clock is not this one);
            # dropping them sent each fresh dispatch again when its event arrived.
            horizon = read_at - 2 * resend_after if resend_after is not None else read_at
            waiting: dict[uuid.UUID | None, set[tuple[str, int]]] = {}
            for node_id, key in found:
                waiting.setdefault(node_id, set()).add(key)
            for node_id, conn in conns.items():
                keep = waiting.get(node_id, set())
                conn.acked = {k: v for k, v in conn.acked.items() if k in keep or v >= horizon}
                conn.sent_dispatch = {
                    k: v for k, v in conn.sent_dispatch.items() if k in keep or v >= horizon
                }
        self.dispatched += sent
        return sent

    async def resend_cancels_many(self, conns: dict[uuid.UUID, NodeConnection]) -> None:
        """Cancels not yet answered go out again after the ack timeout (one query: cancelling
        tasks are few)."""
        if not conns:
            return
        async with self._sessions() as s:
            rows = (
                await s.execute(
                    select(TaskRow.id, AttemptRow.attempt_no, AttemptRow.node_id)
                    .join(
                        AttemptRow,
                        (AttemptRow.task_id == TaskRow.id)
                        & (AttemptRow.attempt_no == TaskRow.attempt_count),
                    )
                    .where(TaskRow.state == "cancelling")
                )
            ).all()
        now = time.monotonic()
        for task_id, attempt_no, node_id in rows:
            conn = conns.get(node_id) if node_id is not None else None
            if conn is None:
                continue
            key = (str(task_id), attempt_no)
            if now - conn.sent_cancel.get(key, 0) >= self.ack_timeout_s:
                conn.sent_cancel[key] = now
                await conn.send(protocol.Cancel(task_id=str(task_id), attempt_no=attempt_no))

    async def _redeliver_loop(self) -> None:
        while True:
            await asyncio.sleep(max(0.2, self.ack_timeout_s / 2))
            conns = {c.node_id: c for c in self._connections}
            try:
                await self.deliver_many(conns, resend_after=self.ack_timeout_s)
                await self.resend_cancels_many(conns)
            except Exception:
                log.exception("redelivery failed", nodes=len(conns))
