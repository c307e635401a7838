"""Fixtures for execution tests: a private cache dir, real git repositories, the busybox image."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import aiodocker
import pytest

from tests.docker_images import ensure_busybox_image
from tests.gateway_agent.gitrepos import GitRepo
from unidesk.gateway_agent.docker_runner import DockerRunner
from unidesk.gateway_agent.exec_config import ExecConfig
from unidesk.protocol import Dispatch


@pytest.fixture
def exec_config(tmp_path: Path) -> ExecConfig:
    return ExecConfig(
        cache_dir=str(tmp_path / "cache"),
        allow_file_urls=True,
        stop_grace_s=1,
        pids_limit=256,
        docker_timeout_s=10.0,
    )


@pytest.fixture
def make_repo(tmp_path: Path):
    made: list[GitRepo] = []

    def make(name: str = "repo") -> GitRepo:
        repo = GitRepo(tmp_path / "repos" / f"{name}-{len(made)}")
        made.append(repo)
        return repo

    return make


@pytest.fixture(scope="session")
def busybox_image() -> str:
    return ensure_busybox_image()


@pytest.fixture
async def docker():
    client = aiodocker.Docker(url="unix:///var/run/docker.sock")
    yield client
    await client.close()


@pytest.fixture
async def env_image_cleanup(tmp_path: Path):
    """Remove the env images a test built from its own repositories (tags carry tmp paths)."""
    yield
    async with aiodocker.Docker(url="unix:///var/run/docker.sock") as client:
        images = await client.images.list(filters={"label": ["unidesk.env"]})
        for image in images:
            repo = (image.get("Labels") or {}).get("unidesk.env.repo", "")
            if repo.startswith(f"file://{tmp_path}"):
                for tag in image.get("RepoTags") or []:
                    with contextlib.suppress(aiodocker.DockerError):
                        await client.images.delete(tag, force=True)


class ExecWorld:
    """A code repo and an env repo (FROM the busybox test image) for DockerRunner tests."""

    def __init__(self, make_repo, image: str) -> None:
        self.code = make_repo("code")
        self.env = make_repo("env")
        self.image = image
        self.code_sha = self.code.commit({"hello.txt": "hello from the pinned commit\n"})
        self.env_sha = self.env.commit(
            {"envs/base/Dockerfile": f"FROM {image}\nRUN echo env-built\n"}
        )

    def dispatch(
        self,
        command: list[str],
        *,
        task_id: str | None = None,
        attempt_no: int = 1,
        code_sha: str | None = None,
        env_sha: str | None = None,
        dockerfile_path: str = "envs/base/Dockerfile",
        **kw,
    ) -> Dispatch:
        return Dispatch(
            task_id=task_id or f"t{uuid.uuid4().hex[:12]}",
            attempt_no=attempt_no,
            code_repo_url=kw.pop("code_repo_url", self.code.url),
            code_commit_id=code_sha or self.code_sha,
            env_repo_url=kw.pop("env_repo_url", self.env.url),
            env_commit_id=env_sha or self.env_sha,
            dockerfile_path=dockerfile_path,
            command=command,
            **kw,
        )


@pytest.fixture
def world(make_repo, busybox_image) -> ExecWorld:
    return ExecWorld(make_repo, busybox_image)


@pytest.fixture
def node_name() -> str:
    """A node name of its own per test, so label queries never see other tests' containers."""
    return f"test-node-{uuid.uuid4().hex[:10]}"


async def remove_node_containers(node: str) -> list[str]:
    async with aiodocker.Docker(url="unix:///var/run/docker.sock") as client:
        found = await client.containers.list(all=True, filters={"label": [f"unidesk.node={node}"]})
        for container in found:
            await container.delete(force=True)
        return [c.id for c in found]


@pytest.fixture
async def runner(exec_config, node_name, env_image_cleanup):
    made = DockerRunner(exec_config, node_name=node_name)
    yield made
    await made.close()
    await remove_node_containers(node_name)
