"""The per-attempt log cap: exact cut, one marker, drops counted, agent lines always pass."""

from __future__ import annotations

from tests.gateway_agent.fake_reporter import FakeReporter
from unidesk.gateway_agent.logcap import CappedReporter


def test_cut_at_cap_with_one_marker() -> None:
    inner = FakeReporter()
    capped = CappedReporter(inner, cap=10)
    capped.log("stdout", b"12345")
    capped.log("stderr", b"6789AB")
    capped.log("stdout", b"more")
    capped.system("bye")
    assert bytes(inner.logs["stdout"]) == b"12345" and bytes(inner.logs["stderr"]) == b"6789A"
    assert inner.text("system").count("log truncated") == 1
    assert inner.text("system").endswith("[unidesk] bye\n")
    assert capped.truncated and capped.dropped == 1 + 4


def test_under_cap_passes_everything() -> None:
    inner = FakeReporter()
    capped = CappedReporter(inner, cap=10)
    capped.log("build", b"0123456789")
    assert (
        bytes(inner.logs["build"]) == b"0123456789"
        and not capped.truncated
        and not inner.logs["system"]
    )
