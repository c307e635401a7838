"""U+0000 in agent frames: one replacement helper for every text the server stores (log chunks
in ``reports._log`` and the messages ``scrub`` cleans)."""

from __future__ import annotations

from unidesk import protocol
from unidesk.core.ingress import reports
from unidesk.core.ingress.nulscrub import replace_nul, scrub


def test_replace_nul_puts_a_replacement_character_in_each_place() -> None:
    assert replace_nul("a\x00b\x00\x00") == "a\ufffdb\ufffd\ufffd"
    assert replace_nul("clean") == "clean"


def test_scrub_and_the_log_writer_share_the_helper() -> None:
    assert reports.replace_nul is replace_nul  # log chunks: the same rule, not a copy
    state = protocol.AttemptState(
        task_id="t", attempt_no=1, phase="exited", reason="succeeded", message="done\x00"
    )
    assert scrub(state).message == "done\ufffd"  # type: ignore[union-attr]
    beat = protocol.Heartbeat(seq=1, unhealthy_reason="disk\x00full")
    assert scrub(beat).unhealthy_reason == "disk\ufffdfull"  # type: ignore[union-attr]
    data = protocol.AttemptData(
        task_id="t",
        attempt_no=1,
        channel="metrics",
        seq=0,
        items=[{"loss": 0.5}, {"note": "a\x00b"}],
        skipped_samples=["line 3: x\x00"],
    )
    out = scrub(data)
    assert isinstance(out, protocol.AttemptData)
    assert out.items == [{"loss": 0.5}] and out.skipped_lines == 1
    assert out.skipped_samples[0] == "line 3: x\ufffd"
    clean = protocol.Heartbeat(seq=2)
    assert scrub(clean) is clean
