"""A third-party plugin, built as a real package in the test and installed with
``pip install --target <tmp>`` (the shared venv is untouched); a real server process finds it
through the ``unidesk.plugins`` entry-point group because <tmp> is on its PYTHONPATH.

The package ships three plugins (three entry points): ``hello`` (a route, its own Alembic
branch creating a table, an event listener called after commit, a UI entry), ``boom`` (an
event listener that always raises) and ``clash`` (claims hello's route). Then the same
database served with plugins turned off."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import LiveServer, PgCluster, free_port, server_env
from unidesk.core.db.engine import libpq_url

PLUGIN = '''
"""hello: a minimal UniDesk plugin (the one docs/plugins.md walks through)."""
import os
import uuid
from pathlib import Path

from litestar import get, post
from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, mapped_column

from unidesk.core.plugin_api import Base, NewEvent, UiContribution, append, hookimpl


class Greeting(Base):
    __tablename__ = "hello_greetings"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    text: Mapped[str] = mapped_column(String(100))


@get("/api/hello/greetings", operation_id="hello_list")
async def list_greetings(db: "AsyncSession") -> list[str]:
    return list((await db.scalars(select(Greeting.text).order_by(Greeting.text))).all())


@post("/api/hello/greetings", operation_id="hello_add", status_code=201)
async def add_greeting(data: dict[str, str], db: "AsyncSession", principal: "Principal") -> dict[str, str]:
    row = Greeting(text=data["text"])
    db.add(row)
    await db.flush()
    await append(db, NewEvent(kind="hello.greeted", subject_type="greeting", subject_id=str(row.id), actor=principal.actor))
    await db.commit()
    return {"id": str(row.id)}


async def record(events, state):
    with open(os.environ["HELLO_LOG"], "a") as f:
        for e in events:
            f.write(f"hello {e.kind}\\n")


class Hello:
    @hookimpl
    def unidesk_route_handlers(self):
        return [list_greetings, add_greeting]

    @hookimpl
    def unidesk_models(self):
        return [Greeting]

    @hookimpl
    def unidesk_migrations(self):
        return [str(Path(__file__).parent / "versions")]

    @hookimpl
    def unidesk_ui_contributions(self):
        return [UiContribution(id="hello", label="Hello", path="/hello", page="hello.page", script="/api/hello/ui.js")]

    @hookimpl
    def unidesk_event_listeners(self):
        return [record]


class Boom:
    @hookimpl
    def unidesk_event_listeners(self):
        async def explode(events, state):
            raise RuntimeError("boom listener exploded")
        return [explode]


class Clash:
    @hookimpl
    def unidesk_route_handlers(self):
        @get("/api/hello/greetings", operation_id="clash_list")
        async def mine() -> str:
            return "mine"
        return [mine]


hello, boom, clash = Hello(), Boom(), Clash()
'''

MIGRATION = '''
"""hello plugin schema"""
from alembic import op
import sqlalchemy as sa

revision = "hello_0001"
down_revision = None
branch_labels = ("hello",)
depends_on = "0001_core"


def upgrade():
    op.create_table("hello_greetings", sa.Column("id", sa.Uuid(), primary_key=True), sa.Column("text", sa.String(100), nullable=False))


def downgrade():
    op.drop_table("hello_greetings")
'''

PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "udk-hello"
version = "0.3.0"

[project.entry-points."unidesk.plugins"]
hello = "udk_hello:hello"
boom = "udk_hello:boom"
clash = "udk_hello:clash"

[tool.setuptools]
packages = ["udk_hello", "udk_hello.versions"]
"""


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("udk-hello-src")
    (src / "pyproject.toml").write_text(PYPROJECT)
    pkg = src / "udk_hello"
    (pkg / "versions").mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        PLUGIN.replace('"AsyncSession"', "AsyncSession")
        .replace('"Principal"', "Principal")
        .replace(
            "from unidesk.core.plugin_api import Base,",
            "from sqlalchemy.ext.asyncio import AsyncSession\n"
            "from unidesk.core.plugin_api import Principal\n"
            "from unidesk.core.plugin_api import Base,",
        )
    )
    (pkg / "versions" / "__init__.py").write_text("")
    (pkg / "versions" / "hello_0001.py").write_text(MIGRATION)
    site = tmp_path_factory.mktemp("udk-hello-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
        timeout=300,
    )
    assert (site / "udk_hello" / "versions" / "hello_0001.py").exists()
    assert any(p.name.startswith("udk_hello-0.3.0.dist-info") for p in site.iterdir())
    return site


def _start(
    pg_cluster: PgCluster, tmp_path: Path, site: Path, database_url: str | None = None, **extra: Any
) -> LiveServer:
    port = free_port()
    data = tmp_path / f"srv-{port}"
    data.mkdir()
    env = server_env(database_url or pg_cluster.fresh_database(), data, port, **extra)
    env["PYTHONPATH"] = str(site)
    env["HELLO_LOG"] = str(tmp_path / "hello.log")
    return LiveServer(env, port, tmp_path / f"srv-{port}.log").start()


