"""The container config for an attempt: GPUs, limits, hardening, labels, host path mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from unidesk.gateway_agent.container_spec import container_config, container_name, ref_from_labels
from unidesk.gateway_agent.exec_config import ExecConfig
from unidesk.gateway_agent.exec_errors import PrepareFailed
from unidesk.gateway_agent.workspace import Workspaces
from unidesk.protocol import AttemptRef, Dispatch


def dispatch(**kw) -> Dispatch:
    base = {
        "task_id": "t1",
        "attempt_no": 3,
        "code_repo_url": "https://h/c",
        "code_commit_id": "a" * 40,
        "env_repo_url": "https://h/e",
        "env_commit_id": "b" * 40,
        "dockerfile_path": "Dockerfile",
        "command": ["python", "train.py"],
        "cpus": 1.5,
        "memory_mb": 2048,
    }
    return Dispatch(**(base | kw))


def test_gpus_limits_hardening_and_labels() -> None:
    body = container_config(
        dispatch(gpu_indices=[0, 2]),
        image="unidesk-env:x",
        workspace_source="/w",
        config=ExecConfig(pids_limit=100),
        node="n1",
    )
    host = body["HostConfig"]
    assert host["DeviceRequests"] == [
        {"Driver": "nvidia", "DeviceIDs": ["0", "2"], "Capabilities": [["gpu"]]}
    ]
    assert host["NanoCpus"] == 1_500_000_000 and host["Memory"] == 2048 * 1024 * 1024
    assert host["PidsLimit"] == 100 and host["NetworkMode"] == "none"
    assert host["Privileged"] is False and host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["Binds"] == ["/w:/workspace:rw"] and body["WorkingDir"] == "/workspace"
    assert not any("docker.sock" in b for b in host["Binds"])
    assert (
        ref_from_labels(body["Labels"]) == AttemptRef("t1", 3)
        and body["Labels"]["unidesk.node"] == "n1"
    )
    assert "UNIDESK_TASK_ID=t1" in body["Env"] and "UNIDESK_ATTEMPT=3" in body["Env"]
    assert body["Cmd"] == ["python", "train.py"]


def test_no_gpus_means_no_device_requests() -> None:
    body = container_config(
        dispatch(), image="i", workspace_source="/w", config=ExecConfig(), node="n"
    )
    assert "DeviceRequests" not in body["HostConfig"]


def test_task_env_cannot_override_attempt_identity_or_smuggle_bad_names() -> None:
    body = container_config(
        dispatch(env={"UNIDESK_TASK_ID": "other", "A": "1"}),
        image="i",
        workspace_source="/w",
        config=ExecConfig(),
        node="n",
    )
    assert "UNIDESK_TASK_ID=t1" in body["Env"] and "UNIDESK_TASK_ID=other" not in body["Env"]
    with pytest.raises(PrepareFailed, match="bad name"):
        container_config(
            dispatch(env={"A=B": "1"}),
            image="i",
            workspace_source="/w",
            config=ExecConfig(),
            node="n",
        )


def test_host_cache_dir_maps_bind_sources(tmp_path: Path) -> None:
    config = ExecConfig(
        cache_dir=str(tmp_path / "agent-cache"), host_cache_dir="/srv/unidesk/cache"
    )
    spaces = Workspaces(config)
    path = spaces.create(AttemptRef("t1", 3))
    assert path == tmp_path / "agent-cache" / "work" / "t1-3"
    assert spaces.host_path(path) == "/srv/unidesk/cache/work/t1-3"
    assert Workspaces(ExecConfig(cache_dir=str(tmp_path / "agent-cache"))).host_path(path) == str(
        path
    )


@pytest.mark.parametrize("task_id", ["../x", "a/b", "", "-rf", "x" * 200])
def test_task_ids_that_cannot_name_a_workspace(task_id: str) -> None:
    with pytest.raises(PrepareFailed):
        container_name(AttemptRef(task_id, 1))


def test_task_pids_limit_overrides_the_node_default() -> None:
    def pids(**kw: object) -> int:
        body = container_config(
            dispatch(**kw), image="i", workspace_source="/w", config=ExecConfig(), node="n"
        )
        return body["HostConfig"]["PidsLimit"]

    assert pids() == ExecConfig().pids_limit == 256
    assert pids(pids_limit=2048) == 2048
