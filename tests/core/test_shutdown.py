"""A real server process with an open browser event stream and a connected agent gets SIGTERM:
the stream ends with a ``shutdown`` message, the agent socket closes 1001 with a reason, and
the process exits within the documented bound."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid

import httpx

from tests.integration.conftest import node_token
from tests.integration.raw_agent import RawAgent, closed_with
from unidesk import protocol
from unidesk.core.shutdown import SHUTDOWN_BOUND_S


async def test_sigterm_ends_event_streams_and_agent_sockets_then_the_process(
    live_server,
) -> None:
    srv = live_server
    token = srv.token()
    with srv.api(token) as api:
        agent = await RawAgent.join(
            srv.url, node_token(api, f"n-{uuid.uuid4().hex[:6]}")["secret"], "stopping"
        )
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    seen: list[str] = []
    async with (
        httpx.AsyncClient(base_url=srv.url, timeout=httpx.Timeout(10, read=None)) as client,
        client.stream("GET", "/api/events/stream", headers=headers) as stream,
    ):
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        while "event: hello" not in seen:
            seen.append(await asyncio.wait_for(anext(lines), 30))
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGTERM)

        async def rest() -> None:
            async for line in lines:
                seen.append(line)

        await asyncio.wait_for(rest(), SHUTDOWN_BOUND_S)  # the stream ends: no hang
    assert "event: shutdown" in seen, seen
    assert 'data: {"reason":"server shutting down"}' in seen
    code, reason = await closed_with(agent.ws, timeout=SHUTDOWN_BOUND_S)
    assert code == protocol.CLOSE_SERVER_SHUTDOWN and reason == "server shutting down"
    try:
        returncode = srv.proc.wait(SHUTDOWN_BOUND_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"server still running {SHUTDOWN_BOUND_S} s after SIGTERM") from None
    # uvicorn re-raises the signal once its shutdown is complete: ended by SIGTERM, not killed
    assert returncode in (0, -signal.SIGTERM), srv.log_path.read_text()[-3000:]
    log = srv.log_path.read_text()
    assert "shutting down" in log and "shutdown did not finish in time" not in log
