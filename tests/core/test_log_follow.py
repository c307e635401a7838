"""The live log follow delivers a chunk stored after a higher-numbered one (an agent's resend
after a failed store), by its seq, and the stored log reads in seq order."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.testing import AsyncTestClient

from tests.core.sched_helpers import SimCluster
from unidesk import protocol
from unidesk.core.ingress.reports import Report, ReportWriter
from unidesk.core.logs.services import LogEnd, LogLine, follow
from unidesk.core.scheduler.service import Scheduler


async def test_a_chunk_stored_late_is_followed_and_read_in_seq_order(
    client: AsyncTestClient, admin_headers: dict[str, str]
) -> None:
    state = client.app.state
    sim = SimCluster(state.sessions)
    await sim.nodes(1)
    (task,) = await sim.tasks(1, None)
    assert await Scheduler(sim.sessions).run_pass() == 1
    (a,) = await sim.active()
    writer = ReportWriter(state.sessions, log_cap=1 << 20)

    async def report(msg: Any) -> object:
        results: dict[int, object] = {}

        async def done(result: object) -> None:
            results[0] = result

        await writer._apply([Report(node_id=a.node_id, node_name="n", msg=msg, done=done)])
        assert not isinstance(results.get(0), Exception), results
        return results.get(0)

    def chunk(seq: int) -> protocol.LogChunk:
        return protocol.LogChunk(
            task_id=str(task), attempt_no=1, seq=seq, stream="stdout", data=f"line {seq}\n"
        )

    await report(protocol.Ack(task_id=str(task), attempt_no=1))
    stream = follow(state.sessions, task, None, 0, deadline_s=60)

    async def next_item() -> LogLine | LogEnd:
        return await asyncio.wait_for(anext(stream), 20)

    try:
        assert await report(chunk(2)) == 2  # chunk 1's store failed; 2 is stored first
        got = await next_item()
        assert isinstance(got, LogLine) and got.seq == 2
        assert await report(chunk(1)) == 1  # the resend
        got = await next_item()
        assert isinstance(got, LogLine) and (got.seq, got.data) == (1, "line 1\n")
        assert await report(chunk(3)) == 3
        got = await next_item()
        assert isinstance(got, LogLine) and got.seq == 3
        await report(
            protocol.AttemptState(
                task_id=str(task), attempt_no=1, phase="exited", exit_code=0, reason="succeeded"
            )
        )
        assert await next_item() == LogEnd(attempt_no=1, truncated=False)
    finally:
        await stream.aclose()
    page = (await client.get(f"/api/tasks/{task}/logs", headers=admin_headers)).json()
    assert [i["seq"] for i in page["items"]] == [1, 2, 3]
