"""A task cannot point the agent outside its workspace: symlinked outputs, a repository that
commits ``outputs -> <host dir>``, a symlinked metrics file. The host stays untouched (files,
modes, owners) and nothing is uploaded; the container runs as a non-root user.

Real parts: the Docker engine and the busybox test image, git repositories made here, the
agent's ``Transfer`` against a loopback HTTP server that records every request it gets.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from aiohttp import web

from tests.gateway_agent.fake_reporter import FakeReporter
from unidesk.gateway_agent.confine import (
    Beneath,
    WorkspaceEscape,
    chown_tree,
    ensure_dir,
    find_files,
    open_file,
)
from unidesk.gateway_agent.datafeed import DataFeed
from unidesk.gateway_agent.docker_runner import DockerRunner
from unidesk.gateway_agent.transfer import Transfer
from unidesk.protocol import FileOutput


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    """A directory of the host a hostile task wants: a private file in a private dir."""
    d = tmp_path / "host-secrets"
    d.mkdir()
    (d / "secret.txt").write_text("host secret\n")
    os.chmod(d / "secret.txt", 0o600)
    os.chmod(d, 0o700)
    return d


def snapshot(d: Path) -> dict[str, tuple[int, int, int, bytes]]:
    out = {}
    for p in [d, *sorted(d.rglob("*"))]:
        st = p.lstat()
        out[str(p)] = (st.st_mode, st.st_uid, st.st_gid, p.read_bytes() if p.is_file() else b"")
    return out


@pytest.fixture
async def recording_server():
    """A loopback HTTP server standing in for the UniDesk server: records, answers 500."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        return web.Response(status=500, text="should not be called")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


@pytest.fixture
async def file_runner(exec_config, node_name, env_image_cleanup, recording_server, tmp_path):
    from tests.gateway_agent.conftest import remove_node_containers

    url, _seen = recording_server
    transfer = Transfer(server_url=url, token="t", cache_dir=tmp_path / "cache")
    made = DockerRunner(exec_config, node_name=node_name, transfer=transfer)
    yield made
    await made.close()
    await remove_node_containers(node_name)


# -- the confined walk itself ------------------------------------------------------------------


def test_confined_open_refuses_every_symlink_on_the_way(tmp_path: Path, host_dir: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "real").mkdir(parents=True)
    (ws / "real" / "f.txt").write_text("inside\n")
    (ws / "out").symlink_to(host_dir)
    (ws / "real" / "link.txt").symlink_to(host_dir / "secret.txt")
    (ws / "real" / "inner.txt").symlink_to("f.txt")  # even inside: not followed
    os.mkfifo(ws / "real" / "fifo")
    fd = open_file(Beneath(ws, "real/f.txt"))
    assert os.read(fd, 100) == b"inside\n"
    os.close(fd)
    for rel in ("out/secret.txt", "real/link.txt", "real/inner.txt", "real/fifo", "../x", "/etc"):
        with pytest.raises(WorkspaceEscape):
            os.close(open_file(Beneath(ws, rel)))
    with pytest.raises(WorkspaceEscape):
        ensure_dir(ws, "out/sub", mode=0o777)
    with pytest.raises(WorkspaceEscape):
        find_files(Beneath(ws, "out"), ["*"])
    files, skipped = find_files(Beneath(ws, "real"), ["*"])
    assert files == ["f.txt"] and skipped == ["fifo", "inner.txt", "link.txt"]
    before = snapshot(host_dir)
    chown_tree(ws, (1234, 1234))
    assert snapshot(host_dir) == before
    assert (ws / "real" / "f.txt").stat().st_uid == 1234
    assert (ws / "out").lstat().st_uid == 1234  # the link itself, not its target


