"""The sockets this server instance holds, one per connected node."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator

import structlog
from litestar import WebSocket

from unidesk import protocol

__all__ = ["ConnectionTable", "NodeConnection"]

log = structlog.get_logger("unidesk.ingress")


class NodeConnection:
    """One agent's socket: serialised sends, when it last spoke, what was sent and not yet acked."""

    def __init__(
        self,
        socket: WebSocket,
        *,
        node_id: uuid.UUID,
        node_name: str,
        token_id: uuid.UUID,
        connection_id: str,
    ) -> None:
        self.socket = socket
        self.node_id = node_id
        self.node_name = node_name
        self.token_id = token_id
        self.connection_id = connection_id
        self.last_frame = time.monotonic()
        self.sent_dispatch: dict[tuple[str, int], float] = {}
        self.acked: dict[tuple[str, int], float] = {}
        """When this node last acked (or reported on) an attempt: its write may still be queued,
        so redelivery waits another ack timeout before sending that dispatch again."""
        self.sent_cancel: dict[tuple[str, int], float] = {}
        self.closed = asyncio.Event()
        self._send_lock = asyncio.Lock()

    async def send(self, msg: protocol.Message) -> bool:
        if self.closed.is_set():
            return False
        try:
            async with self._send_lock:
                await self.socket.send_data(protocol.encode(msg), mode="binary")
            return True
        except Exception as exc:  # the socket went away; the receive loop will notice too
            log.info("send failed", node=self.node_name, error=type(exc).__name__)
            return False

    async def close(self, code: int, reason: str) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        with contextlib.suppress(Exception):
            await self.socket.close(code=code, reason=reason[:120])


class ConnectionTable:
    """node id → the live connection this instance holds for it."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        self._by_node: dict[uuid.UUID, NodeConnection] = {}

    def attach(self, conn: NodeConnection) -> NodeConnection | None:
        """Hold ``conn``; returns the connection it replaces, if any."""
        old = self._by_node.get(conn.node_id)
        self._by_node[conn.node_id] = conn
        return old if old is not conn else None

    def detach(self, conn: NodeConnection) -> bool:
        """Forget ``conn`` if it is still the current one for its node."""
        if self._by_node.get(conn.node_id) is conn:
            del self._by_node[conn.node_id]
            return True
        return False

    def get(self, node_id: uuid.UUID) -> NodeConnection | None:
        return self._by_node.get(node_id)

    def __iter__(self) -> Iterator[NodeConnection]:
        return iter(list(self._by_node.values()))

    def __len__(self) -> int:
        return len(self._by_node)
