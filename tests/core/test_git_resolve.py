"""POST /api/git/resolve: a branch or tag to its commit with real git (file:// repos made here,
and a real smart-HTTPS server on loopback), and every refusal a clear 4xx that changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import ADMIN_PASSWORD, login
from tests.gateway_agent.git_https import GitHttps
from tests.gateway_agent.gitrepos import GitRepo
from unidesk.core.app import create_app
from unidesk.core.settings import Settings

PROBLEM = "application/problem+json"
TOKEN = "resolve-token-5f2a9c"


@pytest.fixture
def repo(tmp_path: Path) -> tuple[GitRepo, dict[str, str]]:
    r = GitRepo(tmp_path / "repos" / "code")
    first = r.commit({"a.txt": "1"})
    r.git("tag", "-a", "v1", "-m", "release 1")  # annotated: resolves to the commit, not the tag
    r.git("tag", "light")
    second = r.commit({"a.txt": "2"})
    r.git("branch", "feature/x", first)
    return r, {"first": first, "second": second}


async def resolve(client: AsyncTestClient, headers: dict[str, str], **body: Any) -> Any:
    return await client.post("/api/git/resolve", json=body, headers=headers)


async def test_branches_tags_head_and_commits_resolve_to_full_commit_ids(
    client: AsyncTestClient, member_headers: dict[str, str], repo: Any, counts: Any
) -> None:
    r, sha = repo
    before = counts()
    for ref, commit, kind, full in (
        ("main", sha["second"], "branch", "refs/heads/main"),
        ("feature/x", sha["first"], "branch", "refs/heads/feature/x"),
        ("v1", sha["first"], "tag", "refs/tags/v1"),
        ("light", sha["first"], "tag", "refs/tags/light"),
        ("HEAD", sha["second"], "head", "HEAD"),
        ("refs/tags/v1", sha["first"], "tag", "refs/tags/v1"),
        (sha["first"], sha["first"], "commit", None),
    ):
        got = await resolve(client, member_headers, repo_url=r.url, ref=ref)
        assert got.status_code == 200, (ref, got.text)
        assert got.json() == {
            "repo_url": r.url,
            "ref": ref,
            "commit": commit,
            "kind": kind,
            "full_ref": full,
        }, ref
    assert counts() == before  # a lookup: nothing written


async def test_unknown_refs_and_unreadable_repos_are_clear_4xx(
    client: AsyncTestClient, member_headers: dict[str, str], repo: Any, tmp_path: Path
) -> None:
    r, _ = repo
    got = await resolve(client, member_headers, repo_url=r.url, ref="nope")
    assert got.status_code == 404 and got.headers["content-type"].startswith(PROBLEM)
    assert "no branch or tag named 'nope'" in got.json()["detail"]
    got = await resolve(client, member_headers, repo_url=f"file://{tmp_path}/absent", ref="main")
    assert got.status_code == 422 and "could not read" in got.json()["detail"]
    got = await resolve(
        client, member_headers, repo_url="https://no-such-host.invalid/x.git", ref="main"
    )
    assert got.status_code == 422 and "does not resolve" in got.json()["detail"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"repo_url": "/srv/repo", "ref": "main"}, "scheme"),
        ({"repo_url": "ext::sh -c id", "ref": "main"}, "repo_url"),
        ({"repo_url": "-uhttps://x/y", "ref": "main"}, "repo_url"),
        ({"repo_url": "http://example.org/x.git", "ref": "main"}, "scheme"),
        ({"repo_url": "https://example.org/x.git", "ref": "--upload-pack=sh"}, "ref"),
        ({"repo_url": "https://example.org/x.git", "ref": "a..b"}, "ref"),
        ({"repo_url": "https://example.org/x.git", "ref": "main branch"}, "ref"),
        ({"repo_url": "https://example.org/x.git", "ref": "x@{1}"}, "ref"),
        ({"repo_url": "https://example.org/x.git", "ref": ""}, "ref"),
        ({"repo_url": "https://example.org/x.git"}, "ref"),
        ({"repo_url": "https://example.org/x.git", "ref": "main", "extra": 1}, "extra"),
    ],
)
async def test_bad_requests_are_400(
    client: AsyncTestClient, member_headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    got = await client.post("/api/git/resolve", json=body, headers=member_headers)
    assert got.status_code == 400, got.text
    assert got.headers["content-type"].startswith(PROBLEM) and field in got.text


@pytest.fixture
async def production_client(
    settings: Settings,
) -> AsyncIterator[tuple[AsyncTestClient, dict[str, str]]]:
    """The production defaults: no file:// URLs, public hosts only."""
    strict = msgspec.structs.replace(
        settings, allow_file_urls=False, git_resolve_private_hosts=False
    )
    async with AsyncTestClient(app=create_app(strict, components=[])) as c:
        yield c, await login(c, "admin", ADMIN_PASSWORD)


