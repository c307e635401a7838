"""The access policy (``unidesk/core/auth/policy.py``): members read everything, only owners and
admins act on a task; secret-looking env names and option-like repository URLs are refused."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.core.conftest import task_body

PROBLEM = "application/problem+json"


@pytest.fixture
async def other_headers(client: AsyncTestClient, admin_headers: dict[str, str]) -> dict[str, str]:
    from tests.conftest import login

    r = await client.post(
        "/api/users",
        json={"username": "otto", "password": "other-password", "role": "member"},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    return await login(client, "otto", "other-password")


async def test_members_read_every_task_but_only_owner_or_admin_act(
    client: AsyncTestClient,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    other_headers: dict[str, str],
    counts: Any,
) -> None:
    r = await client.post("/api/tasks", json=task_body(), headers=member_headers)
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["allowed_actions"] == ["cancel", "retry", "delete", "change"]
    tid = task["id"]
    for path in (f"/api/tasks/{tid}", f"/api/tasks/{tid}/trace", f"/api/tasks/{tid}/logs"):
        for headers in (other_headers, admin_headers):
            assert (await client.get(path, headers=headers)).status_code == 200, path
    seen = (await client.get(f"/api/tasks/{tid}", headers=other_headers)).json()
    assert seen["allowed_actions"] == []
    listed = (await client.get("/api/tasks", headers=other_headers)).json()["items"]
    assert [t["allowed_actions"] for t in listed if t["id"] == tid] == [[]]
    before = counts()
    for verb in ("cancel", "retry"):
        r = await client.post(f"/api/tasks/{tid}/{verb}", headers=other_headers)
        assert r.status_code == 403, r.text
        assert r.headers["content-type"].startswith(PROBLEM)
        assert "only the task's owner or an admin" in r.json()["detail"]
    assert counts() == before
    admin_view = (await client.get(f"/api/tasks/{tid}", headers=admin_headers)).json()
    assert admin_view["allowed_actions"] == ["cancel", "retry", "delete", "change"]
    r = await client.post(f"/api/tasks/{tid}/retry", headers=member_headers)
    assert r.status_code == 201, r.text
    assert (await client.post(f"/api/tasks/{tid}/cancel", headers=admin_headers)).status_code == 200


@pytest.mark.parametrize(
    "name", ["WANDB_API_KEY", "GITHUB_TOKEN", "db_password", "MY_SECRET", "AWS_REGION", "PASSWORD"]
)
async def test_secret_looking_env_names_are_refused_pointing_to_secrets(
    client: AsyncTestClient, member_headers: dict[str, str], counts: Any, name: str
) -> None:
    before = counts()
    r = await client.post("/api/tasks", json=task_body(env={name: "x"}), headers=member_headers)
    assert r.status_code == 400, r.text
    assert "secrets" in r.json()["detail"] and name in r.json()["detail"]
    assert counts() == before


async def test_plain_env_names_still_pass(
    client: AsyncTestClient, member_headers: dict[str, str]
) -> None:
    env = {"SEED": "1", "KEYBOARD": "us", "TOKENIZER": "bpe"}
    r = await client.post("/api/tasks", json=task_body(env=env), headers=member_headers)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    "url",
    [
        "ssh://-oProxyCommand=touch%20/tmp/pwn/x",
        "ssh://-oProxyCommand=id@host/repo.git",
        "ssh://git@host/-upload-pack=id",
        "git@-oProxyCommand=id:repo.git",
        "https://host/repo.git?-c=x",
        "ssh://%2doProxyCommand=id/x",
        "https://[::1",
    ],
)
async def test_option_like_repository_urls_are_refused(
    client: AsyncTestClient, member_headers: dict[str, str], counts: Any, url: str
) -> None:
    before = counts()
    for field in ("code_repo_url", "env_repo_url"):
        r = await client.post("/api/tasks", json=task_body(**{field: url}), headers=member_headers)
        assert r.status_code == 400, (url, r.text)
        assert r.headers["content-type"].startswith(PROBLEM)
    assert counts() == before


@pytest.mark.parametrize(
    "path", ["/api/users", f"/api/node-tokens/{'0' * 8}-0000-0000-0000-{'0' * 12}"]
)
async def test_options_without_credentials_is_never_a_500(
    client: AsyncTestClient, path: str
) -> None:
    r = await client.options(path)
    assert r.status_code < 500, r.text


@pytest.mark.parametrize("query", ["after=" + "9" * 26, "kind=a%00b"])
async def test_bad_event_queries_are_400_not_500(
    client: AsyncTestClient, member_headers: dict[str, str], query: str
) -> None:
    r = await client.get(f"/api/events?{query}", headers=member_headers)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/tasks", task_body(name="a\x00b")),
        ("POST", "/api/tasks", task_body(env={"A": "x\x00"})),
        ("POST", "/api/tasks", task_body(resources={"labels": {"k": "v\x00"}})),
        ("GET", "/api/files/by-name/a%00b", None),
        ("GET", "/api/tasks?q=a%00b", None),
        ("POST", "/api/research/experiments", {"name": "e\x00"}),
    ],
)
async def test_a_nul_anywhere_in_a_request_is_400_at_the_edge(
    client: AsyncTestClient,
    member_headers: dict[str, str],
    counts: Any,
    method: str,
    path: str,
    body: Any,
) -> None:
    before = counts()
    r = await client.request(method, path, json=body, headers=member_headers)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith(PROBLEM) and "NUL" in r.json()["detail"]
    assert counts() == before


async def test_nul_in_a_research_metric_name_is_400(
    client: AsyncTestClient, member_headers: dict[str, str]
) -> None:
    e = await client.post("/api/research/experiments", json={"name": "e"}, headers=member_headers)
    assert e.status_code == 201, e.text
    r = await client.post(
        f"/api/research/runs/{e.json()['id']}/metrics",
        json={"items": [{"name": "lo\x00ss", "step": 1, "value": 0.5}]},
        headers=member_headers,
    )
    assert r.status_code == 400, r.text


def test_allowed_actions_follow_the_policy() -> None:
    import uuid

    from unidesk.core.auth.policy import allowed_actions
    from unidesk.core.auth.schemas import Principal

    def who(role: str) -> Principal:
        return Principal(user_id=uuid.uuid4(), username=role, role=role, token_id=uuid.uuid4())  # type: ignore[arg-type]

    admin, member = who("admin"), who("member")
    assert allowed_actions(admin, "node") == [
        "drain",
        "undrain",
        "delete",
        "maintenance",
        "clear_caches",
    ]
    assert allowed_actions(member, "node") == []
    assert allowed_actions(member, "task", member.user_id) == [
        "cancel",
        "retry",
        "delete",
        "change",
    ]
    assert allowed_actions(member, "task", uuid.uuid4()) == []
    assert allowed_actions(member, "task", None) == []
    assert allowed_actions(admin, "artifact", uuid.uuid4()) == ["delete", "change"]


async def test_me_lists_the_admin_only_actions_the_policy_allows(
    client: AsyncTestClient, admin_headers: dict[str, str], member_headers: dict[str, str]
) -> None:
    from tests.conftest import ADMIN_PASSWORD
    from unidesk.core.auth.policy import ADMIN_ACTIONS

    admin = (await client.get("/api/auth/me", headers=admin_headers)).json()
    assert admin["allowed_actions"] == {k: list(v) for k, v in ADMIN_ACTIONS.items()}
    assert "drain" in admin["allowed_actions"]["node"]
    member = (await client.get("/api/auth/me", headers=member_headers)).json()
    assert member["allowed_actions"] == {}
    # The login answer carries the same, so the UI needs no second call.
    r = await client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.json()["user"]["allowed_actions"] == admin["allowed_actions"]
    client.cookies.clear()
    # A node token an admin issues is never the server's own local one.
    r = await client.post("/api/node-tokens", json={"name": "local:not-me"}, headers=admin_headers)
    assert r.status_code == 201, r.text
    assert r.json()["token"]["server_local"] is False
