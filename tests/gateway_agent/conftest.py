"""Fixtures for execution tests: a private cache dir, real git repositories, the busybox image."""

from __future__ import annotations

from pathlib import Path

import aiodocker
import pytest

from tests.docker_images import ensure_busybox_image
from tests.gateway_agent.gitrepos import GitRepo
from unidesk.gateway_agent.exec_config import ExecConfig


@pytest.fixture
def exec_config(tmp_path: Path) -> ExecConfig:
    return ExecConfig(cache_dir=str(tmp_path / "cache"), allow_file_urls=True, stop_grace_s=1,
                      pids_limit=256, docker_timeout_s=10.0)


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
                    try:
                        await client.images.delete(tag, force=True)
                    except aiodocker.DockerError:
                        pass
