"""Metrics from inside a run reach the research plugin: the task appends JSON lines to
$UNIDESK_METRICS_FILE (no network), the real local agent process tails and forwards them
(AttemptData, acked), the server's ingress hands them to the plugin, the chart API reads them.

Runs the server's local agent with the SubprocessTestRunner (commands run as local processes);
the Docker path of the same file is covered by the browser sweep test."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import FINAL, task_body, wait_for

pytestmark = pytest.mark.plugins

SCRIPT = r"""
printf '{"name": "loss", "step": 0, "value": %s}\n' "$PARAM_LR" >> "$UNIDESK_METRICS_FILE"
i=1
while [ $i -le 300 ]; do
  printf '{"name": "loss", "step": %d, "value": %s}\n' $i "0.$i" >> "$UNIDESK_METRICS_FILE"
  i=$((i+1))
done
echo '{"name": "loss", "step": 999, "value": NaN}' >> "$UNIDESK_METRICS_FILE"
echo 'this is not json' >> "$UNIDESK_METRICS_FILE"
printf '{"name": "acc", "step": 7, "value": 0.75}' >> "$UNIDESK_METRICS_FILE"
echo done
"""


def test_sweep_runs_report_metrics_through_the_agent(live_server_factory: Any) -> None:
    server = live_server_factory(local_agent="true", local_agent_runner="subprocess-test")
    with server.api() as api:
        exp = api.post("/api/research/experiments", json={"name": "sweep"}).json()
        r = api.post(
            f"/api/research/experiments/{exp['id']}/sweeps",
            json={
                "task": task_body(["/bin/sh", "-c", SCRIPT], max_attempts=1),
                "grid": {"lr": [0.5, 0.25]},
            },
        )
        assert r.status_code == 201, r.text
        ids = r.json()["task_ids"]
        for tid in ids:
            task = wait_for(
                lambda tid=tid: (t := api.get(f"/api/tasks/{tid}").json())["state"] in FINAL and t,
                timeout=60,
                what=f"task {tid} to end",
            )
            assert task["state"] == "succeeded", task

        def complete() -> Any:
            d = api.get(f"/api/research/experiments/{exp['id']}").json()
            return (
                d
                if all(
                    run["metrics"].get("acc") and run["rejected_points"] and run["skipped_lines"]
                    for run in d["runs"]
                )
                else None
            )

        detail = wait_for(complete, timeout=30, what="all metrics stored")
        for run, lr in zip(detail["runs"], (0.5, 0.25), strict=False):
            assert run["params"] == {"lr": lr}
            loss = run["metrics"]["loss"]
            assert (loss["points"], loss["first_step"], loss["last_step"], loss["last"]) == (
                301,
                0,
                300,
                0.3,
            )
            assert (
                run["metrics"]["acc"]["last"] == 0.75
            )  # the last line had no newline: read at the end
            assert run["rejected_points"] == 1 and "finite" in run["last_rejection"]
            # the line the agent could not read as JSON reaches the run too (count + sample)
            assert run["skipped_lines"] == 1
            assert run["skipped_samples"][0].startswith("line 303: not JSON")
        page = api.get(
            f"/api/research/experiments/{exp['id']}/metrics", params={"name": "loss", "points": 50}
        ).json()
        assert [s["task_id"] for s in page["series"]] == ids
        assert all(s["downsampled"] and len(s["points"]) <= 50 for s in page["series"])
        raw = api.get(
            f"/api/research/experiments/{exp['id']}/metrics",
            params={"name": "loss", "points": 1000},
        ).json()
        assert [s["points"][0]["avg"] for s in raw["series"]] == [0.5, 0.25] and not raw["series"][
            0
        ]["downsampled"]
        logs = api.get(f"/api/tasks/{ids[0]}/logs").text
        assert "metrics file line 303 is not JSON" in logs, logs[-2000:]
        trace = api.get(f"/api/tasks/{ids[0]}/trace").json()["items"]
        assert [
            e["payload"]["rejected"] for e in trace if e["kind"] == "research.metrics_rejected"
        ] == [1]
