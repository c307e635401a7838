"""Ordering of Docker's log lines by source time (no engine needed: the lines are given)."""

from __future__ import annotations

import asyncio

from tests.gateway_agent.fake_reporter import FakeReporter
from unidesk.gateway_agent.docker_logs import HOLD_S, SourceOrder, parse_docker_ts
from unidesk.gateway_agent.logcap import CappedReporter


def test_docker_timestamps_parse_to_epoch_seconds() -> None:
    assert parse_docker_ts("1970-01-01T00:00:01.500000000Z") == 1.5
    assert parse_docker_ts("1970-01-01T00:00:02Z") == 2.0
    assert parse_docker_ts("0001-01-01T00:00:00Z") is None


async def test_lines_are_released_in_source_order_across_streams() -> None:
    reporter = FakeReporter()
    head = bytearray()
    order = SourceOrder(CappedReporter(reporter, 1 << 20), head)
    # the daemon handed stderr's line over before stdout's earlier one
    order.push(10.002, "stderr", b"second\n")
    order.push(10.001, "stdout", b"first\n")
    assert reporter.calls == [], "held: an earlier line may still come"
    order.push(10.003 + HOLD_S, "stdout", b"third\n")  # newer by HOLD_S: the first two go
    assert [c[1] for c in reporter.calls] == [b"first\n", b"second\n"]
    order.flush()
    assert [(c[0], c[1], c[2]) for c in reporter.calls][-1] == (
        "stdout",
        b"third\n",
        10.003 + HOLD_S,
    )
    assert bytes(head) == b"second\n", "the stderr head feeds the command-not-found check"
    await asyncio.sleep(0)
