"""A hand-driven protocol client for ingress tests: the ``websockets`` client plus
``unidesk.protocol``, so a test can send exactly the frames it wants (good or bad)."""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from unidesk import protocol

__all__ = ["RawAgent", "closed_with", "hello"]


def hello(name: str, **overrides: Any) -> protocol.Hello:
    fields: dict[str, Any] = {
        "protocol_version": protocol.PROTOCOL_VERSION,
        "agent_version": "raw-test",
        "node_name": name,
        "hostname": name,
        "os": "Linux",
        "cpus": 2.0,
        "memory_mb": 2048,
    }
    fields.update(overrides)
    return protocol.Hello(**fields)


class RawAgent:
    """One raw socket to ``/api/agent/ws``; ``await RawAgent.join(url, token, name)`` says hello."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.welcome: protocol.Welcome | None = None
        self.reconcile: protocol.Reconcile | None = None
        self._beat: asyncio.Task[None] | None = None
        self.running: dict[tuple[str, int], None] = {}
        """What the heartbeats report as running: attempts this agent acked or reported on and
        has not reported final (a truthful agent, for the server's heartbeat reconciliation)."""
        self.finished: list[protocol.AttemptRef] = []
        """What the heartbeats report as ended with a final report not yet acknowledged."""

    @classmethod
    async def open(cls, server_url: str, token: str | None) -> RawAgent:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        ws = await connect(
            server_url.replace("http://", "ws://") + "/api/agent/ws",
            additional_headers=headers,
            max_size=None,
            open_timeout=10,
            ping_interval=None,
        )
        return cls(ws)

    @classmethod
    async def join(
        cls, server_url: str, token: str, name: str, *, heartbeat: bool = True, **hello_fields: Any
    ) -> RawAgent:
        agent = await cls.open(server_url, token)
        await agent.send(hello(name, **hello_fields))
        agent.welcome = await agent.expect(protocol.Welcome)
        agent.reconcile = await agent.expect(protocol.Reconcile)
        if heartbeat:
            agent._beat = asyncio.create_task(agent._heartbeats(agent.welcome.heartbeat_interval_s))
        return agent

    async def _heartbeats(self, interval: float) -> None:
        seq = 0
        while True:
            seq += 1
            try:
                running = [protocol.AttemptRef(t, n) for t, n in self.running]
                await self.send(
                    protocol.Heartbeat(seq=seq, running=running, finished=self.finished)
                )
            except ConnectionClosed:
                return
            await asyncio.sleep(interval)

    async def send(self, msg: protocol.Message) -> None:
        if isinstance(msg, protocol.Ack | protocol.AttemptState):
            key = (msg.task_id, msg.attempt_no)
            if isinstance(msg, protocol.AttemptState) and msg.phase in ("exited", "failed"):
                self.running.pop(key, None)
            else:
                self.running[key] = None
        await self.ws.send(protocol.encode(msg))

    async def recv(self, timeout: float = 10.0) -> protocol.Message:
        return protocol.decode(await asyncio.wait_for(self.ws.recv(), timeout))  # type: ignore[arg-type]

    async def expect(self, kind: type, timeout: float = 10.0) -> Any:
        """The next message of type ``kind``; others (acks, log acks) are skipped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await self.recv(max(0.01, deadline - loop.time()))
            if isinstance(msg, kind):
                return msg

    async def close(self) -> None:
        if self._beat:
            self._beat.cancel()
        await self.ws.close()


async def closed_with(ws: ClientConnection, timeout: float = 10.0) -> tuple[int | None, str]:
    """Read until the server closes; returns (close code, reason)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed:
        pass
    return ws.close_code, ws.close_reason or ""
