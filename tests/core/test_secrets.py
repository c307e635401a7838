"""The secret store over the real API and PostgreSQL: write-only values, scopes, task references,
dispatch resolution, encryption at rest and key rotation."""

from __future__ import annotations

import os
import re
import stat
import uuid
from typing import Any

import msgspec
import psycopg
import pytest
from litestar.testing import AsyncTestClient

from tests.core.conftest import task_body
from unidesk.core.db.engine import libpq_url
from unidesk.core.ingress.delivery import build_dispatch
from unidesk.core.secrets.keyring import Keyring
from unidesk.core.secrets.rotation import rotate_key
from unidesk.core.secrets.runtime import resolve_into_dispatch
from unidesk.core.settings import Settings
from unidesk.core.tasks.models import AttemptRow, TaskRow

H = dict[str, str]
VALUE = "wandb-5f0e3c1d9a8b7c6d"


def _db_text(database_url: str) -> str:
    """Every secret row and every event as text: what a reader of the database could see."""
    with psycopg.connect(libpq_url(database_url)) as conn:
        rows = conn.execute("SELECT * FROM secrets").fetchall()
        events = conn.execute("SELECT kind, payload::text FROM events").fetchall()
        tasks = conn.execute("SELECT env::text, extra::text FROM tasks").fetchall()
    return repr(rows) + repr(events) + repr(tasks)


async def _put(client: AsyncTestClient, path: str, value: str, headers: H) -> Any:
    return await client.put(f"/api/secrets/{path}", json={"value": value}, headers=headers)


async def test_values_are_write_only_and_every_change_is_an_event(
    client: AsyncTestClient, member_headers: H, admin_headers: H, settings: Settings
) -> None:
    r = await _put(client, "user/wandb", VALUE, member_headers)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["name"] == "wandb" and created["scope"] == "user" and created["ref"] == "wandb"
    assert created["created_by"] == "mia" and VALUE not in r.text
    r = await _put(client, "user/wandb", VALUE + "-v2", member_headers)
    assert r.status_code == 200 and r.json()["updated_by"] == "mia"
    listed = await client.get("/api/secrets", headers=member_headers)
    assert [s["name"] for s in listed.json()["items"]] == ["wandb"]
    assert VALUE not in listed.text
    # Admins see the metadata of every secret, never a value; other members do not see it.
    assert [
        s["name"] for s in (await client.get("/api/secrets", headers=admin_headers)).json()["items"]
    ] == ["wandb"]
    # The value is in no route's answer, the events carry the name only, the row is sealed.
    events = (await client.get("/api/events?limit=100", headers=admin_headers)).json()
    kinds = [e["kind"] for e in events["items"] if e["kind"].startswith("secret")]
    assert kinds[-2:] == ["secret.created", "secret.replaced"] or kinds[:2] == [
        "secret.replaced",
        "secret.created",
    ]
    assert VALUE not in _db_text(settings.database_url or "")
    key_file = settings.data_path / "secrets.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    # Bad names and short values: 400 and nothing written.
    assert (await _put(client, "user/-bad", VALUE, member_headers)).status_code == 400
    assert (await _put(client, "user/ok", "abc", member_headers)).status_code == 400
    # Delete: gone from the list, an event, a second delete is 404.
    assert (
        await client.delete("/api/secrets/user/wandb", headers=member_headers)
    ).status_code == 204
    assert (await client.get("/api/secrets", headers=member_headers)).json()["items"] == []
    assert (
        await client.delete("/api/secrets/user/wandb", headers=member_headers)
    ).status_code == 404