def _tables(url: str) -> set[str]:
    with psycopg.connect(libpq_url(url)) as conn:
        return {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }


def _wait(check: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if v := check():
            return v
        time.sleep(0.2)
    raise AssertionError("condition not met")


def test_installed_plugin_route_migration_listener_ui(
    pg_cluster: PgCluster, tmp_path: Path, plugin_site: Path
) -> None:
    url = pg_cluster.fresh_database()
    server = _start(pg_cluster, tmp_path, plugin_site, url, plugins="hello,boom,projects,research")
    try:
        with server.api() as api:
            # its migration: its own branch created its table
            assert "hello_greetings" in _tables(url)
            # its route
            r = api.post("/api/hello/greetings", json={"text": "hi"})
            assert r.status_code == 201, r.text
            assert api.get("/api/hello/greetings").json() == ["hi"]
            # its event listener ran after the commit, although boom's listener raised on the same batch
            log = tmp_path / "hello.log"
            _wait(lambda: log.exists() and "hello hello.greeted" in log.read_text())
            assert "boom listener exploded" in server.log_path.read_text()
            # the core goes on: a task submits and its events still reach hello's listener
            task = api.post(
                "/api/tasks",
                json={
                    "code_repo_url": "file:///x",
                    "code_commit_id": "a" * 40,
                    "env_repo_url": "file:///x",
                    "env_commit_id": "a" * 40,
                    "dockerfile_path": "Dockerfile",
                    "command": "true",
                },
            )
            assert task.status_code == 201, task.text
            _wait(lambda: "hello task.submitted" in log.read_text())
            # its UI entry
            plugins = api.get("/api/plugins").json()
            hello = next(p for p in plugins["items"] if p["name"] == "hello")
            assert hello["source"] == "entrypoint:udk-hello" and hello["version"] == "0.3.0"
            assert hello["ui"] == [
                {
                    "id": "hello",
                    "label": "Hello",
                    "path": "/hello",
                    "page": "hello.page",
                    "plugin": "hello",
                    "icon": "",
                    "order": 100,
                    "script": "/api/hello/ui.js",
                }
            ]
            assert {p["name"] for p in plugins["items"]} == {
                "hello",
                "boom",
                "projects",
                "research",
            } and plugins["errors"] == []
            health = httpx.get(f"{server.url}/health").json()
            assert health["checks"]["plugins"] == "ok" and health["checks"]["migrations"] == "ok"
    finally:
        server.stop()


def test_two_plugins_claiming_one_route(
    pg_cluster: PgCluster, tmp_path: Path, plugin_site: Path
) -> None:
    server = _start(pg_cluster, tmp_path, plugin_site, plugins="hello,clash")
    try:
        with server.api() as api:
            assert httpx.get(f"{server.url}/health").json()["checks"]["plugins"] == (
                "a plugin failed to load"  # anonymous callers read the public reason only
            )
            r = api.get("/health")  # an admin reads the check's own words
            assert r.status_code == 503
            reason = r.json()["checks"]["plugins"]
            # entry points load in discovery order: the second of the two to claim the route is refused
            plugins = api.get("/api/plugins").json()
            (winner,) = [p["name"] for p in plugins["items"]]
            loser = ({"hello", "clash"} - {winner}).pop()
            assert (
                reason
                == f"plugin {loser}: route GET /api/hello/greetings is already claimed by {winner}"
            ), reason
            assert plugins["errors"] == [reason]
            assert api.get("/api/hello/greetings").text == ("[]" if winner == "hello" else "mine")
            assert api.get("/api/tasks").status_code == 200
    finally:
        server.stop()


def test_plugins_off_core_works_and_plugin_tables_untouched(
    pg_cluster: PgCluster, tmp_path: Path, plugin_site: Path
) -> None:
    url = pg_cluster.empty_database()
    server = _start(pg_cluster, tmp_path, plugin_site, url, plugins="none")
    try:
        with server.api() as api:
            assert api.get("/api/plugins").json() == {"enabled": False, "items": [], "errors": []}
            tables = _tables(url)
            assert {"tasks", "events", "users"} <= tables
            assert not [t for t in tables if t.startswith(("projects_", "research_", "hello_"))], (
                tables
            )
            assert api.get("/api/projects").status_code == 404
            assert api.get("/api/hello/greetings").status_code == 404
            body = {
                "code_repo_url": "file:///x",
                "code_commit_id": "a" * 40,
                "env_repo_url": "file:///x",
                "env_commit_id": "a" * 40,
                "dockerfile_path": "Dockerfile",
                "command": "true",
            }
            assert api.post("/api/tasks", json=body).status_code == 201
            r = api.post(
                "/api/tasks", json={**body, "extensions": {"projects": {"work_item_id": "x"}}}
            )
            assert (
                r.status_code == 400 and "no loaded plugin handles projects" in r.json()["detail"]
            )
            assert httpx.get(f"{server.url}/health").json()["checks"]["plugins"] == "ok"
        with psycopg.connect(libpq_url(url)) as conn:
            versions = {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")}
        assert not any(v.startswith(("p0", "r0", "hello")) for v in versions), versions
    finally:
        server.stop()
