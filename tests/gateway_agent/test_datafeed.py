"""The metrics file tailer: complete lines only, bad lines named, batches numbered and kept until
acked."""

from __future__ import annotations

import json
from pathlib import Path

from unidesk.gateway_agent import datafeed
from unidesk.gateway_agent.confine import Beneath
from unidesk.gateway_agent.datafeed import DataFeed
from unidesk.protocol import MAX_SKIPPED_SAMPLES


def test_reads_complete_lines_in_numbered_batches_until_acked(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    feed = DataFeed("t1", 2, "metrics", Beneath(tmp_path, "m.jsonl"))
    assert feed.read() == ([], [])  # no file yet: nothing, no complaint
    path.write_text('{"name": "loss", "step": 1, "value": 0.5}\n{"name": "loss", "st')
    batches, problems = feed.read()
    assert problems == [] and [b.items for b in batches] == [
        [{"name": "loss", "step": 1, "value": 0.5}]
    ]
    assert (batches[0].task_id, batches[0].attempt_no, batches[0].channel, batches[0].seq) == (
        "t1",
        2,
        "metrics",
        1,
    )
    with path.open("a") as f:
        f.write('ep": 2, "value": NaN}\nnot json\n[1, 2]\n\n{"name": "acc", "step": 2, "value": 1}')
    batches, problems = feed.read()
    # NaN is valid for Python's json and is forwarded: the server names it as a bad value
    assert [b.seq for b in batches] == [2]
    assert (
        batches[0].items[0]["step"] == 2
        and batches[0].items[0]["value"] != batches[0].items[0]["value"]
    )
    assert problems == [
        "metrics file line 3 is not JSON (Expecting value); skipped",
        "metrics file line 4 is not a JSON object; skipped",
    ]
    batches, _ = feed.read(final=True)  # the last line without a newline counts at the end
    assert [b.items for b in batches] == [[{"name": "acc", "step": 2, "value": 1}]] and feed.closed
    assert [b.seq for b in feed.unacked()] == [1, 2, 3]
    feed.ack(2)
    assert [b.seq for b in feed.unacked()] == [1, 3] and not feed.idle
    feed.ack(1)
    feed.ack(3)
    assert feed.idle and feed.read() == ([], [])


def test_a_line_that_is_not_utf8_is_skipped_and_the_good_lines_of_that_read_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.jsonl"
    feed = DataFeed("t", 1, "metrics", Beneath(tmp_path, "m.jsonl"))
    path.write_bytes(
        b'{"name": "loss", "step": 1, "value": 1}\n'
        b'{"name": "l\xe9ss", "step": 2, "value": 2}\n'  # Latin-1, not UTF-8
        b'{"name": "loss", "step": 3, "value": 3}\n'
    )
    batches, problems = feed.read()
    assert [[i["step"] for i in b.items] for b in batches] == [[1, 3]]
    assert problems == ["metrics file line 2 is not UTF-8 text; skipped"]
    assert feed.skipped_lines == 1 and not feed.closed
    with path.open("ab") as f:  # the feed stays open: later lines are read as usual
        f.write(b'{"name": "loss", "step": 4, "value": 4}\n')
    batches, problems = feed.read()
    assert [[i["step"] for i in b.items] for b in batches] == [[4]] and problems == []


def test_large_files_are_batched_and_bounded(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "m.jsonl"
    path.write_text(
        "".join(json.dumps({"name": "x", "step": i, "value": i}) + "\n" for i in range(5000))
    )
    feed = DataFeed("t", 1, "metrics", Beneath(path.parent, path.name))
    batches, _ = feed.read()
    assert [len(b.items) for b in batches] == [2000, 2000, 1000] and [b.seq for b in batches] == [
        1,
        2,
        3,
    ]
    monkeypatch.setattr(datafeed, "MAX_FILE_BYTES", path.stat().st_size + 10)
    with path.open("a") as f:
        f.write(
            "".join(
                json.dumps({"name": "x", "step": i, "value": i}) + "\n" for i in range(5000, 5100)
            )
        )
    batches, problems = feed.read()
    assert problems == [f"metrics file passed {datafeed.MAX_FILE_BYTES} bytes; the rest is ignored"]
    assert feed.read() == ([], [])


def test_skipped_lines_are_counted_with_samples_on_the_next_batch(tmp_path: Path) -> None:
    """The count and first samples of malformed lines ride on the next batch (one with no items
    when only bad lines came), and each batch carries only what was skipped since the last."""
    path = tmp_path / "m.jsonl"
    feed = DataFeed("t", 1, "metrics", Beneath(tmp_path, "m.jsonl"))
    path.write_text("loss=0.3\n[1, 2]\n" + "".join(f"bad {i}\n" for i in range(8)))
    (batch,), _ = feed.read()
    assert batch.items == [] and batch.skipped_lines == 10
    assert len(batch.skipped_samples) == MAX_SKIPPED_SAMPLES
    assert batch.skipped_samples[:2] == [
        "line 1: not JSON (Expecting value): loss=0.3",
        "line 2: not a JSON object: [1, 2]",
    ]
    with path.open("a") as f:
        f.write('{"name": "loss", "step": 1, "value": 1}\n')
    (batch,), _ = feed.read()
    assert batch.skipped_lines == 0 and batch.skipped_samples == [] and len(batch.items) == 1
    assert feed.read() == ([], []) and feed.skipped_lines == 10