async def test_scopes_decide_who_may_use_a_secret_in_a_task(
    client: AsyncTestClient, member_headers: H, admin_headers: H, settings: Settings
) -> None:
    assert (
        await _put(client, "user/adminkey", "admin-only-value", admin_headers)
    ).status_code == 201
    # Only admins write global secrets.
    assert (await _put(client, "global/hub", "hub-token-value", member_headers)).status_code == 403
    assert (await _put(client, "global/hub", "hub-token-value", admin_headers)).status_code == 201
    assert (await _put(client, "user/mine", "mia-own-value", member_headers)).status_code == 201

    # Another user's secret: 403; an unknown one: 400; nothing is written either way.
    r = await client.post(
        "/api/tasks", json=task_body(secrets={"K": "adminkey"}), headers=member_headers
    )
    assert r.status_code == 403, r.text
    r = await client.post(
        "/api/tasks", json=task_body(secrets={"K": "nope"}), headers=member_headers
    )
    assert r.status_code == 400, r.text
    r = await client.post(
        "/api/tasks", json=task_body(secrets={"K": "not a ref!"}), headers=member_headers
    )
    assert r.status_code == 400
    r = await client.post(
        "/api/tasks",
        json=task_body(env={"K": "x"}, secrets={"K": "mine"}),
        headers=member_headers,
    )
    assert r.status_code == 400 and "once" in r.text

    # Her own secret and the global one: accepted; only references are stored.
    r = await client.post(
        "/api/tasks",
        json=task_body(
            secrets={"MINE": "mine", "HUB": "hub", "HUB2": "global/hub"},
            credentials={"code_repo": "mine"},
        ),
        headers=member_headers,
    )
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["secrets"] == {"MINE": "mine", "HUB": "hub", "HUB2": "global/hub"}
    assert "mia-own-value" not in r.text and "hub-token-value" not in r.text
    trace = (await client.get(f"/api/tasks/{task['id']}/trace", headers=member_headers)).json()
    spec = trace["items"][0]["payload"]["spec"]
    assert spec["secrets"] == {"MINE": "mine", "HUB": "hub", "HUB2": "global/hub"}
    assert "mia-own-value" not in repr(trace)

    # The dispatch of an attempt carries the values (and only a dispatch does).
    state = client.app.state
    async with state.sessions() as s:
        row = await s.get(TaskRow, uuid.UUID(task["id"]))
        attempt = AttemptRow(task_id=row.id, attempt_no=1, node_name="n", gpu_indices=[])
        d = await resolve_into_dispatch(s, state.keyring, row, build_dispatch(row, attempt))
    assert d.secret_env == {
        "MINE": "mia-own-value",
        "HUB": "hub-token-value",
        "HUB2": "hub-token-value",
    }
    assert d.code_repo_credential == "mia-own-value" and d.missing_secrets == []
    assert "mia-own-value" in d.secret_values()

    # A retry re-resolves for whoever retries: the admin may not use mia's secret.
    r = await client.post(f"/api/tasks/{task['id']}/retry", headers=admin_headers)
    assert r.status_code == 403, r.text
    r = await client.post(f"/api/tasks/{task['id']}/retry", headers=member_headers)
    assert r.status_code == 201 and r.json()["secrets"]["MINE"] == "mine"

    # A secret deleted after submit: the dispatch names it as missing (the agent fails the attempt).
    assert (
        await client.delete("/api/secrets/user/mine", headers=member_headers)
    ).status_code == 204
    async with state.sessions() as s:
        row = await s.get(TaskRow, uuid.UUID(task["id"]))
        d = await resolve_into_dispatch(s, state.keyring, row, build_dispatch(row, attempt))
    assert d.missing_secrets == ["mine"] and "MINE" not in d.secret_env
    assert "mia-own-value" not in _db_text(settings.database_url or "")


