"""The core with no plugin loaded (``plugins = "none"``): every core route answers (never a
500) and no plugin route exists, and the scheduler places a task on a real agent that runs it.
scripts/test.sh also runs the core's tests a second time with UNIDESK_PLUGINS=none."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from tests.conftest import ADMIN_PASSWORD, login
from tests.integration.conftest import AgentProcess, node_token, wait_online, wait_state
from unidesk.core.app import create_app
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
