"""The git cache against real repositories: by-SHA fetch, reuse, concurrency, refused URLs."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from unidesk.gateway_agent.exec_errors import PrepareFailed
from unidesk.gateway_agent.gitcache import GitCache
from unidesk.gateway_agent.repo_url import check_repo_url, redact_url


async def test_fetch_then_checkout_exact_commit(exec_config, make_repo, tmp_path: Path) -> None:
    repo = make_repo()
    first = repo.commit({"a.txt": "one\n", "sub/b.txt": "b\n"})
    repo.commit({"a.txt": "two\n"})
    cache = GitCache(exec_config)
    result = await cache.ensure_commit(repo.url, first)
    assert result.fetched
    dest = tmp_path / "ws"
    dest.mkdir()
    await cache.checkout(repo.url, first, dest)
    assert (dest / "a.txt").read_text() == "one\n"
    assert (dest / "sub/b.txt").read_text() == "b\n"
    assert not (dest / ".git").exists()
    again = await cache.ensure_commit(repo.url, first)
    assert not again.fetched


async def test_incremental_fetch_keeps_older_commits(exec_config, make_repo) -> None:
    repo = make_repo()
    shas = [repo.commit({"f": str(i)}) for i in range(3)]
    cache = GitCache(exec_config)
    await cache.ensure_commit(repo.url, shas[0])
    await cache.ensure_commit(repo.url, shas[2])
    bare = cache.repo_dir(repo.url)
    refs = subprocess.run(
        ["git", f"--git-dir={bare}", "for-each-ref", "--format=%(refname)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert refs == sorted(f"refs/unidesk/{s}" for s in (shas[0], shas[2]))
    assert await cache.has_commit(bare, shas[1])  # history came along with the newer commit


async def test_missing_commit_names_repo_and_commit(exec_config, make_repo) -> None:
    repo = make_repo()
    repo.commit({"f": "x"})
    missing = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(PrepareFailed) as info:
        await GitCache(exec_config).ensure_commit(repo.url, missing)
    assert missing in str(info.value) and str(repo.path) in str(info.value)
    assert "not found" in str(info.value)


async def test_falls_back_to_all_refs_when_sha_wants_are_refused(exec_config, make_repo) -> None:
    repo = make_repo()
    old = repo.commit({"f": "1"})
    repo.commit({"f": "2"})
    repo.git("config", "uploadpack.allowAnySHA1InWant", "false")

    class ProtocolV0Cache(GitCache):
        """Speaks git protocol v0, where a server checks wants against its ref tips (old
        servers)."""

        def _config_args(self) -> list[str]:
            return [*super()._config_args(), "-c", "protocol.version=0"]

    cache = ProtocolV0Cache(exec_config)
    result = await cache.ensure_commit(repo.url, old)
    bare = cache.repo_dir(repo.url)
    assert result.fetched and await cache.has_commit(bare, old)
    heads = subprocess.run(
        ["git", f"--git-dir={bare}", "for-each-ref", "refs/unidesk-heads"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "refs/unidesk-heads/main" in heads  # the all-refs fallback ran


async def test_concurrent_attempts_on_one_repo_fetch_once(exec_config, make_repo, tmp_path) -> None:
    repo = make_repo()
    sha = repo.commit({"f": "x"})
    cache = GitCache(exec_config)
    results = await asyncio.gather(*(cache.ensure_commit(repo.url, sha) for _ in range(5)))
    assert sum(r.fetched for r in results) == 1
    dests = [tmp_path / f"ws{i}" for i in range(5)]
    for d in dests:
        d.mkdir()
    await asyncio.gather(*(cache.checkout(repo.url, sha, d) for d in dests))
    assert all((d / "f").read_text() == "x" for d in dests)


@pytest.mark.parametrize(
    "url, why",
    [
        ("ext::sh -c touch% /tmp/pwned", "'<transport>::'"),
        ("https://example.invalid/r .git", "whitespace"),
        ("ext::sh", "'<transport>::'"),
        ("--upload-pack=touch /tmp/pwned", "starts with '-'"),
        ("-oProxyCommand=x", "starts with '-'"),
        ("http://example.invalid/r.git", "scheme 'http' is not allowed"),
        ("git://example.invalid/r.git", "scheme 'git' is not allowed"),
        ("/srv/repo", "is not https://"),
        ("https://user:hunter2@example.invalid/r.git", "carries credentials"),
        ("https://ghp_token@example.invalid/r.git", "carries credentials"),
    ],
)
async def test_refused_urls_never_reach_git(exec_config, url, why, tmp_path) -> None:
    with pytest.raises(PrepareFailed) as info:
        await GitCache(exec_config).ensure_commit(url, "a" * 40)
    assert why in str(info.value)
    assert "hunter2" not in str(info.value) and "ghp_token" not in str(info.value)
    assert not (Path(exec_config.cache_dir) / "git").exists() or not any(
        p.suffix == ".git" for p in (Path(exec_config.cache_dir) / "git").iterdir()
    )
    assert not Path("/tmp/pwned").exists()


def test_file_urls_only_when_allowed() -> None:
    assert check_repo_url("file:///srv/r", allow_file=True) == "file"
    with pytest.raises(PrepareFailed, match="not allowed on this node"):
        check_repo_url("file:///srv/r", allow_file=False)
    assert check_repo_url("git@github.com:org/repo.git", allow_file=False) == "ssh"
    assert check_repo_url("ssh://git@host/repo", allow_file=False) == "ssh"
    assert check_repo_url("https://github.com/org/repo", allow_file=False) == "https"


def test_redact_url() -> None:
    assert redact_url("https://u:secret@h/x") == "https://***@h/x"
    assert redact_url("fatal: https://tok@h/x failed") == "fatal: https://***@h/x failed"


async def test_short_or_non_hex_commit_is_refused(exec_config, make_repo) -> None:
    repo = make_repo()
    repo.commit()
    with pytest.raises(PrepareFailed, match="not a full"):
        await GitCache(exec_config).ensure_commit(repo.url, "HEAD")


async def test_lock_files_left_by_a_killed_git_are_cleared_and_the_commit_kept(
    exec_config, make_repo
) -> None:
    """An agent killed (-9, its process group with it) mid-fetch leaves git's lock files in the
    cache; the next fetch under the cache's own lock clears them, so the commit gets its ref
    (kept reachable, never pruned) instead of a silent ``cannot lock ref``."""
    repo = make_repo()
    first = repo.commit({"a": "1"})
    cache = GitCache(exec_config)
    await cache.ensure_commit(repo.url, first)
    second = repo.commit({"a": "2"})
    bare = cache.repo_dir(repo.url)
    left = [f"refs/unidesk/{second}.lock", "packed-refs.lock", "shallow.lock", "config.lock"]
    for name in left:
        (bare / name).write_text("")
    assert (await cache.ensure_commit(repo.url, second)).fetched
    refs = subprocess.run(
        ["git", f"--git-dir={bare}", "for-each-ref", "--format=%(refname)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert f"refs/unidesk/{second}" in refs
    assert not [name for name in left if (bare / name).exists()]
