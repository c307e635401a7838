"""A pipeline end to end on one machine: a real server with its local agent running the steps
in the real Docker engine, pinned to commits of git repositories made here.

prepare → a two-point matrix train → aggregate: files flow as artifacts (train reads
prepare's data.csv, aggregate reads both trains' model.pt, one directory per point). One train
point fails in the first round: aggregate is skipped, the on_failure step runs, the pipeline
fails; retrying train resumes it (prepare is not run again) and it succeeds."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.docker_images import BUSYBOX_IMAGE
from tests.gateway_agent.gitrepos import GitRepo
from tests.integration.conftest import wait_for
from tests.integration.test_docker_flow import start_docker_server, wait_local_node

pytestmark = pytest.mark.docker

PREP = "echo 'rows=3' > /workspace/outputs/data.csv\n"
TRAIN = (
    'lr="$1"\n'
    'if [ "$lr" = 0.01 ] && [ "$UNIDESK_STEP_ROUND" = 0 ]; then echo diverged >&2; exit 3; fi\n'
    'echo "lr=$lr $(cat /inputs/prepare/0/data.csv)" > /workspace/outputs/model.pt\n'
)
AGG = "cat /inputs/train/0/model.pt /inputs/train/1/model.pt | tee /workspace/outputs/summary.txt\n"


def _logs(api: httpx.Client, task_id: str) -> str:
    items = api.get(f"/api/tasks/{task_id}/logs", params={"limit": 1000}).json()["items"]
    return "".join(i["data"] for i in items)


def _step(p: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in p["steps"] if s["name"] == name)


def _settled(api: httpx.Client, pid: str, state: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        p = api.get(f"/api/pipelines/{pid}").json()
        assert p["state"] in ("running", "pending", state), p
        return p if p["state"] == state else None

    return wait_for(check, timeout=240, interval=1.0, what=f"pipeline {state}")


def test_prepare_matrix_train_aggregate_with_failure_and_retry(pg_cluster, tmp_path) -> None:
    server = start_docker_server(pg_cluster, tmp_path)
    try:
        code = GitRepo(tmp_path / "code")
        code_sha = code.commit({"prep.sh": PREP, "train.sh": TRAIN, "agg.sh": AGG})
        env = GitRepo(tmp_path / "env")
        env_sha = env.commit({"Dockerfile": f"FROM {BUSYBOX_IMAGE}\n"})
        spec = {
            "name": "exp-docker",
            "defaults": {
                "code_repo_url": code.url,
                "code_commit_id": code_sha,
                "env_repo_url": env.url,
                "env_commit_id": env_sha,
                "dockerfile_path": "Dockerfile",
                "resources": {"cpus": 0.25, "memory_mb": 64},
                "timeout_s": 120,
                "max_attempts": 1,
            },
            "steps": [
                {
                    "name": "prepare",
                    "task": {"command": ["sh", "/workspace/prep.sh"], "outputs": ["data.csv"]},
                },
                {
                    "name": "train",
                    "depends_on": ["prepare"],
                    "matrix": {"lr": [0.1, 0.01]},
                    "task": {
                        "command": "sh /workspace/train.sh {{ matrix.lr }}",
                        "inputs": [{"from": "prepare/data.csv"}],
                        "outputs": ["model.pt"],
                    },
                },
                {
                    "name": "aggregate",
                    "depends_on": ["train"],
                    "task": {
                        "command": ["sh", "/workspace/agg.sh"],
                        "inputs": [{"from": "train/model.pt"}],
                        "outputs": ["summary.txt"],
                    },
                },
                {
                    "name": "report-failure",
                    "depends_on": ["train"],
                    "when": "on_failure",
                    "task": {"command": "echo train failed: $UNIDESK_PIPELINE_ID"},
                },
            ],
        }
        with server.api() as api:
            wait_local_node(api)
            r = api.post("/api/pipelines", json=spec)
            assert r.status_code == 201, r.text
            pid = r.json()["id"]
            (prep_task,) = [pt["task_id"] for pt in _step(r.json(), "prepare")["points"]]

            failed = _settled(api, pid, "failed")
            assert _step(failed, "prepare")["state"] == "succeeded"
            train = _step(failed, "train")
            assert train["state"] == "failed"
            assert [pt["task_state"] for pt in train["points"]] == ["succeeded", "failed"]
            assert train["inputs"][0]["from_step"] == "prepare"
            assert _step(failed, "aggregate")["state"] == "skipped"
            assert _step(failed, "report-failure")["state"] == "succeeded"
            (report,) = [pt["task_id"] for pt in _step(failed, "report-failure")["points"]]
            assert f"train failed: {pid}" in _logs(api, report)

            r = api.post(f"/api/pipelines/{pid}/steps/train/retry")
            assert r.status_code == 200, r.text
            done = _settled(api, pid, "succeeded")
            assert [pt["task_id"] for pt in _step(done, "prepare")["points"]] == [prep_task]
            train = _step(done, "train")
            assert train["round"] == 1
            assert {o["path"] for o in train["outputs"]} == {"model.pt"}
            assert sorted(o["point"] for o in train["outputs"]) == [0, 1]
            agg = _step(done, "aggregate")
            assert len(agg["inputs"][0]["artifact_ids"]) == 2
            assert agg["outputs"][0]["path"] == "summary.txt"
            (agg_task,) = [pt["task_id"] for pt in agg["points"]]
            out = _logs(api, agg_task)
            assert "lr=0.1 rows=3" in out and "lr=0.01 rows=3" in out, out
            kinds = [e["kind"] for e in api.get(f"/api/pipelines/{pid}/trace").json()["items"]]
            assert kinds.count("step.started") == 5  # prepare once, train twice, agg, report
            assert kinds[-1] == "pipeline.succeeded" and "step.retried" in kinds
    finally:
        server.stop()
