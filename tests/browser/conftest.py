"""Browser-test fixtures: a built UI, a real server with its local agent on real Docker, Chromium
in New York time."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.browser.browser import launch, new_context
from tests.conftest import ADMIN_PASSWORD, LiveServer, PgCluster, free_port, server_env
from tests.docker_images import BUSYBOX_IMAGE, ensure_busybox_image
from tests.gateway_agent.gitrepos import GitRepo

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
DIST_INDEX = ROOT / "unidesk" / "web_dist" / "index.html"


def ensure_ui_built() -> None:
    """Builds web/ into unidesk/web_dist when the bundle is missing or older than its sources."""
    sources = [
        WEB / "index.html",
        WEB / "package.json",
        WEB / "vite.config.ts",
        *(WEB / "src").rglob("*"),
    ]
    if DIST_INDEX.exists() and all(
        p.stat().st_mtime <= DIST_INDEX.stat().st_mtime for p in sources if p.is_file()
    ):
        return
    if not (WEB / "node_modules").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=WEB, check=True
        )
    subprocess.run(["npm", "run", "--silent", "build"], cwd=WEB, check=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that drive Chromium run after the others (stable order otherwise): while the sync
    Playwright
    loop of the package-scoped ``browser`` runs, pytest-asyncio cannot run async tests in this
    thread."""
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    # Package scope, not session: Playwright's sync API keeps an event loop running in this
    # thread until it stops, and pytest-asyncio cannot run async tests after it meanwhile.
    for _pw, b in launch():
        yield b


class UiServer:
    """A running server plus an admin API client and the repos tasks are pinned to."""

    def __init__(
        self,
        server: LiveServer,
        api: httpx.Client,
        code: GitRepo,
        code_sha: str,
        env: GitRepo,
        env_sha: str,
    ):
        self.server, self.api, self.url = server, api, server.url
        self.code, self.code_sha, self.env, self.env_sha = code, code_sha, env, env_sha

    def task_body(self, command: str, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "code_repo_url": self.code.url,
            "code_commit_id": self.code_sha,
            "env_repo_url": self.env.url,
            "env_commit_id": self.env_sha,
            "dockerfile_path": "docker/Dockerfile",
            "command": command,
            "resources": {"cpus": 0.5, "memory_mb": 128},
            "timeout_s": 600,
            "max_attempts": 1,
        }

    def submit(self, command: str, name: str) -> dict[str, Any]:
        r = self.api.post("/api/tasks", json=self.task_body(command, name))
        assert r.status_code == 201, r.text
        return r.json()

    def task(self, task_id: str) -> dict[str, Any]:
        r = self.api.get(f"/api/tasks/{task_id}")
        r.raise_for_status()
        return r.json()

    def wait_task(self, task_id: str, states: set[str], timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.task(task_id)
            if t["state"] in states:
                return t
            time.sleep(0.5)
        raise AssertionError(
            f"task {task_id} stayed {t['state']} (wanted {states}); trace: "
            f"{self.api.get(f'/api/tasks/{task_id}/trace').text[-2000:]}"
        )

    def local_node(self, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nodes = [
                n for n in self.api.get("/api/nodes").json()["items"] if n["state"] == "online"
            ]
            if nodes:
                return nodes[0]
            time.sleep(0.3)
        raise AssertionError(
            "the local agent did not come online; server "
            f"log:\n{self.server.log_path.read_text()[-3000:]}"
        )


@pytest.fixture(scope="module")
def ui_server(
    pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UiServer]:
    """A real unidesk-server with its local agent running tasks in the real Docker engine."""
    ensure_ui_built()
    ensure_busybox_image()
    tmp = tmp_path_factory.mktemp("ui")
    env_repo = GitRepo(tmp / "env")
    env_sha = env_repo.commit({"docker/Dockerfile": f"FROM {BUSYBOX_IMAGE}\nWORKDIR /workspace\n"})
    code_repo = GitRepo(tmp / "code")
    code_sha = code_repo.commit(
        {"count.sh": "i=1\nwhile [ $i -le ${N:-8} ]; do echo line-$i; i=$((i+1)); sleep 1; done\n"}
    )
    port = free_port()
    data = tmp / "data"
    data.mkdir()
    env = server_env(
        pg_cluster.fresh_database("ui"),
        data,
        port,
        local_agent="true",
        local_agent_runner="docker",
        heartbeat_interval_s="1",
    )
    server = LiveServer(env, port, tmp / "server.log").start()
    api = server.api()
    try:
        ui = UiServer(server, api, code_repo, code_sha, env_repo, env_sha)
        ui.local_node()
        yield ui
    finally:
        api.close()
        server.stop()


@pytest.fixture
def context(browser: Browser, ui_server: UiServer) -> Iterator[BrowserContext]:
    ctx = new_context(browser, ui_server.url)
    yield ctx
    ctx.close()


def login_ui(page: Page, username: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    """Signs in through the login form, using the keyboard only."""
    page.goto("/login")
    page.locator("input[name=username]").wait_for()
    page.keyboard.type(username)  # the username field has focus on arrival
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.get_by_test_id("current-user").wait_for()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    p = context.new_page()
    login_ui(p)
    return p


@pytest.fixture
def page_factory(browser: Browser) -> Callable[..., Page]:
    """New signed-in pages against any server, at any viewport size."""
    contexts: list[BrowserContext] = []

    def make(url: str, width: int = 1440, height: int = 900) -> Page:
        ctx = new_context(browser, url, width=width, height=height)
        contexts.append(ctx)
        p = ctx.new_page()
        login_ui(p)
        return p

    yield make  # type: ignore[misc]
    for c in contexts:
        c.close()
