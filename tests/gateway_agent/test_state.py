"""The agent's state file: persisted on every change, atomic, a broken file set aside."""

from __future__ import annotations

from pathlib import Path

from unidesk.gateway_agent.state import StateFile
from unidesk.protocol import AttemptRef, AttemptState


def final(task_id: str, attempt_no: int = 1) -> AttemptState:
    return AttemptState(
        task_id=task_id, attempt_no=attempt_no, phase="exited", reason="succeeded", exit_code=0
    )


def test_round_trip_and_identity_is_stable(tmp_path: Path):
    path = tmp_path / "s" / "agent-state.json"
    first = StateFile(path)
    first.set_node_id("node-9")
    first.own(AttemptRef("a", 1))
    first.own(AttemptRef("b", 2))
    first.finish(final("a"))
    again = StateFile(path)
    assert again.state.instance_id == first.state.instance_id
    assert again.state.node_id == "node-9"
    assert again.state.owned == [AttemptRef("b", 2)]
    assert again.state.finals == [final("a")]
    assert not path.with_suffix(".tmp").exists()


def test_confirm_forgets_only_confirmed_reports(tmp_path: Path):
    path = tmp_path / "agent-state.json"
    state = StateFile(path)
    for t in ("a", "b", "c"):
        state.own(AttemptRef(t, 1))
        state.finish(final(t))
    state.finish(final("a"))  # reported twice: kept once
    state.confirm({AttemptRef("a", 1), AttemptRef("c", 1)})
    assert [f.task_id for f in StateFile(path).state.finals] == ["b"]


def test_broken_file_is_set_aside_not_fatal(tmp_path: Path):
    path = tmp_path / "agent-state.json"
    path.write_text("{not json")
    state = StateFile(path)
    assert state.state.owned == [] and state.state.finals == []
    assert path.with_suffix(".broken").read_text() == "{not json"
    path.write_text('{"owned": [{"task_id": 5}]}')
    assert StateFile(path).state.owned == []
