"""Recording that nodes' sockets ended: the node stays online until the offline timeout, but
this instance no longer holds its connection (``node.disconnected``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.types import String

from unidesk.core.db.tx import in_transaction
from unidesk.core.events.writer import append_many
from unidesk.core.ingress.connections import NodeConnection
from unidesk.core.nodes.services import node_event

__all__ = ["record_disconnects"]

_CLEAR = text(
    "UPDATE nodes SET instance_id = NULL, connection_id = NULL "
    "WHERE connection_id = ANY(:ids) RETURNING id"
).bindparams(bindparam("ids", type_=ARRAY(String())))


async def record_disconnects(
    sessions: async_sessionmaker[AsyncSession], conns: Sequence[NodeConnection]
) -> int:
    """One transaction for many ended sockets: each node still holding that connection is
    cleared and gets its ``node.disconnected`` event (one UPDATE, one event INSERT); a node
    that a newer connection already took over is left alone. Returns how many were recorded."""
    by_connection = {c.connection_id: c for c in conns}
    if not by_connection:
        return 0

    async def work(session: AsyncSession) -> int:
        cleared = {
            row[0] for row in (await session.execute(_CLEAR, {"ids": list(by_connection)})).all()
        }
        await append_many(
            session,
            [
                node_event(
                    c.node_id,
                    "node.disconnected",
                    f"node:{c.node_name}",
                    connection_id=c.connection_id,
                )
                for c in conns
                if c.node_id in cleared
            ],
        )
        return len(cleared)

    return await in_transaction(sessions, work, name="disconnects")
