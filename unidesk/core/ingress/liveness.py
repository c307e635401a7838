"""Heartbeats in, offline nodes out.

Heartbeats are kept in memory and written in one statement per flush, so thousands of nodes
cost a few transactions a second. Liveness is judged by the server: ``last_heartbeat_at``
is stamped with the database server's clock when a flush writes it; the node's own
timestamps are recorded, never trusted. The sweeper marks nodes offline whose last
heartbeat is older than the offline timeout; it waits one full timeout after this process
starts, and again after the database was unreachable (no heartbeat could be recorded
meanwhile), so a server restart or a database outage gives every node time to be heard
before any is requeued.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

import msgspec
import structlog
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk import protocol
from unidesk.core.background import cancel_and_wait
from unidesk.core.db.base import table_of
from unidesk.core.db.tx import in_transaction
from unidesk.core.events.writer import append_many
from unidesk.core.ingress.connections import ConnectionTable
from unidesk.core.ingress.registration import lose_attempt
from unidesk.core.nodes.models import NodeRow
from unidesk.core.nodes.samples import SAMPLE_EVERY_S, SAMPLE_RETENTION_H, NodeSampleRow
from unidesk.core.nodes.services import node_event
from unidesk.core.tasks.models import ATTEMPT_ACTIVE_STATES, AttemptRow

__all__ = ["Liveness"]

log = structlog.get_logger("unidesk.liveness")

_FLUSH_SQL = text("""
UPDATE nodes SET last_heartbeat_at = now(), last_usage = v.usage
FROM (SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(id uuid, usage jsonb)) AS v
WHERE nodes.id = v.id AND nodes.connection_id IS NOT NULL
""")


_REVOKED_SQL = text(
    "SELECT id FROM node_tokens WHERE revoked_at IS NOT NULL AND id = ANY(CAST(:ids AS uuid[]))"
)


class Liveness:
    """Flushes heartbeats, closes revoked tokens' sockets, and sweeps silent nodes offline."""

    name = "liveness"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        connections: ConnectionTable,
        *,
        heartbeat_interval_s: float,
        offline_timeout_s: float,
    ) -> None:
        self._sessions = sessions
        self._connections = connections
        self.flush_every = min(1.0, heartbeat_interval_s)
        self.offline_timeout_s = offline_timeout_s
        self._pending: dict[uuid.UUID, protocol.Usage] = {}
        self._last_sample: dict[uuid.UUID, float] = {}
        self._started = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []
        self.heartbeats_received = 0
        self.flushes = 0
        self._flush_failed = False

    def heartbeat(self, node_id: uuid.UUID, hb: protocol.Heartbeat) -> None:
        self._pending[node_id] = hb.usage
        self.heartbeats_received += 1

    async def start(self) -> None:
        self._started = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name="heartbeat-flush"),
            asyncio.create_task(self._sweep_loop(), name="offline-sweeper"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        with contextlib.suppress(Exception):
            await self.flush()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_every)
            try:
                await self.flush()
                await self._close_revoked()
            except Exception:
                log.exception("heartbeat flush failed")

    async def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        rows = [{"id": str(k), "usage": msgspec.to_builtins(u)} for k, u in pending.items()]
        now = time.monotonic()
        samples: list[dict[str, Any]] = [
            {
                "node_id": k,
                "cpu_percent": u.cpu_percent,
                "memory_used_mb": u.memory_used_mb,
                "memory_total_mb": u.memory_total_mb,
                "gpus": [msgspec.to_builtins(g) for g in u.gpus],
            }
            for k, u in pending.items()
            if now - self._last_sample.get(k, 0) >= SAMPLE_EVERY_S
        ]

        async def work(session: AsyncSession) -> None:
            await session.execute(_FLUSH_SQL, {"rows": json.dumps(rows)})
            if samples:
                await session.execute(
                    table_of(NodeSampleRow).insert().values(ts=func.now()), samples
                )

        try:
            await in_transaction(self._sessions, work, name="heartbeat-flush")
        except Exception:
            for k, u in pending.items():  # kept for the next flush (newer heartbeats win)
                self._pending.setdefault(k, u)
            self._flush_failed = True
            raise
        if self._flush_failed:
            # The database was unreachable: no heartbeat was recorded meanwhile, so every node
            # gets one full timeout from now to be heard again (as after a server restart).
            self._flush_failed = False
            self._started = time.monotonic()
            log.info("heartbeats recorded again; offline sweep waits one timeout")
        for s in samples:
            self._last_sample[s["node_id"]] = now
        self.flushes += 1

    async def _close_revoked(self) -> None:
        held = {c.token_id: c for c in self._connections}
        if not held:
            return
        async with self._sessions() as s:  # one array parameter, not one per held socket
            revoked = (await s.scalars(_REVOKED_SQL, {"ids": [str(t) for t in held]})).all()
        for token_id in revoked:
            conn = held[token_id]
            log.info("closing socket of revoked token", node=conn.node_name)
            await conn.close(protocol.CLOSE_REVOKED, "node token revoked")

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.offline_timeout_s / 4))
            if self._flush_failed or time.monotonic() - self._started < self.offline_timeout_s:
                continue  # restart grace: every node gets one full timeout to come back
            try:
                await self.sweep()
                await self._prune_samples()
            except Exception:
                log.exception("offline sweep failed")

    async def sweep(self) -> list[str]:
        """Mark silent nodes offline and their in-flight attempts lost; returns their names."""

        async def work(session: AsyncSession) -> list[str]:
            stale = (
                await session.execute(
                    select(NodeRow.id, NodeRow.name)
                    .where(
                        NodeRow.state == "online",
                        NodeRow.last_heartbeat_at
                        < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, self.offline_timeout_s),
                    )
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not stale:
                return []
            ids = [r.id for r in stale]
            await session.execute(
                update(NodeRow)
                .where(NodeRow.id.in_(ids))
                .values(state="offline", instance_id=None, connection_id=None)
            )
            await append_many(
                session,
                [
                    node_event(
                        r.id,
                        "node.offline",
                        "system:liveness",
                        reason="no heartbeat",
                        timeout_s=self.offline_timeout_s,
                    )
                    for r in stale
                ],
            )
            attempts = (
                await session.scalars(
                    select(AttemptRow).where(
                        AttemptRow.node_id.in_(ids), AttemptRow.state.in_(ATTEMPT_ACTIVE_STATES)
                    )
                )
            ).all()
            for a in attempts:
                await lose_attempt(
                    session, a, why="node went offline (no heartbeat)", actor="system:liveness"
                )
            return [r.name for r in stale]

        names = await in_transaction(self._sessions, work, name="offline-sweep")
        if names:
            log.info("nodes offline", nodes=names)
        return names

    _last_prune = 0.0

    async def _prune_samples(self) -> None:
        if time.monotonic() - self._last_prune < 3600:
            return
        self._last_prune = time.monotonic()
        async with self._sessions() as s:
            await s.execute(
                delete(NodeSampleRow).where(
                    NodeSampleRow.ts
                    < func.now() - func.make_interval(0, 0, 0, 0, SAMPLE_RETENTION_H)
                )
            )
            await s.commit()
