"""Node caches under real, small caps: LRU eviction of git repositories, input files and env
images, never an entry an attempt holds; sizes; clear; a running Docker attempt keeps its own."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiodocker
import msgspec
import pytest

from tests.gateway_agent.conftest import remove_node_containers
from tests.gateway_agent.fake_reporter import FakeReporter
from unidesk.gateway_agent.caches import CacheKeeper, CacheUses, dir_bytes
from unidesk.gateway_agent.docker_runner import DockerRunner
from unidesk.gateway_agent.exec_config import ExecConfig
from unidesk.gateway_agent.gitcache import GitCache
from unidesk.gateway_agent.images import ImageLedger
from unidesk.gateway_agent.keyed_lock import KeyedLock
from unidesk.protocol import AttemptRef

KB = 1024


def keeper_for(git: GitCache, cache: Path, **caps: int) -> CacheKeeper:
    return CacheKeeper(
        cache,
        uses=git.uses,
        git_locks=git.locks,
        input_locks=KeyedLock(cache / "files" / "locks"),
        ledger=ImageLedger(cache),
        **caps,
    )


def add_input(cache: Path, name: str, size: int, mtime: float) -> Path:
    d = cache / "files" / "sha256"
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_bytes(os.urandom(size))
    os.utime(p, (mtime, mtime))
    return p


async def test_git_cache_evicts_least_recently_used_but_never_one_in_use(
    exec_config: ExecConfig, make_repo, tmp_path: Path
) -> None:
    git = GitCache(exec_config)
    repos = []
    for name in ("a", "b", "c"):
        repo = make_repo(name)
        sha = repo.commit({"blob.bin": os.urandom(300 * KB)})  # incompressible: ~300 KB each
        repos.append((repo, sha))
    held = AttemptRef("t-held", 1)
    await git.ensure_commit(repos[0][0].url, repos[0][1], owner=held)  # oldest, but in use
    for repo, sha in repos[1:]:
        await git.ensure_commit(repo.url, sha)
        await asyncio.sleep(0.01)
    sizes = {r.url: dir_bytes(git.repo_dir(r.url)) for r, _ in repos}
    assert all(s > 250 * KB for s in sizes.values())
    cap = sizes[repos[0][0].url] + sizes[repos[2][0].url] + 50 * KB  # room for two
    keeper = keeper_for(git, exec_config.cache_path, git_cap_mb=1)
    keeper.caps["git"] = cap
    removed = await keeper.evict(None)
    assert removed["git"] == [git.repo_dir(repos[1][0].url).name]  # b: least recently used, free
    assert git.repo_dir(repos[0][0].url).exists() and git.repo_dir(repos[2][0].url).exists()
    [usage] = [c for c in keeper.last if c.name == "git"]
    assert usage.entries == 2 and usage.bytes <= cap and usage.cap_bytes == cap

    keeper.caps["git"] = 1  # nothing fits: everything not in use goes
    await keeper.evict(None)
    assert git.repo_dir(repos[0][0].url).exists() and not git.repo_dir(repos[2][0].url).exists()
    git.uses.release(held)
    await keeper.evict(None)
    assert not git.repo_dir(repos[0][0].url).exists()
    # An evicted repository is fetched again when a task needs it.
    result = await git.ensure_commit(repos[0][0].url, repos[0][1])
    assert result.fetched


async def test_input_cache_lru_clear_and_holds(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    uses = CacheUses()
    keeper = CacheKeeper(
        cache,
        uses=uses,
        git_locks=KeyedLock(cache / "git" / "locks"),
        input_locks=KeyedLock(cache / "files" / "locks"),
        ledger=ImageLedger(cache),
        input_cap_mb=1,
    )
    now = 2_000_000_000.0
    old = add_input(cache, "a" * 64, 400 * KB, now - 300)
    held = add_input(cache, "b" * 64, 400 * KB, now - 200)
    new = add_input(cache, "c" * 64, 400 * KB, now - 100)
    uses.hold("attempt-1", "inputs", held.name)
    removed = await keeper.evict(None)  # 1.2 MB > 1 MB: the oldest goes
    assert removed["inputs"] == [old.name]
    assert held.exists() and new.exists()
    removed = await keeper.evict(None, clear=True)
    assert removed["inputs"] == [new.name] and held.exists()
    assert [(c.name, c.entries) for c in keeper.last] == [("git", 0), ("inputs", 1), ("images", 0)]
    uses.release("attempt-1")
    await keeper.evict(None, clear=True)
    assert not held.exists()


def test_auto_caps_are_shares_of_the_free_disk(tmp_path: Path) -> None:
    import shutil

    cache = tmp_path / "cache"
    cache.mkdir()
    free = shutil.disk_usage(cache).free
    keeper = CacheKeeper(
        cache,
        uses=CacheUses(),
        git_locks=KeyedLock(cache / "l1"),
        input_locks=KeyedLock(cache / "l2"),
        ledger=ImageLedger(cache),
    )
    for name, share in (("git", 0.10), ("inputs", 0.20), ("images", 0.30)):
        assert abs(keeper.caps[name] - share * free) < 0.01 * free, name


async def test_running_attempt_keeps_its_repository_and_env_image(
    exec_config: ExecConfig, world, node_name: str, env_image_cleanup, docker
) -> None:
    """A real Docker attempt: while it runs, clearing the caches leaves its repository and env
    image; after it ends they go, and the sizes say so."""
    config = msgspec.structs.replace(exec_config, git_cache_mb=1, input_cache_mb=1)
    runner = DockerRunner(config, node_name=node_name)
    try:
        reporter = FakeReporter()
        dispatch = world.dispatch(["sh", "-c", "echo started; sleep 45"])
        run = asyncio.create_task(runner.run(dispatch, reporter))
        await asyncio.wait_for(reporter.started.wait(), 90)
        removed = await runner.clear_caches()
        code_repo = runner.git.repo_dir(world.code.url)
        # The env repository was needed only for the build; the code repository stays held.
        assert removed["git"] == [runner.git.repo_dir(world.env.url).name]
        assert removed["images"] == [] and code_repo.exists()
        usage = {c.name: c for c in await runner.cache_usage()}
        assert usage["git"].entries >= 1 and usage["images"].entries >= 1
        assert usage["git"].cap_bytes == 1024 * 1024
        await runner.stop(AttemptRef(dispatch.task_id, 1), "cancelled")
        assert (await asyncio.wait_for(run, 60)).reason == "cancelled"
        removed = await runner.clear_caches()
        assert code_repo.name in removed["git"] and len(removed["images"]) >= 1
        assert not code_repo.exists()
        usage = {c.name: c for c in await runner.cache_usage()}
        assert usage["git"].entries == 0
        with pytest.raises(aiodocker.DockerError):
            await docker.images.inspect(removed["images"][0])
    finally:
        await runner.close()
        await remove_node_containers(node_name)
