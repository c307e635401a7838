"""The agent's state file: persisted on every change (off the loop), atomic, a broken file set
aside."""

from __future__ import annotations

import asyncio
from pathlib import Path

from unidesk.gateway_agent.state import StateFile
from unidesk.protocol import AttemptRef, AttemptState


def final(task_id: str, attempt_no: int = 1) -> AttemptState:
    return AttemptState(
        task_id=task_id, attempt_no=attempt_no, phase="exited", reason="succeeded", exit_code=0
    )


async def test_round_trip_and_identity_is_stable(tmp_path: Path):
    path = tmp_path / "s" / "agent-state.json"
    first = StateFile(path)
    await first.set_node_id("node-9")
    await first.own(AttemptRef("a", 1))
    await first.own(AttemptRef("b", 2))
    await first.finish(final("a"))
    again = StateFile(path)
    assert again.state.instance_id == first.state.instance_id
    assert again.state.node_id == "node-9"
    assert again.state.owned == [AttemptRef("b", 2)]
    assert again.state.finals == [final("a")]
    assert not path.with_suffix(".tmp").exists()


async def test_confirm_forgets_only_confirmed_reports(tmp_path: Path):
    path = tmp_path / "agent-state.json"
    state = StateFile(path)
    for t in ("a", "b", "c"):
        await state.own(AttemptRef(t, 1))
        await state.finish(final(t))
    await state.finish(final("a"))  # reported twice: kept once
    await state.confirm({AttemptRef("a", 1), AttemptRef("c", 1)})
    assert [f.task_id for f in StateFile(path).state.finals] == ["b"]


def test_broken_file_is_set_aside_not_fatal(tmp_path: Path):
    path = tmp_path / "agent-state.json"
    path.write_text("{not json")
    state = StateFile(path)
    assert state.state.owned == [] and state.state.finals == []
    assert path.with_suffix(".broken").read_text() == "{not json"
    path.write_text('{"owned": [{"task_id": 5}]}')
    assert StateFile(path).state.owned == []


async def test_saves_leave_the_loop_free_and_end_at_the_newest_state(tmp_path: Path):
    path = tmp_path / "agent-state.json"
    state = StateFile(path)
    turns = 0
    stop = asyncio.Event()

    async def count() -> None:
        nonlocal turns
        while not stop.is_set():
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count())
    await state.set_log_seqs({AttemptRef("a", 1): 7})
    during = turns
    # many concurrent changes: each persisted, one writer at a time, the last write is the newest
    await asyncio.gather(*(state.own(AttemptRef(f"t{i}", 1)) for i in range(20)))
    stop.set()
    await counter
    assert during > 0  # the write and fsync happened in a thread while the loop ran
    again = StateFile(path)
    assert again.state.owned == [AttemptRef(f"t{i}", 1) for i in range(20)]
    assert again.state.log_seqs == {"a/1": 7}
    assert not path.with_suffix(".tmp").exists()