@pytest.fixture
async def private_client(
    settings: Settings,
) -> AsyncIterator[tuple[AsyncTestClient, dict[str, str]]]:
    """A server allowed to read repositories on loopback (the test's git server)."""
    loose = msgspec.structs.replace(settings, git_resolve_private_hosts=True)
    async with AsyncTestClient(app=create_app(loose, components=[])) as c:
        yield c, await login(c, "admin", ADMIN_PASSWORD)


@pytest.fixture
def https_repo(repo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    r, sha = repo
    r.git("config", "http.receivepack", "false")
    (tmp_path / "tls").mkdir()
    server = GitHttps(tmp_path / "tls", r.path.parent, "bot", TOKEN)
    monkeypatch.setenv("GIT_SSL_CAINFO", str(server.cert))
    yield server.url(r.path.name), sha
    server.stop()


async def test_local_paths_and_private_hosts_are_refused_by_default(
    production_client: tuple[AsyncTestClient, dict[str, str]], repo: Any, https_repo: Any
) -> None:
    c, headers = production_client
    r, _ = repo
    got = await resolve(c, headers, repo_url=r.url, ref="main")
    assert got.status_code == 400 and "allow_file_urls" in got.json()["detail"]
    url, _ = https_repo
    got = await resolve(c, headers, repo_url=url, ref="main")
    assert got.status_code == 422, got.text
    assert "non-public address" in got.json()["detail"]
    assert "git_resolve_private_hosts" in got.json()["detail"]


async def test_private_https_repo_resolves_with_a_secret_credential_never_echoed(
    private_client: tuple[AsyncTestClient, dict[str, str]], https_repo: Any
) -> None:
    c, headers = private_client
    url, sha = https_repo
    anonymous = await resolve(c, headers, repo_url=url, ref="main")
    assert anonymous.status_code == 422 and "could not read" in anonymous.json()["detail"]
    put = await c.put("/api/secrets/user/git-bot", json={"value": f"bot:{TOKEN}"}, headers=headers)
    assert put.status_code in (200, 201), put.text
    got = await resolve(c, headers, repo_url=url, ref="v1", credential="git-bot")
    assert got.status_code == 200, got.text
    assert got.json()["commit"] == sha["first"] and got.json()["kind"] == "tag"
    assert TOKEN not in got.text
    await c.put("/api/secrets/user/git-bad", json={"value": "bot:wrong"}, headers=headers)
    wrong = await resolve(c, headers, repo_url=url, ref="main", credential="git-bad")
    assert wrong.status_code == 422 and "wrong" not in wrong.text
    missing = await resolve(c, headers, repo_url=url, ref="main", credential="no-such")
    assert missing.status_code == 400 and missing.json()["field"] == "credential"


async def test_resolves_are_rate_limited_per_user(
    settings: Settings, repo: Any, counts: Any
) -> None:
    """Each resolve runs git against a remote for any member: a user gets
    ``git_resolve_per_user`` of them per window, then 429; another user is not held back."""
    r, sha = repo
    few = msgspec.structs.replace(settings, git_resolve_per_user=3, git_resolve_window_s=600)
    async with AsyncTestClient(app=create_app(few, components=[])) as c:
        admin = await login(c, "admin", ADMIN_PASSWORD)
        body = {"username": "mia", "password": "member-password", "role": "member"}
        assert (await c.post("/api/users", json=body, headers=admin)).status_code == 201
        mia = await login(c, "mia", "member-password")
        before = counts()
        got = [await resolve(c, mia, repo_url=r.url, ref=ref) for ref in ("main", "v1", "nope")]
        assert [g.status_code for g in got] == [200, 200, 404], [g.text for g in got]
        refused = await resolve(c, mia, repo_url=r.url, ref="main")
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"].startswith(PROBLEM)
        assert "too many git resolves" in refused.json()["detail"]
        assert 0 < int(refused.headers["retry-after"]) <= 601
        ok = await resolve(c, admin, repo_url=r.url, ref="main")
        assert ok.status_code == 200 and ok.json()["commit"] == sha["second"], ok.text
        assert counts() == before
