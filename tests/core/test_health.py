"""/health: ok on a fresh database; degraded (503, with the reason) when the documented path is
not."""

from __future__ import annotations

from typing import Any

import psycopg
from litestar.testing import AsyncTestClient

import unidesk
from unidesk.core.db.engine import libpq_url


async def test_ok_on_fresh_database(client: AsyncTestClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["reasons"] == []
    assert body["version"] == unidesk.__version__ and body["commit"]
    assert set(body["checks"]) >= {"database", "migrations", "event_stream"}
    assert all(v == "ok" for v in body["checks"].values())


async def test_degraded_when_migrations_are_behind(
    client: AsyncTestClient, database_url: str
) -> None:
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("DELETE FROM alembic_version")
    r = await client.get("/health")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == "ok"
    assert "unidesk-server migrate" in body["checks"]["migrations"]
    assert any(reason.startswith("migrations:") for reason in body["reasons"])


async def test_degraded_when_schema_is_from_another_version(
    client: AsyncTestClient, database_url: str
) -> None:
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("DELETE FROM alembic_version")
        conn.execute("INSERT INTO alembic_version VALUES ('from_the_future')")
    body = (await client.get("/health")).json()
    assert body["status"] == "degraded" and "from_the_future" in body["checks"]["migrations"]


async def test_database_gone_is_503_everywhere_not_500(
    client: AsyncTestClient, admin_headers: dict[str, str], pg_cluster: Any, database_url: str
) -> None:
    name = database_url.split("@/", 1)[1].split("?", 1)[0]
    with pg_cluster.admin_conn() as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    r = await client.get("/health")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "degraded" and body["checks"]["database"] != "ok"
    api = await client.get("/api/tasks", headers=admin_headers)
    assert api.status_code == 503, api.text
    assert api.headers["content-type"].startswith("application/problem+json")
    assert "/health" in api.json()["detail"]
