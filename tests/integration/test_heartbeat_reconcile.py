"""Heartbeat reconciliation on a live socket: what a node says it runs (and holds unacked final
reports for) is compared with the database, and a mismatch seen in two consecutive heartbeats
is resolved: kill what the server no longer expects, lose what the node no longer has, ask again
for a final report the database lacks."""

from __future__ import annotations

import asyncio
import time

from tests.integration.conftest import events, get_task, node_token, submit, trace_kinds
from tests.integration.raw_agent import RawAgent
from unidesk import protocol


async def _until(check, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_heartbeats_reconcile_kill_lose_and_resend(live_server):
    with live_server.api() as api:
        agent = await RawAgent.join(live_server.url, node_token(api, "hb")["secret"], "hb")
        node_id = agent.welcome.node_id
        assert agent.welcome.offline_timeout_s == 4  # the agent's self-fence default

        # The node runs an attempt the server never gave it: killed.
        agent.running[("7f7f7f7f-0000-4000-8000-000000000000", 1)] = None
        reconcile = await agent.expect(protocol.Reconcile)
        assert [(r.task_id, r.attempt_no) for r in reconcile.kill] == [
            ("7f7f7f7f-0000-4000-8000-000000000000", 1)
        ]
        assert events(api, "node.reconcile_kill", node_id)
        agent.running.clear()

        # An acked attempt the node no longer mentions: lost, and the policy decides (here: no
        # attempts left, so the task fails with the reason).
        task = submit(api, "true", max_attempts=1)
        await agent.expect(protocol.Dispatch)
        await agent.send(protocol.Ack(task_id=task["id"], attempt_no=1))
        await _until(lambda: get_task(api, task["id"])["state"] == "preparing")
        agent.running.clear()
        await _until(lambda: "task.attempt_lost" in trace_kinds(api, task["id"]))
        lost = get_task(api, task["id"])["attempts"][0]
        assert (lost["state"], lost["reason"]) == ("lost", "node_lost")
        assert "heartbeat reconciliation" in lost["message"]
        await _until(lambda: get_task(api, task["id"])["state"] == "failed")

        # Another attempt ended here, but its final report never reached the database: a Nack
        # asks for it again, and once sent it is applied and acknowledged.
        other = submit(api, "true")
        await agent.expect(protocol.Dispatch)
        await agent.send(protocol.Ack(task_id=other["id"], attempt_no=1))
        await _until(lambda: get_task(api, other["id"])["state"] == "preparing")
        agent.running.clear()
        agent.finished = [protocol.AttemptRef(other["id"], 1)]
        nack = await agent.expect(protocol.Nack)
        assert (nack.task_id, nack.attempt_no, nack.of) == (other["id"], 1, "attempt_state")
        await agent.send(
            protocol.AttemptState(
                task_id=other["id"], attempt_no=1, phase="exited", exit_code=0, reason="succeeded"
            )
        )
        assert (await agent.expect(protocol.Ack)).task_id == other["id"]
        agent.finished = []
        await _until(lambda: get_task(api, other["id"])["state"] == "succeeded")
        await agent.close()
