"""Acknowledged or retried, never silent: reports the server does not acknowledge (a Nack, or no
answer within ``report_resend_s``) go out again on the same socket, with backoff, until acked."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.gateway_agent.fake_ingress import FakeIngress
from tests.gateway_agent.test_agent import Running, dispatch, finals_of, stored_log
from unidesk.gateway_agent.resend import ResendSchedule
from unidesk.gateway_agent.state import StateFile
from unidesk.protocol import Ack, LogAck, LogChunk, Nack


def test_schedule_bound_backoff_nack_and_forgetting():
    now = [100.0]
    s = ResendSchedule(after_s=10, cap_s=25, clock=lambda: now[0])
    assert s.due(["a", "b"]) == []  # just sent
    now[0] += 10
    assert s.due(["a", "b"]) == ["a", "b"]  # no ack within the bound
    now[0] += 19.9
    assert s.due(["a", "b"]) == []  # the next try waits twice as long
    now[0] += 0.1
    assert s.due(["a"]) == ["a"] and len(s) == 1  # b was acked: forgotten
    s.nacked("a")
    now[0] += 25  # a Nack brings the next try forward (a jittered backoff within the cap)
    assert s.due(["a"]) == ["a"]
    s.reset()
    assert s.due(["a"]) == [] and len(s) == 1


async def test_nacked_final_and_log_are_sent_again_on_the_same_socket(tmp_path: Path):
    async with FakeIngress(ack_finals=False, ack_logs=False) as ingress:
        run = Running(ingress, tmp_path).start()
        try:
            await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello)
            await ingress.send(dispatch("t-nack", "echo hello; exit 3"))
            await ingress.wait_for(lambda: finals_of(ingress, "t-nack"))
            chunk = ingress.current.of(LogChunk)[0]
            # The server could not store them (database down): it says so.
            await ingress.send(Nack(task_id="t-nack", attempt_no=1, of="log", seq=chunk.seq))
            await ingress.send(Nack(task_id="t-nack", attempt_no=1, of="attempt_state"))
            await ingress.wait_for(
                lambda: (
                    len(finals_of(ingress, "t-nack")) >= 2
                    and len(ingress.current.of(LogChunk)) >= 2
                )
            )
            assert len(ingress.sessions) == 1  # no reconnect was needed
            assert finals_of(ingress, "t-nack")[-1].exit_code == 3
            assert "hello" in stored_log(ingress, "t-nack")
            # Stored at last: acknowledged, and the agent forgets them.
            await ingress.send(LogAck(task_id="t-nack", attempt_no=1, seq=chunk.seq))
            await ingress.send(Ack(task_id="t-nack", attempt_no=1))
            await ingress.wait_for(lambda: not StateFile(run.config.state_path).state.finals)
        finally:
            await run.stop()


async def test_final_without_any_answer_is_sent_again_after_the_bound(tmp_path: Path):
    async with FakeIngress(ack_finals=False) as ingress:
        run = Running(ingress, tmp_path, report_resend_s=0.5).start()
        try:
            await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello)
            await ingress.send(dispatch("t-quiet", "exit 0"))
            await ingress.wait_for(lambda: len(finals_of(ingress, "t-quiet")) >= 3)
            assert len(ingress.sessions) == 1
            ingress.ack_finals = True
            await ingress.wait_for(lambda: not StateFile(run.config.state_path).state.finals)
            count = len(finals_of(ingress, "t-quiet"))
            await asyncio.sleep(1.5)
            assert len(finals_of(ingress, "t-quiet")) == count  # acked: never sent again
        finally:
            await run.stop()
