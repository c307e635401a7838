"""Fixtures for execution tests: a private cache dir, real git repositories, the busybox image."""

from __future__ import annotations

from pathlib import Path

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
