"""Node queries and admin actions (drain, undrain, clear caches, delete), each with its event."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.events.kinds import EventKind
from unidesk.core.events.writer import NewEvent, append
from unidesk.core.nodes import schemas
from unidesk.core.nodes.models import NodeRow
from unidesk.core.tasks.models import ATTEMPT_ACTIVE_STATES, AttemptRow, TaskRow
from unidesk.errors import BadRequest, Conflict, NotFound

__all__ = ["NodeService", "node_event"]


MAX_SAMPLE_POINTS = 5000
_SAMPLES_SQL = text("""
SELECT date_bin(make_interval(secs => :step), ts, TIMESTAMPTZ '2000-01-01') AS bucket,
       avg(cpu_percent) AS cpu, avg(memory_used_mb)::int AS mem, max(memory_total_mb) AS total,
       (array_agg(gpus ORDER BY ts DESC))[1] AS gpus
FROM node_samples WHERE node_id = :node AND ts >= :since
GROUP BY bucket ORDER BY bucket
""")


_NODES = select(*cast(Table, NodeRow.__table__).c).order_by(NodeRow.name)
"""Every node as plain rows (no ORM identity map, no attribute instrumentation)."""
_ACTIVE = (
    select(
        AttemptRow.node_id,
        AttemptRow.task_id,
        AttemptRow.attempt_no,
        AttemptRow.state,
        AttemptRow.gpu_indices,
        TaskRow.cpus,
        TaskRow.memory_mb,
    )
    .join(TaskRow, TaskRow.id == AttemptRow.task_id)
    .where(AttemptRow.state.in_(ATTEMPT_ACTIVE_STATES))
)


def node_event(node_id: uuid.UUID, kind: EventKind, actor: str, **payload: object) -> NewEvent:
    return NewEvent(
        kind=kind, subject_type="node", subject_id=str(node_id), actor=actor, payload=payload
    )


class NodeService:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def _active(self, node_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
        """Each node's active attempts, as rows of the seven columns ``_out`` reads (no ORM
        objects: a task row carries its JSONB spec)."""
        rows = (await self.s.execute(_ACTIVE.where(AttemptRow.node_id.in_(node_ids)))).all()
        out: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for r in rows:
            out[r.node_id].append(r)  # never None: the query filters on node_id
        return out

    def _out(self, n: Any, active: list[Any]) -> schemas.Node:
        """``n``: a node row (ORM object or Core row); ``active``: its ``_active`` rows."""
        used_gpus = sum(len(a.gpu_indices) for a in active)
        return schemas.Node(
            id=n.id,
            name=n.name,
            state=n.state,
            draining=n.draining,
            unhealthy_reason=n.unhealthy_reason,
            hostname=n.hostname,
            os=n.os,
            agent_version=n.agent_version,
            cpus=n.cpus,
            memory_mb=n.memory_mb,
            gpus=list(n.gpus),
            host_mounts=dict(n.host_mounts or {}),
            labels=dict(n.labels),
            runtimes=list(n.runtimes),
            last_heartbeat_at=n.last_heartbeat_at,
            connected_at=n.connected_at,
            created_at=n.created_at,
            usage=dict(n.last_usage),
            running_attempts=[
                schemas.RunningAttempt(task_id=a.task_id, attempt_no=a.attempt_no, state=a.state)
                for a in active
            ],
            free=schemas.NodeFree(
                cpus=round(n.cpus - sum(a.cpus for a in active), 3),
                memory_mb=n.memory_mb - sum(a.memory_mb for a in active),
                gpus=len(n.gpus) - used_gpus,
            ),
        )

    async def list(self) -> list[schemas.Node]:
        nodes = (await self.s.execute(_NODES)).all()
        active = await self._active([n.id for n in nodes])
        return [self._out(n, active.get(n.id, [])) for n in nodes]

    async def _row(self, node_id: uuid.UUID) -> NodeRow:
        row = await self.s.get(NodeRow, node_id)
        if row is None:
            raise NotFound(f"node {node_id} not found", node_id=str(node_id))
        return row

    async def get(self, node_id: uuid.UUID) -> schemas.Node:
        row = await self._row(node_id)
        return self._out(row, (await self._active([row.id])).get(row.id, []))

    async def set_draining(self, node_id: uuid.UUID, draining: bool, *, actor: str) -> schemas.Node:
        row = await self._row(node_id)
        if row.draining != draining:
            await self.s.execute(
                update(NodeRow).where(NodeRow.id == node_id).values(draining=draining)
            )
            await append(
                self.s,
                node_event(node_id, "node.draining" if draining else "node.undrained", actor),
            )
            await self.s.commit()
            self.s.expire_all()
        return await self.get(node_id)

    async def clear_caches(self, node_id: uuid.UUID, *, actor: str) -> str:
        """Record an admin's request to empty an online node's caches; the instance holding
        its connection sends ``ClearCaches``. Returns the request id."""
        row = await self._row(node_id)
        if row.state != "online":
            raise Conflict(
                f"node is {row.state}; its caches can be cleared only while it is connected",
                node_id=str(node_id),
            )
        request_id = uuid.uuid4().hex
        await append(
            self.s,
            node_event(node_id, "node.caches_clear_requested", actor, request_id=request_id),
        )
        await self.s.commit()
        return request_id

    async def delete(self, node_id: uuid.UUID, *, actor: str) -> None:
        row = await self._row(node_id)
        if row.state == "online":
            raise Conflict(
                "node is online; drain it and stop its agent first", node_id=str(node_id)
            )
        if (await self._active([row.id])).get(row.id):
            raise Conflict("node still holds active attempts", node_id=str(node_id))
        await append(self.s, node_event(node_id, "node.deleted", actor, name=row.name))
        await self.s.execute(delete(NodeRow).where(NodeRow.id == node_id))
        await self.s.commit()

    async def samples(
        self, node_id: uuid.UUID, *, since: datetime | None, step_s: int
    ) -> schemas.SamplePage:
        """Utilisation since ``since`` (default 24 h ago), averaged per ``step_s`` buckets."""
        await self._row(node_id)
        now = datetime.now(UTC)
        since = since or now - timedelta(hours=24)
        if since.tzinfo is None:
            raise BadRequest("since: give a time zone (e.g. 2026-01-01T00:00:00Z)")
        if (now - since) / timedelta(seconds=step_s) > MAX_SAMPLE_POINTS:
            raise BadRequest("too many points: raise step_s or move since closer")
        params = {"step": step_s, "node": node_id, "since": since}
        rows = (await self.s.execute(_SAMPLES_SQL, params)).all()
        return schemas.SamplePage(
            node_id=node_id,
            step_s=step_s,
            items=[
                schemas.Sample(
                    ts=r.bucket,
                    cpu_percent=round(float(r.cpu), 2),
                    memory_used_mb=r.mem,
                    memory_total_mb=r.total,
                    gpus=list(r.gpus or []),
                )
                for r in rows
            ],
        )
