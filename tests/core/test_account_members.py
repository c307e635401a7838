"""Scheduling accounts have members: only a member (or an admin) may charge a task to an
account; admins add and remove members; a plugin's account (a work item's project) is the
plugin's to check."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.conftest import login
from tests.core.conftest import task_body

PROBLEM = "application/problem+json"


async def _user(client: AsyncTestClient, admin: dict[str, str], name: str) -> dict[str, Any]:
    r = await client.post(
        "/api/users",
        json={"username": name, "password": f"{name}-password", "role": "member"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_only_members_charge_an_account_and_admins_manage_members(
    client: AsyncTestClient,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    counts: Any,
) -> None:
    mia = (await client.get("/api/auth/me", headers=member_headers)).json()
    before = counts()
    r = await client.post("/api/tasks", json=task_body(account="apollo"), headers=member_headers)
    assert r.status_code == 403 and r.headers["content-type"].startswith(PROBLEM), r.text
    assert "not a member of account 'apollo'" in r.json()["detail"], r.text
    r = await client.post(  # a batch names the refused index and submits nothing
        "/api/task-batches",
        json={"tasks": [task_body(), task_body(account="apollo")]},
        headers=member_headers,
    )
    assert r.status_code == 400, r.text
    assert [e["index"] for e in r.json()["errors"]] == [1], r.text
    assert counts() == before

    # Only an admin manages members.
    r = await client.put(f"/api/accounts/apollo/members/{mia['id']}", headers=member_headers)
    assert r.status_code == 403, r.text
    r = await client.put(f"/api/accounts/apollo/members/{mia['id']}", headers=admin_headers)
    assert r.status_code == 200 and r.json()["username"] == "mia", r.text
    r = await client.put(f"/api/accounts/apollo/members/{mia['id']}", headers=admin_headers)
    assert r.status_code == 200, r.text  # adding again changes nothing
    r = await client.put(
        "/api/accounts/apollo/members/00000000-0000-0000-0000-000000000001", headers=admin_headers
    )
    assert r.status_code == 404, r.text
    for bad in ("-x", "a%20b", "x" * 65):
        r = await client.put(f"/api/accounts/{bad}/members/{mia['id']}", headers=admin_headers)
        assert r.status_code in (400, 404), (bad, r.text)

    t = await client.post("/api/tasks", json=task_body(account="apollo"), headers=member_headers)
    assert t.status_code == 201 and t.json()["account"] == "apollo", t.text
    listed = (await client.get("/api/accounts", headers=member_headers)).json()["items"]
    assert [(a["account"], [m["username"] for m in a["members"]]) for a in listed] == [
        ("apollo", ["mia"])
    ]
    # Another member is not let in by mia's membership; an admin may charge any account.
    await _user(client, admin_headers, "otto")
    otto = await login(client, "otto", "otto-password")
    r = await client.post("/api/tasks", json=task_body(account="apollo"), headers=otto)
    assert r.status_code == 403, r.text
    r = await client.post("/api/tasks", json=task_body(account="zeus"), headers=admin_headers)
    assert r.status_code == 201, r.text

    # Removed: new tasks and retries are refused; the task already submitted keeps its account.
    r = await client.delete(f"/api/accounts/apollo/members/{mia['id']}", headers=admin_headers)
    assert r.status_code == 204, r.text
    r = await client.delete(f"/api/accounts/apollo/members/{mia['id']}", headers=admin_headers)
    assert r.status_code == 404, r.text
    r = await client.post("/api/tasks", json=task_body(account="apollo"), headers=member_headers)
    assert r.status_code == 403, r.text
    await client.post(f"/api/tasks/{t.json()['id']}/cancel", headers=member_headers)
    r = await client.post(f"/api/tasks/{t.json()['id']}/retry", headers=member_headers)
    assert r.status_code == 403, r.text
    kept = (await client.get(f"/api/tasks/{t.json()['id']}", headers=member_headers)).json()
    assert kept["account"] == "apollo"
    assert (await client.get("/api/accounts", headers=admin_headers)).json()["items"] == []

    events = (await client.get("/api/events?subject_type=account", headers=admin_headers)).json()
    assert [e["kind"] for e in events["items"]] == [
        "account.member_added",
        "account.member_removed",
    ]
