"""A real server process with an open browser event stream and a connected agent gets SIGTERM:
the stream ends with a ``shutdown`` message, the agent socket closes 1001 with a reason, and
the process exits within the documented bound."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator

import httpx

from tests.integration.conftest import node_token, submit
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
        task = submit(api, "true", resources={"cpus": 64})  # fits no node: waits, no log yet
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    seen: list[str] = []
    log_seen: list[str] = []
    async with (
        httpx.AsyncClient(base_url=srv.url, timeout=httpx.Timeout(10, read=None)) as client,
        client.stream("GET", "/api/events/stream", headers=headers) as stream,
        client.stream("GET", f"/api/tasks/{task['id']}/logs/stream", headers=headers) as logs,
    ):
        assert stream.status_code == 200 and logs.status_code == 200
        lines = stream.aiter_lines()
        while "event: hello" not in seen:
            seen.append(await asyncio.wait_for(anext(lines), 30))
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGTERM)

        async def rest(source: AsyncIterator[str], into: list[str]) -> None:
            async for line in source:
                into.append(line)

        # both streams end (no hang), each with a last "shutdown" message
        await asyncio.wait_for(
            asyncio.gather(rest(lines, seen), rest(logs.aiter_lines(), log_seen)),
            SHUTDOWN_BOUND_S,
        )
    for got in (seen, log_seen):
        assert "event: shutdown" in got, got
        assert 'data: {"reason":"server shutting down"}' in got
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
