"""Heartbeat reconciliation: what a connected node says it has, compared with the database.

Each heartbeat lists the attempts the agent runs and those it ended whose final report is
not acknowledged yet. A pass (every heartbeat interval, one query for all nodes heard from)
compares them with the node's active attempts; a mismatch seen in two consecutive passes is
resolved by the rules of attempts and fencing (a single sighting may be a report in flight):

- the node runs an attempt the server no longer expects there (lost, final, cancelled while
  the node was away, or never its own): Reconcile(kill=…), and ``node.reconcile_kill``;
- the server expects an acknowledged attempt the node neither runs nor has a report for:
  the attempt is lost (``task.attempt_lost``) and the retry policy decides;
- the node holds a final report the database has not got: a Nack asks for it again;
- the node's socket is not the connection the database records (the node was marked offline
  or replaced meanwhile): the socket is closed, and the agent's reconnect reconciles in full.
"""

from __future__ import annotations

import asyncio
import uuid

import structlog
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk import protocol
from unidesk.core.background import cancel_and_wait
from unidesk.core.db.tx import in_transaction
from unidesk.core.events.writer import append
from unidesk.core.ingress.connections import NodeConnection
from unidesk.core.ingress.registration import lose_attempt
from unidesk.core.nodes.models import NodeRow
from unidesk.core.nodes.services import node_event
from unidesk.core.tasks.models import ATTEMPT_ACTIVE_STATES, AttemptRow, TaskRow

__all__ = ["HeartbeatReconciler"]

log = structlog.get_logger("unidesk.reconcile")

Key = tuple[str, int]
Finding = tuple[str, Key]  # ("kill" | "lose" | "resend", (task_id, attempt_no))


class HeartbeatReconciler:
    """Collects the latest heartbeat per connection and reconciles them in periodic passes."""

    name = "heartbeat-reconcile"

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, interval_s: float) -> None:
        self._sessions = sessions
        self.interval_s = max(0.2, interval_s)
        self._seen: dict[uuid.UUID, tuple[NodeConnection, protocol.Heartbeat]] = {}
        self._suspects: dict[str, set[Finding]] = {}
        """connection id → mismatches seen in the previous pass."""
        self._task: asyncio.Task[None] | None = None
        self.resolved = 0

    def observe(self, conn: NodeConnection, hb: protocol.Heartbeat) -> None:
        self._seen[conn.node_id] = (conn, hb)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="heartbeat-reconcile")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.run_once()
            except Exception as exc:  # the database is away: the next pass tries again
                log.warning(
                    "heartbeat reconciliation failed; next pass retries",
                    error=f"{type(exc).__name__}: {str(exc)[:200]}",
                )

    async def run_once(self) -> int:
        """One pass over the heartbeats received since the last; returns mismatches resolved."""
        seen = {n: v for n, v in self._seen.items() if not v[0].closed.is_set()}
        if not seen:
            return 0
        async with self._sessions() as s:
            nodes = dict(
                (
                    await s.execute(
                        select(NodeRow.id, NodeRow.connection_id).where(NodeRow.id.in_(list(seen)))
                    )
                ).all()
            )
            active = (
                await s.execute(
                    select(
                        AttemptRow.node_id,
                        AttemptRow.task_id,
                        AttemptRow.attempt_no,
                        AttemptRow.acked_at,
                    ).where(
                        AttemptRow.node_id.in_(list(seen)),
                        AttemptRow.state.in_(ATTEMPT_ACTIVE_STATES),
                    )
                )
            ).all()
        # Only what was read is consumed: heartbeats that came in during the read wait a pass.
        for node_id, (_conn, hb) in seen.items():
            if self._seen.get(node_id, (None, None))[1] is hb:
                del self._seen[node_id]
        expected: dict[uuid.UUID | None, dict[Key, bool]] = {}
        for holder, task_id, attempt_no, acked_at in active:
            expected.setdefault(holder, {})[(str(task_id), attempt_no)] = acked_at is not None
        live = {c.connection_id for c in (v[0] for v in seen.values())}
        self._suspects = {k: v for k, v in self._suspects.items() if k in live}
        resolved = 0
        for node_id, (conn, hb) in seen.items():
            if nodes.get(node_id) != conn.connection_id:
                log.info(
                    "node socket is not its connection of record; closing", node=conn.node_name
                )
                self._suspects.pop(conn.connection_id, None)
                await conn.close(
                    protocol.CLOSE_BUSY,  # not final: the agent dials again
                    "this connection is no longer the node's connection of record; reconnect",
                )
                continue
            findings = _compare(expected.get(node_id, {}), hb)
            confirmed = findings & self._suspects.get(conn.connection_id, set())
            self._suspects[conn.connection_id] = findings - confirmed
            if confirmed:
                resolved += await self._resolve(conn, sorted(confirmed))
        self.resolved += resolved
        return resolved

    async def _resolve(self, conn: NodeConnection, found: list[Finding]) -> int:
        kill = [k for what, k in found if what == "kill"]
        lose = [k for what, k in found if what == "lose"]
        resend = [k for what, k in found if what == "resend"]
        log.info(
            "heartbeat reconciliation",
            node=conn.node_name,
            kill=[list(k) for k in kill],
            lose=[list(k) for k in lose],
            resend=[list(k) for k in resend],
        )
        if kill or lose:
            await in_transaction(
                self._sessions, lambda s: _apply(s, conn, kill, lose), name="heartbeat-reconcile"
            )
        if kill:
            await conn.send(protocol.Reconcile(kill=[protocol.AttemptRef(t, n) for t, n in kill]))
        for task_id, attempt_no in resend:
            await conn.send(
                protocol.Nack(
                    task_id=task_id,
                    attempt_no=attempt_no,
                    of="attempt_state",
                    reason="the server has no final report of this attempt; send it again",
                )
            )
        return len(found)


def _compare(expected: dict[Key, bool], hb: protocol.Heartbeat) -> set[Finding]:
    running = {(r.task_id, r.attempt_no) for r in hb.running}
    finished = {(r.task_id, r.attempt_no) for r in hb.finished}
    found: set[Finding] = {("kill", k) for k in running - finished if k not in expected}
    for key, acked in expected.items():
        if key in finished:
            found.add(("resend", key))
        elif acked and key not in running:
            found.add(("lose", key))
    return found


async def _apply(s: AsyncSession, conn: NodeConnection, kill: list[Key], lose: list[Key]) -> None:
    actor = f"node:{conn.node_name}"
    if kill:
        await append(
            s,
            node_event(
                conn.node_id,
                "node.reconcile_kill",
                actor,
                attempts=[list(k) for k in kill],
                why="the node runs attempts the server no longer expects there",
            ),
        )
    keys = [(uuid.UUID(t), n) for t, n in lose]
    if not keys:
        return
    await s.execute(
        select(TaskRow.id)
        .where(TaskRow.id.in_(sorted({k[0] for k in keys})))
        .order_by(TaskRow.id)
        .with_for_update()
    )
    attempts = (
        await s.scalars(
            select(AttemptRow)
            .where(tuple_(AttemptRow.task_id, AttemptRow.attempt_no).in_(sorted(keys)))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).all()
    for a in attempts:
        if a.node_id == conn.node_id:
            await lose_attempt(
                s,
                a,
                why="the node no longer has this attempt (heartbeat reconciliation)",
                actor="system:reconcile",
            )
