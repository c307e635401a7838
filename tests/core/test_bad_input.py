"""Bad input, tried as a new user would: each gets the right 4xx problem+json and changes
nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import login
from tests.core.conftest import task_body
from unidesk.core.app import create_app
from unidesk.core.settings import Settings

PROBLEM = "application/problem+json"


def assert_problem(r: Any, status: int, needle: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, f"{r.status_code} {r.text}"
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body = r.json()
    assert body["status"] == status and body["title"] and isinstance(body["detail"], str)
    if needle:
        assert needle in body["detail"], body["detail"]
    return body


def without(field: str) -> dict[str, Any]:
    body = task_body()
    del body[field]
    return body


BAD_TASKS: list[tuple[str, Any, str | None]] = [
    # wrong types
    ("commit is a number", task_body(code_commit_id=12345), "code_commit_id"),
    ("command is a number", task_body(command=5), "command"),
    ("command list of ints", task_body(command=[1, 2]), "command"),
    ("env value not a string", task_body(env={"A": 1}), "env"),
    ("cpus is a word", task_body(resources={"cpus": "many"}), "cpus"),
    ("timeout is a string", task_body(timeout_s="1h"), "timeout_s"),
    ("priority is a float", task_body(priority=1.5), "priority"),
    ("body is a list", [task_body()], None),
    ("body is a string", "run my job", None),
    # missing and unknown fields
    ("missing commit", without("code_commit_id"), "code_commit_id"),
    ("missing command", without("command"), "command"),
    ("missing dockerfile", without("dockerfile_path"), "dockerfile_path"),
    ("unknown field", task_body(image="ubuntu"), "image"),
    ("unknown resource field", task_body(resources={"cpus": 1, "tpus": 4}), "tpus"),
    # commits
    ("short commit", task_body(code_commit_id="abc123"), "code_commit_id"),
    ("non-hex commit", task_body(env_commit_id="g" * 40), "env_commit_id"),
    ("41 hex", task_body(code_commit_id="a" * 41), "code_commit_id"),
    ("branch name", task_body(code_commit_id="main"), "code_commit_id"),
    # dockerfile_path
    ("dotdot", task_body(dockerfile_path="../x"), "dockerfile_path"),
    ("dotdot inside", task_body(dockerfile_path="docker/../../etc/passwd"), "dockerfile_path"),
    ("absolute", task_body(dockerfile_path="/abs/Dockerfile"), "dockerfile_path"),
    ("home", task_body(dockerfile_path="~/Dockerfile"), "dockerfile_path"),
    ("NUL", task_body(dockerfile_path="Docker\x00file"), "dockerfile_path"),
    ("backslash", task_body(dockerfile_path="..\\x"), "dockerfile_path"),
    ("empty path", task_body(dockerfile_path=""), "dockerfile_path"),
    # repository URLs
    ("ext transport", task_body(code_repo_url="ext::sh -c x"), "code_repo_url"),
    (
        "ext transport no space",
        task_body(env_repo_url="ext::sh%20-c%20touch%20/tmp/pwn"),
        "env_repo_url",
    ),
    ("option-like -u", task_body(code_repo_url="-uevil"), "code_repo_url"),
    (
        "option-like --upload-pack",
        task_body(code_repo_url="--upload-pack=touch /tmp/x"),
        "code_repo_url",
    ),
    ("option-like no space", task_body(env_repo_url="--upload-pack=x"), "env_repo_url"),
    ("plain http", task_body(code_repo_url="http://git.example.org/x.git"), "code_repo_url"),
    ("ftp", task_body(code_repo_url="ftp://git.example.org/x.git"), "code_repo_url"),
    ("no scheme", task_body(code_repo_url="git.example.org/x.git"), "code_repo_url"),
    ("ssh without host", task_body(code_repo_url="ssh:///x.git"), "code_repo_url"),
    ("whitespace", task_body(code_repo_url="https://h/x y.git"), "code_repo_url"),
    ("newline", task_body(code_repo_url="https://h/x\n.git"), "code_repo_url"),
    ("empty url", task_body(code_repo_url=""), "code_repo_url"),
    # env names
    ("env name starts with digit", task_body(env={"1A": "x"}), "env"),
    ("env name with dash", task_body(env={"A-B": "x"}), "env"),
    ("env name with equals", task_body(env={"A=B": "x"}), "env"),
    ("env name empty", task_body(env={"": "x"}), "env"),
    # sizes and ranges
    ("name too long", task_body(name="n" * 201), "name"),
    (
        "too many labels",
        task_body(resources={"labels": {f"k{i}": "v" for i in range(33)}}),
        "labels",
    ),
    ("too many args", task_body(command=["x"] * 1025), "command"),
    ("too many env vars", task_body(env={f"V{i}": "x" for i in range(257)}), "env"),
    ("empty command list", task_body(command=[]), "command"),
    ("empty command string", task_body(command=""), "command"),
    ("NUL in command", task_body(command=["echo", "a\x00b"]), "command"),
    ("NUL in shell command", task_body(command="echo a\x00b"), "command"),
    ("zero cpus", task_body(resources={"cpus": 0}), "cpus"),
    ("negative gpus", task_body(resources={"gpus": -1}), "gpus"),
    ("tiny memory", task_body(resources={"memory_mb": 1}), "memory_mb"),
    ("zero timeout", task_body(timeout_s=0), "timeout_s"),
    ("zero attempts", task_body(max_attempts=0), "max_attempts"),
    ("bad label key", task_body(resources={"labels": {"-x": "y"}}), "labels"),
    ("tiny pids limit", task_body(resources={"pids_limit": 1}), "pids_limit"),
    (
        "pids limit above the admin's cap",
        task_body(resources={"pids_limit": 4097}),
        "above this server's cap of 4096 processes (setting max_task_pids_limit",
    ),
]


async def test_bad_tasks_are_400_and_write_nothing(
    client: AsyncTestClient, admin_headers: dict[str, str], counts: Any
) -> None:
    """Every case in BAD_TASKS, in one app (cheaper than one app each); all failures reported
    together."""
    before = counts()
    failures = []
    for case, body, needle in BAD_TASKS:
        r = await client.post("/api/tasks", json=body, headers=admin_headers)
        try:
            assert_problem(r, 400, needle)
        except AssertionError as exc:
            failures.append(f"{case}: {exc}")
    assert not failures, "\n".join(failures)
    assert counts() == before


@pytest.mark.parametrize("raw", [b'{"code_repo_url": ', b"not json", b"\xff\xfe\x00", b"", b"{}{}"])
async def test_malformed_json_is_400(
    client: AsyncTestClient, admin_headers: dict[str, str], counts: Any, raw: bytes
) -> None:
    before = counts()
    r = await client.post(
        "/api/tasks", content=raw, headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert_problem(r, 400)
    assert counts() == before


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"name": "x", "command": ["true"], "extensions": {"a": '
        + b"[" * 5_000
        + b"]" * 5_000
        + b"}}",
    ],
    ids=["deep-array", "deep-object", "deep-in-a-field"],
)
async def test_deeply_nested_json_is_400(
    client: AsyncTestClient,
    admin_headers: dict[str, str],
    counts: Any,
    raw: bytes,
) -> None:
    """Nesting past what the decoder recurses into (any content type: the route decodes the
    body as JSON whatever it says) is a 400 problem, not a 500."""
    before = counts()
    for content_type in ("application/json", "text/plain", None):
        headers = {**admin_headers, **({"Content-Type": content_type} if content_type else {})}
        for method, path in (
            ("POST", "/api/tasks"),
            ("POST", "/api/task-batches"),
            ("PUT", "/api/secrets/user/deep"),
        ):
            r = await client.request(method, path, content=raw, headers=headers)
            assert_problem(r, 400, "nested too deeply")
    assert counts() == before


async def test_oversized_body_is_413(
    client: AsyncTestClient, admin_headers: dict[str, str], settings: Settings, counts: Any
) -> None:
    before = counts()
    big = task_body(env={"BLOB": "x" * 30000, **{f"V{i}": "y" * 30000 for i in range(40)}})
    raw = msgspec.json.encode(big)
    assert len(raw) > settings.max_request_bytes
    r = await client.post(
        "/api/tasks", content=raw, headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert_problem(r, 413)
    assert counts() == before


async def test_url_with_credentials_never_echoed(
    client: AsyncTestClient, admin_headers: dict[str, str]
) -> None:
    r = await client.post(
        "/api/tasks",
        json=task_body(code_repo_url="http://user:s3cr3t-pass@git.example.org/x.git"),
        headers=admin_headers,
    )
    body = assert_problem(r, 400, "code_repo_url")
    assert "s3cr3t-pass" not in r.text, body


@pytest.fixture
async def strict_client(
    settings: Settings,
) -> AsyncIterator[tuple[AsyncTestClient, dict[str, str]]]:
    """The app with ``allow_file_urls`` off (the production default)."""
    app = create_app(msgspec.structs.replace(settings, allow_file_urls=False), components=[])
    async with AsyncTestClient(app=app) as c:
        yield c, await login(c, "admin", "admin-password-123")


async def test_file_urls_refused_unless_allowed(
    strict_client: tuple[AsyncTestClient, dict[str, str]], counts: Any
) -> None:
    c, headers = strict_client
    before = counts()
    r = await c.post(
        "/api/tasks", json=task_body(code_repo_url="file:///srv/repo"), headers=headers
    )
    assert_problem(r, 400, "allow_file_urls")
    assert counts() == before
    assert (await c.post("/api/tasks", json=task_body(), headers=headers)).status_code == 201


async def test_file_urls_accepted_when_allowed(
    client: AsyncTestClient, admin_headers: dict[str, str]
) -> None:
    r = await client.post(
        "/api/tasks",
        json=task_body(code_repo_url="file:///srv/repo", env_repo_url="git@github.com:lab/env.git"),
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    bad = await client.post(
        "/api/tasks", json=task_body(code_repo_url="file://relative/repo"), headers=admin_headers
    )
    assert_problem(bad, 400, "code_repo_url")


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/users", {"username": "x", "password": "short", "role": "member"}),
        ("/api/users", {"username": "../etc", "password": "long-enough-pw", "role": "member"}),
        ("/api/users", {"username": "ok", "password": "long-enough-pw", "role": "root"}),
        ("/api/users", {"username": "ok", "password": "long-enough-pw", "is_admin": True}),
        ("/api/tokens", {"name": ""}),
        ("/api/tokens", {"name": "t", "expires_in_days": 0}),
        ("/api/tokens", {"name": "t", "scope": "all"}),
        ("/api/node-tokens", {"name": "n" * 129}),
        ("/api/node-tokens", {}),
        ("/api/auth/login", {"username": "admin"}),
        ("/api/auth/login", {"username": "", "password": "x"}),
    ],
)
async def test_bad_bodies_elsewhere_are_400(
    client: AsyncTestClient,
    admin_headers: dict[str, str],
    counts: Any,
    path: str,
    body: dict[str, Any],
) -> None:
    before = counts()
    r = await client.post(path, json=body, headers=admin_headers)
    assert_problem(r, 400)
    assert counts() == before


async def test_duplicate_user_is_409(
    client: AsyncTestClient, admin_headers: dict[str, str], counts: Any
) -> None:
    before = counts()
    r = await client.post(
        "/api/users",
        json={"username": "admin", "password": "another-password", "role": "member"},
        headers=admin_headers,
    )
    assert_problem(r, 409)
    assert counts() == before


async def test_unknown_route_and_method(
    client: AsyncTestClient, admin_headers: dict[str, str]
) -> None:
    assert_problem(await client.get("/api/nope", headers=admin_headers), 404)
    assert_problem(await client.delete("/api/tasks", headers=admin_headers), 405)


async def test_pids_limit_within_the_cap_is_kept_and_dispatched(
    client: AsyncTestClient, admin_headers: dict[str, str], database_url: str
) -> None:
    from unidesk.core.ingress.delivery import build_dispatch
    from unidesk.core.tasks.models import AttemptRow, TaskRow

    r = await client.post(
        "/api/tasks", json=task_body(resources={"pids_limit": 1024}), headers=admin_headers
    )
    assert r.status_code == 201, r.text
    assert r.json()["resources"]["pids_limit"] == 1024
    plain = await client.post("/api/tasks", json=task_body(), headers=admin_headers)
    assert plain.json()["resources"]["pids_limit"] is None, "the node's default applies"
    body = r.json()
    row = TaskRow(
        **{k: body[k] for k in ("id", "code_repo_url", "code_commit_id", "env_repo_url")},
        **{k: body[k] for k in ("env_commit_id", "dockerfile_path", "command", "env", "extra")},
        cpus=1.0,
        memory_mb=256,
        timeout_s=60,
    )
    attempt = AttemptRow(attempt_no=1, gpu_indices=[])
    assert build_dispatch(row, attempt).pids_limit == 1024
    row.extra = plain.json()["extra"]
    assert build_dispatch(row, attempt).pids_limit == 0
