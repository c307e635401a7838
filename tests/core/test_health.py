"""/health: ok on a fresh database; degraded (503, with the reason) when the documented path is
not."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import msgspec
import psycopg
from litestar.testing import AsyncTestClient

import unidesk
from tests.conftest import ADMIN_PASSWORD, login
from tests.integration.pg_faults import FaultyPostgres
from unidesk.core.app import create_app
from unidesk.core.db.engine import libpq_url
from unidesk.core.db.migrate import upgrade
from unidesk.core.ops.backup import BackupResult
from unidesk.core.ops.backup_schedule import record_backup
from unidesk.core.settings import Settings


async def test_ok_on_fresh_database(client: AsyncTestClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["reasons"] == []
    assert body["version"] == unidesk.__version__ and body["commit"]
    assert set(body["checks"]) >= {"database", "migrations", "event_stream"}
    assert all(v == "ok" for k, v in body["checks"].items() if k != "backup")


async def test_no_backup_and_no_schedule_is_a_warning_not_ok(client: AsyncTestClient) -> None:
    """A fresh server with no backup and no daily schedule works (200, status ok) but says that
    nothing protects its data; the first backup makes the check ok."""
    r = await client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["reasons"] == []
    assert body["checks"]["backup"].startswith("warning: no backup exists and none is scheduled")
    assert body["warnings"] == [
        "backup: no backup exists and none is scheduled: run `unidesk-server backup`, or set "
        "backup_daily_at for a daily one"
    ]
    state = client.app.state
    await record_backup(
        state.sessions,
        actor="test",
        result=BackupResult(
            path="/x/unidesk-20300101T000000Z.dump",
            size=1,
            entries=1,
            globals_path=None,
            manual=True,
            taken_at="2030-01-01T00:00:00+00:00",
            pruned=[],
            duration_s=0.1,
        ),
    )
    state.health_checks.invalidate()  # results are shared for 1 s
    body = (await client.get("/health")).json()
    assert body["checks"]["backup"] == "ok" and body["warnings"] == []


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
    client: AsyncTestClient,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    database_url: str,
) -> None:
    """An admin reads the check's own words; a member and an anonymous caller the public
    reason."""
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("DELETE FROM alembic_version")
        conn.execute("INSERT INTO alembic_version VALUES ('from_the_future')")
    body = (await client.get("/health", headers=admin_headers)).json()
    assert body["status"] == "degraded" and "from_the_future" in body["checks"]["migrations"]
    for headers in ({}, member_headers):
        public = (await client.get("/health", headers=headers)).json()
        assert public["status"] == "degraded"
        assert "from_the_future" not in str(public)
        assert "unidesk-server migrate" in public["checks"]["migrations"]


async def test_database_stopped_anonymous_reads_a_generic_reason_admin_the_detail(
    settings: Settings, tmp_path: Path
) -> None:
    """PostgreSQL stopped (``pg_ctl stop``): /health and /health/ready are 503 with "database
    unreachable" for anyone; the socket path, database and user name reach only an admin."""
    pg = FaultyPostgres(tmp_path / "faulty")
    try:
        upgrade(pg.url)
        url = urlparse(pg.url)
        user = url.username or ""
        app = create_app(msgspec.structs.replace(settings, database_url=pg.url), components=[])
        async with AsyncTestClient(app=app) as client:
            admin = await login(client, "admin", ADMIN_PASSWORD)
            # The admin's token is resolved (and cached) while the database answers: with it
            # down, only a cached token can be known to be an admin's.
            assert (await client.get("/api/auth/me", headers=admin)).status_code == 200
            pg.stop()
            try:
                client.app.state.health_checks.invalidate()
                for path in ("/health", "/health/ready"):
                    r = await client.get(path)
                    assert r.status_code == 503, r.text
                    body = r.json()
                    assert body["status"] in ("degraded", "not ready")
                    assert body["checks"]["database"].startswith("database unreachable")
                    assert any(
                        x.startswith("database: database unreachable") for x in body["reasons"]
                    )
                    for secret in (pg.socket_dir, "unidesk_faults", ".s.PGSQL", "/tmp"):
                        assert secret not in r.text, (secret, r.text)
                    if user:
                        assert f'"{user}"' not in r.text
                r = await client.get("/health", headers=admin)
                assert r.status_code == 503
                detail = r.json()["checks"]["database"]
                assert not detail.startswith("database unreachable")
                assert pg.socket_dir in detail or "OperationalError" in detail, detail
            finally:
                pg.start()
    finally:
        pg.close()


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