@pytest.mark.plugins
async def test_project_secret_needs_membership_through_the_plugin(
    client: AsyncTestClient, member_headers: H, admin_headers: H
) -> None:
    p = (await client.post("/api/projects", json={"name": "lab"}, headers=admin_headers)).json()
    path = f"project/{p['id']}/s3key"
    # mia is not a member yet: she may neither set nor use it.
    assert (await _put(client, path, "project-value-1", member_headers)).status_code == 403
    assert (await _put(client, path, "project-value-1", admin_headers)).status_code == 201
    ref = f"project:{p['id']}/s3key"
    r = await client.post("/api/tasks", json=task_body(secrets={"S3": ref}), headers=member_headers)
    assert r.status_code == 403, r.text
    assert all(
        s["name"] != "s3key"
        for s in (await client.get("/api/secrets", headers=member_headers)).json()["items"]
    )
    r = await client.post(
        f"/api/projects/{p['id']}/members", json={"username": "mia"}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/tasks", json=task_body(secrets={"S3": ref}), headers=member_headers)
    assert r.status_code == 201, r.text
    listed = (await client.get("/api/secrets", headers=member_headers)).json()["items"]
    assert [s["ref"] for s in listed] == [ref]
    # A project id the plugin does not know: nobody is a member.
    assert (
        await _put(client, "project/nosuch/x1", "project-value-2", member_headers)
    ).status_code == 403


async def test_rotation_reseals_every_secret_while_the_server_runs(
    client: AsyncTestClient, member_headers: H, admin_headers: H, settings: Settings
) -> None:
    for name in ("a1", "a2"):
        assert (
            await _put(client, f"user/{name}", f"value-of-{name}", member_headers)
        ).status_code == 201
    r = await client.post(
        "/api/tasks", json=task_body(secrets={"A1": "a1", "A2": "a2"}), headers=member_headers
    )
    task_id = uuid.UUID(r.json()["id"])
    state = client.app.state
    old_key_file = (settings.data_path / "secrets.key").read_text()

    # The rotation runs in its own keyring (as the CLI's process would) on the live database.
    other = Keyring(settings.data_path / "secrets.key")
    key_id, count = await rotate_key(state.sessions, other, actor="test")
    assert count == 2
    new_key_file = (settings.data_path / "secrets.key").read_text()
    assert new_key_file.split()[0] == key_id and len(new_key_file.splitlines()) == 1
    assert new_key_file != old_key_file
    with psycopg.connect(libpq_url(settings.database_url or "")) as conn:
        assert {r[0] for r in conn.execute("SELECT key_id FROM secrets")} == {key_id}

    # The running server still resolves (it re-reads the file for the new key) and writes with it.
    async with state.sessions() as s:
        row = await s.get(TaskRow, task_id)
        attempt = AttemptRow(task_id=row.id, attempt_no=1, node_name="n", gpu_indices=[])
        d = await resolve_into_dispatch(s, state.keyring, row, build_dispatch(row, attempt))
    assert d.secret_env == {"A1": "value-of-a1", "A2": "value-of-a2"}
    assert (await _put(client, "user/a3", "value-of-a3", member_headers)).status_code == 201
    with psycopg.connect(libpq_url(settings.database_url or "")) as conn:
        assert {r[0] for r in conn.execute("SELECT key_id FROM secrets")} == {key_id}
    events = (await client.get("/api/events?limit=200", headers=admin_headers)).json()["items"]
    assert any(e["kind"] == "secrets.key_rotated" for e in events)
    assert (await client.get("/health")).json()["checks"].get("secrets") == "ok"
    # A lost key file (a server started with the old one): values are unreadable, with a clear
    # error, never a wrong value; /health says so.
    stale = settings.data_path / "stale.key"
    stale.write_text(old_key_file)
    async with state.sessions() as s:
        row = await s.get(TaskRow, task_id)
        d = await resolve_into_dispatch(s, Keyring(stale), row, build_dispatch(row, attempt))
    # The attempt fails naming them (delivery to other nodes goes on), never a wrong value.
    assert sorted(d.missing_secrets) == ["a1", "a2"] and d.secret_env == {}
    key_file = settings.data_path / "secrets.key"
    key_file.write_text(old_key_file)
    state.health_checks.invalidate()
    health = (await client.get("/health", headers=admin_headers)).json()  # the detail: admins
    assert "missing from" in health["checks"]["secrets"], health
    async with state.sessions() as s:
        row = await s.get(TaskRow, task_id)
        d = await resolve_into_dispatch(s, state.keyring, row, build_dispatch(row, attempt))
    assert sorted(d.missing_secrets) == ["a1", "a2"] and d.secret_env == {}


async def test_no_get_route_ever_returns_a_value(
    client: AsyncTestClient, member_headers: H, admin_headers: H
) -> None:
    """Every GET of the OpenAPI schema, as the owner and as an admin, after a secret was set,
    replaced and used by a task: the value is in no answer."""
    assert (await _put(client, "user/walked", "first-" + VALUE, member_headers)).status_code == 201
    assert (await _put(client, "user/walked", VALUE, member_headers)).status_code == 200
    r = await client.post(
        "/api/tasks", json=task_body(secrets={"W": "walked"}), headers=member_headers
    )
    task_id = r.json()["id"]
    secret_id = (await client.get("/api/secrets", headers=member_headers)).json()["items"][0]["id"]
    schema = (await client.get("/schema/openapi.json")).json()
    walked = 0
    for path, ops in schema["paths"].items():
        if "get" not in ops or "stream" in path:
            continue
        url = path.replace("{task_id}", task_id).replace("{secret_id}", secret_id)
        url = re.sub(r"\{[^}]+\}", task_id, url)
        for headers in (member_headers, admin_headers):
            answer = await client.get(url, headers=headers)
            assert answer.status_code < 500, (url, answer.text)
            assert VALUE not in answer.text, url
            walked += 1
    assert walked > 20


async def test_without_plugins_project_secrets_are_refused_and_the_rest_works(
    settings: Settings,
) -> None:
    """The core runs without plugins: no one answers project membership, so project secrets are
    refused with a clear 400; user and global secrets work."""
    from tests.conftest import ADMIN_PASSWORD, login
    from unidesk.core.app import create_app

    app = create_app(msgspec.structs.replace(settings, plugins="none"), components=[])
    async with AsyncTestClient(app=app) as client:
        admin = await login(client, "admin", ADMIN_PASSWORD)
        r = await _put(client, "project/p1/key", "project-value-3", admin)
        assert r.status_code == 400 and "plugin" in r.json()["detail"], r.text
        assert (await _put(client, "user/k1", "user-value-1", admin)).status_code == 201
        r = await client.post(
            "/api/tasks", json=task_body(secrets={"K": "project:p1/key"}), headers=admin
        )
        assert r.status_code == 400, r.text
        r = await client.post("/api/tasks", json=task_body(secrets={"K": "k1"}), headers=admin)
        assert r.status_code == 201, r.text
