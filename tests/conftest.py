"""Shared fixtures: one embedded PostgreSQL per session, a fresh migrated database per test,
the app in-process (``client``/``admin``), and a real server process on loopback
(``live_server``)."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from litestar.testing import AsyncTestClient

from unidesk.core.app import create_app
from unidesk.core.db.embedded import EmbeddedPostgres
from unidesk.core.db.engine import libpq_url
from unidesk.core.db.migrate import upgrade
from unidesk.core.settings import Settings, load_settings

ADMIN_PASSWORD = "admin-password-123"
TEST_PLUGINS = os.environ.get("UNIDESK_PLUGINS", "all")
"""The plugins the core's tests load: ``all`` (default), or ``none`` for the plugins-off run
(``scripts/test.sh`` runs the core's tests a second time so: a core change that silently
depends on a plugin fails there). Tests that need a plugin carry the ``plugins`` marker."""
PLUGINS_OFF = TEST_PLUGINS.strip().lower() == "none"
TEMPLATE = "unidesk_template"
_counter = itertools.count()


class PgCluster:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url  # postgresql+psycopg://postgres@/<db>?host=...

    def url(self, database: str) -> str:
        head, _, tail = self.base_url.partition("@/")
        return f"{head}@/{database}?{tail.split('?', 1)[1]}"

    def admin_conn(self) -> psycopg.Connection:
        return psycopg.connect(libpq_url(self.url("postgres")), autocommit=True)

    def fresh_database(self, prefix: str = "t") -> str:
        name = f"{prefix}_{os.getpid()}_{next(_counter)}"
        with self.admin_conn() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE}')
        return self.url(name)

    def empty_database(self, prefix: str = "e") -> str:
        name = f"{prefix}_{os.getpid()}_{next(_counter)}"
        with self.admin_conn() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgCluster]:
    root = tmp_path_factory.mktemp("pg")
    pg = EmbeddedPostgres(root / "pg", database=TEMPLATE)
    url = pg.start()
    upgrade(url)
    cluster = PgCluster(url)
    yield cluster
    pg.stop()


@pytest.fixture
def database_url(pg_cluster: PgCluster) -> str:
    return pg_cluster.fresh_database()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        environ={},
        data_dir=str(tmp_path / "data"),
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        plugins=TEST_PLUGINS,
        local_agent=False,
        allow_file_urls=True,
        heartbeat_interval_s=0.5,
        offline_timeout_s=3.0,
        log_format="console",
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    """The app in-process with its lifespan run, unauthenticated."""
    app = create_app(settings, components=[])
    async with AsyncTestClient(app=app) as c:
        yield c


async def login(client: AsyncTestClient, username: str, password: str) -> dict[str, str]:
    r = await client.post("/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    r2 = await client.post(
        "/api/tokens",
        json={"name": "tests"},
        cookies={"unidesk_session": r.cookies["unidesk_session"]},
        headers={"Sec-Fetch-Site": "same-origin"},  # what a browser sends from our own page
    )
    assert r2.status_code == 201, r2.text
    client.cookies.clear()
    return {"Authorization": f"Bearer {r2.json()['secret']}"}


@pytest.fixture
async def admin_headers(client: AsyncTestClient) -> dict[str, str]:
    return await login(client, "admin", ADMIN_PASSWORD)


@pytest.fixture
async def member_headers(client: AsyncTestClient, admin_headers: dict[str, str]) -> dict[str, str]:
    r = await client.post(
        "/api/users",
        json={"username": "mia", "password": "member-password", "role": "member"},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    return await login(client, "mia", "member-password")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """A real ``unidesk-server`` process on a loopback port."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        self.env = env
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> LiveServer:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "unidesk.core.cli", "serve"],
            env=self.env,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}; "
                    f"log:\n{self.log_path.read_text()[-4000:]}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code in (200, 503):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(
            f"server did not answer in {timeout}s; log:\n{self.log_path.read_text()[-4000:]}"
        )

    def stop(self, sig: int = 15) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def token(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
        with httpx.Client(base_url=self.url) as c:
            r = c.post("/api/auth/login", json={"username": username, "password": password})
            r.raise_for_status()
            r2 = c.post("/api/tokens", json={"name": "tests"})
            r2.raise_for_status()
            return r2.json()["secret"]

    def api(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token or self.token()}"},
            timeout=30,
        )


def server_env(database_url: str, data_dir: Path, port: int, **extra: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIDESK_")}
    env.update(
        {
            "UNIDESK_DATABASE_URL": database_url,
            "UNIDESK_DATA_DIR": str(data_dir),
            "UNIDESK_PORT": str(port),
            "UNIDESK_HOST": "127.0.0.1",
            "UNIDESK_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "UNIDESK_LOG_FORMAT": "json",
            "UNIDESK_ALLOW_FILE_URLS": "true",
            "UNIDESK_HEARTBEAT_INTERVAL_S": "0.5",
            "UNIDESK_OFFLINE_TIMEOUT_S": "4",
            "UNIDESK_RETRY_BACKOFF_BASE_S": "1",
            "UNIDESK_LOCAL_AGENT": "false",
            "UNIDESK_PLUGINS": TEST_PLUGINS,
            "UNIDESK_BACKUP_DAILY_AT": "",  # no real-clock backups in the middle of a test
        }
    )
    env.update({f"UNIDESK_{k.upper()}": str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def live_server_factory(pg_cluster: PgCluster, tmp_path: Path) -> Iterator[Any]:
    """Start real server processes; ``factory(database_url=None, **settings)``."""
    servers: list[LiveServer] = []

    def factory(database_url: str | None = None, **extra: Any) -> LiveServer:
        url = database_url or pg_cluster.fresh_database()
        port = free_port()
        data = tmp_path / f"server-{port}"
        data.mkdir()
        srv = LiveServer(
            server_env(url, data, port, **extra), port, tmp_path / f"server-{port}.log"
        )
        servers.append(srv)
        return srv.start()

    yield factory
    for s in servers:
        s.stop()


@pytest.fixture
def live_server(live_server_factory: Any) -> LiveServer:
    """A real server process on loopback with its own fresh database (no local agent)."""
    return live_server_factory()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/plugins needs the plugins (``plugins`` marker); with plugins off
    those tests are skipped, never run against a server that lacks their routes. ``images``
    tests (minutes: they debootstrap a base image) run only in their own step of
    scripts/test.sh (UNIDESK_IMAGE_TESTS=1)."""
    for item in items:
        if "tests/plugins/" in item.nodeid or item.nodeid.startswith("plugins/"):
            item.add_marker(pytest.mark.plugins)
        if item.get_closest_marker("images") and not os.environ.get("UNIDESK_IMAGE_TESTS"):
            item.add_marker(
                pytest.mark.skip(reason="image build test: its own CI step (UNIDESK_IMAGE_TESTS=1)")
            )
        if PLUGINS_OFF and item.get_closest_marker("plugins"):
            item.add_marker(
                pytest.mark.skip(reason="needs the built-in plugins (UNIDESK_PLUGINS=none)")
            )
