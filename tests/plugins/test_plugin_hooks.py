"""Hooks the built-in plugins use that other tests do not reach: CLI commands and startup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import ADMIN_PASSWORD, login
from tests.plugins.conftest import make_task_body
from unidesk.client.cli import main
from unidesk.core.app import create_app
from unidesk.core.db.engine import libpq_url


def test_cli_commands_of_plugins(
    live_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("UNIDESK_CLI_CONFIG", str(tmp_path / "cfg.toml"))
    for var in ("UNIDESK_SERVER", "UNIDESK_TOKEN", "UNIDESK_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    token = live_server.token()
    assert main(["login", "--server", live_server.url, "--token", token]) == 0
    with live_server.api(token) as api:
        p = api.post("/api/projects", json={"name": "Cli"}).json()
        api.post(
            f"/api/projects/{p['id']}/items",
            json={"title": "ship it", "due_date": "2026-12-24", "milestone": True},
        )
    capsys.readouterr()
    assert main(["projects"]) == 0
    assert f"{p['id']}  0/1 done  Cli" in capsys.readouterr().out
    assert main(["projects", p["id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"][0]["title"] == "ship it"
    assert main(["projects", p["id"]]) == 0
    assert "2026-12-24 → 2026-12-24" in capsys.readouterr().out
    monkeypatch.setenv("UNIDESK_PLUGINS", "none")  # plugins off: the command is gone
    with pytest.raises(SystemExit):
        main(["projects"])
    assert "invalid choice: 'projects'" in capsys.readouterr().err


async def test_startup_hook_resyncs_links_that_missed_events(
    settings: Any, database_url: str
) -> None:
    app = create_app(settings, components=[])
    async with AsyncTestClient(app=app) as c:
        h = await login(c, "admin", ADMIN_PASSWORD)
        p = (await c.post("/api/projects", json={"name": "P"}, headers=h)).json()
        item = (
            await c.post(f"/api/projects/{p['id']}/items", json={"title": "i"}, headers=h)
        ).json()
        task = (
            await c.post(
                "/api/tasks",
                json=make_task_body(extensions={"projects": {"work_item_id": item["id"]}}),
                headers=h,
            )
        ).json()
    # while no server listens, the link's copy goes stale (as if an event was missed)
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("UPDATE projects_task_links SET task_state = 'running'")
    app = create_app(settings, components=[])
    async with AsyncTestClient(app=app) as c:
        h = await login(c, "admin", ADMIN_PASSWORD)
        runs = (await c.get(f"/api/projects/items/{item['id']}", headers=h)).json()["run_list"]
        assert [(r["task_id"], r["state"]) for r in runs] == [(task["id"], "pending")]
