"""Private repositories: the git cache fetches with a task's credential for that fetch only,
over ssh:// (a real sshd on loopback, deploy key in a temporary 0600 file, host keys checked)
and https:// (git http-backend behind basic auth and TLS), and refuses clearly without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway_agent.git_https import GitHttps
from tests.integration.test_hostssh import Sshd, sshd  # noqa: F401 (the sshd fixture)
from unidesk.gateway_agent.exec_config import ExecConfig
from unidesk.gateway_agent.gitcache import GitAuth, GitCache, GitFailed

TOKEN = "tok-9f8e7d6c5b4a"


def _leaks(root: Path, *needles: str) -> list[str]:
    """Files under ``root`` (the cache: config, reflogs, FETCH_HEAD, packs …) holding a needle."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {n[:12]}…" for n in needles if n.encode() in data]
    return found


async def test_ssh_repository_with_a_deploy_key(
    exec_config: ExecConfig,
    make_repo,
    sshd: Sshd,  # noqa: F811
) -> None:
    repo = make_repo("private-ssh")
    sha = repo.commit({"train.py": "print('private')\n"})
    url = f"ssh://root@127.0.0.1:{sshd.port}{repo.path}"
    key = (sshd.root / "user_key").read_text()
    hosts = sshd.known_hosts.read_text()
    cache = GitCache(exec_config)

    with pytest.raises(GitFailed) as no_key:
        await cache.ensure_commit(url, sha, GitAuth("", hosts))
    assert "could not fetch" in no_key.value.detail
    assert "access denied (credential missing or wrong)" in no_key.value.detail
    # Host-key checking stays on: the right key but an unknown host is refused.
    with pytest.raises(GitFailed) as unknown_host:
        await cache.ensure_commit(url, sha, GitAuth(key, ""))
    assert "host key not trusted" in unknown_host.value.detail

    result = await cache.ensure_commit(url, sha, GitAuth(key, hosts))
    assert result.fetched
    dest = exec_config.cache_path / "work" / "a"
    dest.mkdir(parents=True)
    await cache.checkout(url, sha, dest)
    assert (dest / "train.py").read_text() == "print('private')\n"
    # The key file is gone; no file of the cache holds the key.
    assert list((exec_config.cache_path / "auth").iterdir()) == []
    key_body = key.splitlines()[1]
    assert _leaks(exec_config.cache_path, key_body) == []

    # The commit is cached now, yet an attempt without the key does not get it.
    with pytest.raises(GitFailed) as cached_no_key:
        await cache.ensure_commit(url, sha, GitAuth("", hosts))
    assert "no access to private repository" in cached_no_key.value.detail
    again = await cache.ensure_commit(url, sha, GitAuth(key, hosts))
    assert not again.fetched


async def test_https_repository_with_a_token(
    exec_config: ExecConfig, make_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo("private-https")
    sha = repo.commit({"env/Dockerfile": "FROM scratch\n"})
    (tmp_path / "tls").mkdir()
    server = GitHttps(tmp_path / "tls", repo.path.parent, "bot", TOKEN)
    monkeypatch.setenv("GIT_SSL_CAINFO", str(server.cert))
    try:
        url = server.url(repo.path.name)
        cache = GitCache(exec_config)
        with pytest.raises(GitFailed) as anonymous:
            await cache.ensure_commit(url, sha)
        assert "access denied (credential missing" in anonymous.value.detail
        with pytest.raises(GitFailed) as wrong:
            await cache.ensure_commit(url, sha, GitAuth("bot:wrong-token"))
        assert "access denied" in wrong.value.detail and "wrong-token" not in wrong.value.detail

        result = await cache.ensure_commit(url, sha, GitAuth(f"bot:{TOKEN}"))
        assert result.fetched
        assert any(a.startswith("Basic ") for a in server.seen_auth)
        # Never in a URL, the cache's config, a reflog or any other file of the cache.
        assert _leaks(exec_config.cache_path, TOKEN) == []
        config = (cache.repo_dir(url) / "config").read_text()
        assert "bot" not in config and "credential" not in config
        assert list((exec_config.cache_path / "auth").iterdir()) == []
        with pytest.raises(GitFailed):
            await cache.ensure_commit(url, sha)  # cached, private: needs the token again
        assert not (await cache.ensure_commit(url, sha, GitAuth(f"bot:{TOKEN}"))).fetched
    finally:
        server.stop()
