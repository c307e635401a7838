"""The core with no plugin loaded (``plugins = "none"``): every core route answers (never a
500) and no plugin route exists, and the scheduler places a task on a real agent that runs it.
scripts/test.sh also runs the core's tests a second time with UNIDESK_PLUGINS=none."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from alembic.util.exc import CommandError
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from tests.conftest import ADMIN_PASSWORD, login
from tests.integration.conftest import AgentProcess, node_token, wait_online, wait_state
from unidesk.core.app import create_app
from unidesk.core.db.engine import libpq_url
from unidesk.core.db.migrate import expected_heads, upgrade
from unidesk.core.plugins.facade import Plugins
from unidesk.core.plugins.manager import make_plugin_manager
from unidesk.core.settings import Settings

_SKIP = ("/stream", "/api/agent/ws")
"""Long-lived streams and the agent's WebSocket (exercised by their own tests)."""
PLUGIN_PREFIXES = ("/api/projects", "/api/research", "/plugins/")


def core_routes(app: Litestar) -> list[tuple[str, str]]:
    out = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or any(s in route.path for s in _SKIP):
            continue
        for method in sorted(route.methods):
            if method not in ("HEAD", "OPTIONS"):
                out.append((method, route.path))
    return out


def fill(path: str) -> str:
    parts = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            kind = part.strip("{}").partition(":")[2]
            parts.append(str(uuid.uuid4()) if kind == "uuid" else ("1" if kind == "int" else "x"))
        else:
            parts.append(part)
    return "/".join(parts)


async def test_every_core_route_answers_without_plugins(settings: Settings) -> None:
    app = create_app(msgspec.structs.replace(settings, plugins="none"), components=[])
    routes = core_routes(app)
    assert not [p for _, p in routes if p.startswith(PLUGIN_PREFIXES)]
    assert len(routes) > 40  # every core domain is there
    async with AsyncTestClient(app=app) as client:
        admin = await login(client, "admin", ADMIN_PASSWORD)
        listing = (await client.get("/api/plugins", headers=admin)).json()
        assert listing["enabled"] is False and listing["items"] == [] and not listing["errors"]
        failures = []
        for method, path in routes:
            r = await client.request(method, fill(path), headers=admin, json={})
            if r.status_code >= 500:
                failures.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
        assert not failures, "\n".join(failures)
        health = (await client.get("/health")).json()
        assert health["checks"]["plugins"] == "ok", health


def test_scheduler_runs_a_task_with_plugins_off(live_server_factory: Any, tmp_path: Path) -> None:
    server = live_server_factory(plugins="none")
    with server.api() as api:
        agent = AgentProcess(
            server.url, node_token(api, "bare")["secret"], "bare", tmp_path / "agent"
        ).start()
        try:
            wait_online(api, "bare")
            r = api.post(
                "/api/tasks",
                json={
                    "code_repo_url": "file:///srv/code",
                    "code_commit_id": "a" * 40,
                    "env_repo_url": "file:///srv/env",
                    "env_commit_id": "b" * 40,
                    "dockerfile_path": "Dockerfile",
                    "command": ["echo", "no plugins"],
                    "resources": {"cpus": 0.5, "memory_mb": 64},
                },
            )
            assert r.status_code == 201, r.text
            task = wait_state(api, r.json()["id"], timeout=60)
            assert task["state"] == "succeeded", task
            assert api.get("/api/projects").status_code == 404
        finally:
            agent.stop()


def _versions(url: str) -> set[str]:
    with psycopg.connect(libpq_url(url)) as conn:
        return {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")}


def _tables(url: str) -> set[str]:
    with psycopg.connect(libpq_url(url)) as conn:
        return {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }


async def _start(settings: Settings, url: str, plugins: str) -> dict[str, Any]:
    """Start the server (its lifespan migrates) with ``plugins``; /health and /health/ready."""
    app = create_app(
        msgspec.structs.replace(settings, database_url=url, plugins=plugins), components=[]
    )
    async with AsyncTestClient(app=app) as client:
        health = await client.get("/health")
        ready = await client.get("/health/ready")
        assert health.status_code == 200, health.text
        assert ready.status_code == 200, ready.text
        body: dict[str, Any] = health.json()
        return body


@pytest.mark.plugins
async def test_server_starts_with_switched_off_plugins_schema_in_place(
    pg_cluster: Any, settings: Settings
) -> None:
    """A database migrated with every plugin (each at its first revision, the core one behind
    its head), then the server with none and with one plugin off: it starts, upgrades the core
    around the other branches' rows, leaves them and their tables untouched and names them on
    /health; on again, the plugin's branch upgrades as usual."""
    url = pg_cluster.empty_database()
    every = Plugins(make_plugin_manager("all")).migration_dirs()
    upgrade(url, target="0007_accounts_quota_labels")
    for first in ("r0001_research", "p0001_pipelines", "p0001_projects"):
        upgrade(url, every, target=first)
    plugin_rows = {"r0001_research", "p0001_pipelines", "p0001_projects"}
    assert _versions(url) == {"0007_accounts_quota_labels"} | plugin_rows
    tables = _tables(url)

    health = await _start(settings, url, "none")
    assert _versions(url) - plugin_rows == expected_heads(url)  # the core upgraded
    assert _versions(url) >= plugin_rows and _tables(url) >= tables
    assert health["status"] == "ok" and not health["reasons"], health
    note = health["checks"]["migrations"]
    assert note.startswith("warning: ") and all(r in note for r in plugin_rows), note

    health = await _start(settings, url, "projects,pipelines")
    assert "r0001_research" in _versions(url)
    assert "r0001_research" in health["checks"]["migrations"], health
    assert "p0001_pipelines" not in health["checks"]["migrations"], health

    health = await _start(settings, url, "all")
    assert _versions(url) == expected_heads(url, every)  # research upgraded past r0001
    assert "r0001_research" not in _versions(url)
    assert health["checks"]["migrations"] == "ok", health
    assert not [w for w in health["warnings"] if w.startswith("migrations")], health


def test_upgrade_refuses_a_core_revision_it_does_not_know(pg_cluster: Any) -> None:
    """A version row of no loaded branch is tolerated only next to the core's own row: a
    database at a newer server's core revision is refused, nothing changed."""
    url = pg_cluster.fresh_database()
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    with pytest.raises(CommandError, match="9999_future"):
        upgrade(url)
    assert _versions(url) == {"9999_future"}