def test_glob_patterns_match_like_path_glob(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    for rel in ("a.txt", "b.bin", "ckpt/1.pt", "ckpt/deep/2.pt", "logs/x.txt"):
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(rel)
    found = lambda *p: find_files(Beneath(tmp_path, "ws"), list(p))[0]  # noqa: E731
    assert found("*.txt") == ["a.txt"]
    assert found("ckpt") == ["ckpt/1.pt", "ckpt/deep/2.pt"]
    assert found("ckpt/*") == ["ckpt/1.pt", "ckpt/deep/2.pt"]
    assert found("**/*.txt") == ["a.txt", "logs/x.txt"]
    assert found("nothing") == []


def test_metrics_file_symlinked_to_the_host_is_not_read(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / ".unidesk").mkdir(parents=True)
    leak = tmp_path / "host.jsonl"
    leak.write_text('{"name": "host", "step": 1, "value": 1}\n')
    (ws / ".unidesk" / "metrics.jsonl").symlink_to(leak)
    feed = DataFeed("t", 1, "metrics", Beneath(ws, ".unidesk/metrics.jsonl"))
    batches, problems = feed.read()
    assert batches == [] and feed.closed
    assert "symlink" in problems[0]


# -- the escapes of the issue, through the real runner ---------------------------------------


@pytest.mark.docker
async def test_command_replacing_outputs_with_a_host_symlink_uploads_nothing(
    file_runner, world, host_dir, recording_server
) -> None:
    _url, seen = recording_server
    before = snapshot(host_dir)
    reporter = FakeReporter()
    dispatch = world.dispatch(
        ["sh", "-c", f"rm -rf /workspace/outputs && ln -s {host_dir} /workspace/outputs"],
        outputs=[FileOutput("secret.txt")],
    )
    outcome = await file_runner.run(dispatch, reporter)
    assert outcome.reason == "exit_nonzero", (outcome, reporter.text("system"))
    assert "outputs" in (outcome.message or "") and "symlink" in (outcome.message or "")
    assert "symlink" in reporter.text("system")
    assert seen == []  # nothing asked of the server, nothing uploaded
    assert snapshot(host_dir) == before


@pytest.mark.docker
async def test_repository_committing_outputs_as_a_host_symlink_is_refused_before_the_command(
    file_runner, world, host_dir, recording_server
) -> None:
    _url, seen = recording_server
    before = snapshot(host_dir)
    sha = world.code.commit({"run.sh": "echo ran\n"}, symlinks={"outputs": str(host_dir)})
    reporter = FakeReporter()
    dispatch = world.dispatch(
        ["sh", "/workspace/run.sh"], code_sha=sha, outputs=[FileOutput("secret.txt")]
    )
    outcome = await file_runner.run(dispatch, reporter)
    assert outcome.reason == "exit_nonzero" and outcome.exit_code is None, outcome
    assert "symlink" in (outcome.message or "")
    assert "running" not in reporter.events  # refused while preparing
    assert seen == []
    assert snapshot(host_dir) == before  # no chmod 0777, no chown


@pytest.mark.docker
async def test_container_runs_as_non_root_owning_its_workspace_and_host_links_stay_untouched(
    runner, world, host_dir
) -> None:
    before = snapshot(host_dir)
    script = "id -u; id -g; touch /workspace/new && echo wrote; ls -ln /workspace/run.sh\n"
    sha = world.code.commit({"run.sh": script}, symlinks={"hostlink": str(host_dir)})
    reporter = FakeReporter()
    outcome = await runner.run(world.dispatch(["sh", "/workspace/run.sh"], code_sha=sha), reporter)
    out = reporter.text("stdout").split()
    assert outcome.reason == "succeeded", (outcome, reporter.text("stderr"))
    assert out[:3] == ["1000", "1000", "wrote"]
    assert "1000" in out[5:7]  # run.sh owned by the container user
    # `.unidesk` committed as a symlink: the metrics dir is not made through it, task refused
    sha = world.code.commit(symlinks={".unidesk": str(host_dir)})
    reporter = FakeReporter()
    outcome = await runner.run(world.dispatch(["sh", "/workspace/run.sh"], code_sha=sha), reporter)
    assert outcome.reason == "exit_nonzero" and "symlink" in (outcome.message or ""), outcome
    assert snapshot(host_dir) == before
    assert stat.S_IMODE(host_dir.stat().st_mode) == 0o700


@pytest.mark.docker
async def test_every_hardening_flag_is_set_as_docker_inspect_shows(
    exec_config, node_name, world, docker, env_image_cleanup
) -> None:
    import msgspec

    from tests.gateway_agent.conftest import remove_node_containers
    from unidesk.gateway_agent.container_spec import container_name
    from unidesk.protocol import AttemptRef

    config = msgspec.structs.replace(exec_config, keep_finished=True)
    runner = DockerRunner(config, node_name=node_name)
    try:
        dispatch = world.dispatch(["sh", "-c", "id -u"], memory_mb=64)
        outcome = await runner.run(dispatch, FakeReporter())
        assert outcome.reason == "succeeded", outcome
        info = await docker.containers.get(
            container_name(AttemptRef(dispatch.task_id, dispatch.attempt_no))
        )
        host = info["HostConfig"]
        assert info["Config"]["User"] == "1000:1000"
        assert host["Privileged"] is False
        assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
        assert host["SecurityOpt"] == ["no-new-privileges:true"]
        assert host["NetworkMode"] == "none"
        assert host["PidsLimit"] == config.pids_limit
        assert host["Memory"] == host["MemorySwap"] == 64 * 1024 * 1024
        assert host["ReadonlyRootfs"] is False  # documented: the container's own layer
        assert host["Init"] is True
        assert not host.get("Devices") and not host.get("DeviceRequests")
        mounts = {m["Destination"]: m for m in info["Mounts"]}
        assert set(mounts) == {"/workspace"} and mounts["/workspace"]["RW"] is True
        assert "/var/run/docker.sock" not in str(info["Mounts"])
    finally:
        await runner.close()
        await remove_node_containers(node_name)
        await runner.workspaces.remove_except(set())


@pytest.mark.docker
async def test_env_declaring_a_user_runs_as_it_and_root_at_build_time_still_works(
    runner, world
) -> None:
    build = f"FROM {world.image}\nRUN mkdir -p /opt/tool && echo built > /opt/tool/x\n"
    env_sha = world.env.commit(
        {"envs/user/Dockerfile": build + "USER 4321:4321\n", "envs/rootbuild/Dockerfile": build}
    )
    script = "id -u; cat /opt/tool/x; touch /workspace/mine && ls -ln /workspace/mine"
    for path, uid in (("envs/user/Dockerfile", "4321"), ("envs/rootbuild/Dockerfile", "1000")):
        reporter = FakeReporter()
        outcome = await runner.run(
            world.dispatch(["sh", "-c", script], env_sha=env_sha, dockerfile_path=path), reporter
        )
        out = reporter.text("stdout").split()
        assert outcome.reason == "succeeded", (outcome, reporter.text("stderr"))
        assert out[0] == uid and out[1] == "built" and out[4] == uid, out
