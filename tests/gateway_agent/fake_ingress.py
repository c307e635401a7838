"""A small protocol-speaking WebSocket server on loopback, standing in for the server's ingress.

For unit tests of the agent's connection layer only: it speaks ``unidesk.protocol`` over a real
socket but has no database or scheduler. The real ingress is exercised by tests/integration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from unidesk.protocol import (
    PROTOCOL_VERSION,
    Ack,
    AttemptState,
    Hello,
    LogAck,
    LogChunk,
    Message,
    Reconcile,
    Welcome,
    decode,
    encode,
)

__all__ = ["FakeIngress", "Session"]


class Session:
    """One agent connection as the fake saw it."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.authorization = ws.request.headers.get("Authorization") if ws.request else None
        self.path = ws.request.path if ws.request else ""
        self.hello: Hello | None = None
        self.received: list[Message] = []
        self.close_code: int | None = None

    def of(self, kind: type) -> list:
        return [m for m in self.received if isinstance(m, kind)]


class FakeIngress:
    def __init__(
        self,
        *,
        heartbeat_interval_s: float = 0.2,
        refuse_with: int | None = None,
        ack_logs: bool = True,
        ack_finals: bool = True,
    ) -> None:
        self.heartbeat_interval_s = heartbeat_interval_s
        self.refuse_with = refuse_with
        self.ack_logs = ack_logs
        self.ack_finals = ack_finals
        self.reconcile: Callable[[Hello], Reconcile] = lambda hello: Reconcile(keep=hello.running)
        self.sessions: list[Session] = []
        self._server: Server | None = None
        self.url = ""

    async def __aenter__(self) -> FakeIngress:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        session = Session(ws)
        self.sessions.append(session)
        try:
            hello = decode(await ws.recv())
            assert isinstance(hello, Hello)
            session.hello = hello
            if self.refuse_with is not None:
                await ws.close(self.refuse_with, "refused by the test")
                return
            await ws.send(
                encode(
                    Welcome(
                        protocol_version=PROTOCOL_VERSION,
                        node_id="node-1",
                        heartbeat_interval_s=self.heartbeat_interval_s,
                    )
                )
            )
            await ws.send(encode(self.reconcile(hello)))
            async for frame in ws:
                msg = decode(frame)  # type: ignore[arg-type]
                session.received.append(msg)
                if isinstance(msg, LogChunk) and self.ack_logs:
                    await ws.send(
                        encode(LogAck(task_id=msg.task_id, attempt_no=msg.attempt_no, seq=msg.seq))
                    )
                if (
                    isinstance(msg, AttemptState)
                    and msg.phase in ("exited", "failed")
                    and self.ack_finals
                ):
                    await ws.send(encode(Ack(task_id=msg.task_id, attempt_no=msg.attempt_no)))
        except ConnectionClosed:
            pass
        finally:
            session.close_code = ws.close_code

    @property
    def current(self) -> Session:
        return self.sessions[-1]

    async def send(self, msg: Message) -> None:
        await self.current.ws.send(encode(msg))

    def all_received(self) -> list[Message]:
        return [m for s in self.sessions for m in s.received]

    def finals(self) -> list[AttemptState]:
        return [
            m
            for m in self.all_received()
            if isinstance(m, AttemptState) and m.phase in ("exited", "failed")
        ]

    async def wait_for(self, predicate: Callable[[], object], timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout_s} s")
            await asyncio.sleep(0.02)
