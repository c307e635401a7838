"""Private base images: a task's registry credential reaches the engine for that one build's
FROM pull (``X-Registry-Config``) and is written nowhere on the node.

No real registry is reachable here, so a loopback HTTP server plays the registry's auth step
(``/v2/`` and the manifest answer 401 without basic auth) and records what the engine sent; it
then answers 404 for the manifest, so the build fails after authenticating."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.gateway_agent.fake_reporter import FakeReporter
from unidesk.gateway_agent.envbuild import EnvBuilder, registry_config
from unidesk.gateway_agent.exec_errors import PrepareFailed
from unidesk.gateway_agent.gitcache import GitCache
from unidesk.gateway_agent.images import ImageLedger

USER, PASSWORD = "puller", "reg-pass-7c1e9a"


class FakeRegistry:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                auth = self.headers.get("Authorization", "")
                outer.seen.append((self.path, auth))
                if auth != expected:
                    body = (
                        b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
                    )
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="test-registry"')
                elif self.path == "/v2/":
                    body = b"{}"
                    self.send_response(200)
                else:
                    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
                    self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    r = FakeRegistry()
    yield r
    r.stop()


def test_registry_config_is_the_engines_format() -> None:
    value = registry_config({"reg.example.org:5000": f"{USER}:{PASSWORD}"})
    decoded = json.loads(base64.urlsafe_b64decode(value))
    assert decoded == {"reg.example.org:5000": {"username": USER, "password": PASSWORD}}


async def test_from_pull_uses_the_tasks_registry_credential(
    exec_config, make_repo, docker, registry: FakeRegistry
) -> None:
    repo = make_repo("env")
    sha = repo.commit({"Dockerfile": f"FROM {registry.host}/private/base:1\nRUN true\n"})
    envs = EnvBuilder(exec_config, GitCache(exec_config), ImageLedger(exec_config.cache_path))
    docker_config = Path.home() / ".docker" / "config.json"
    before = docker_config.read_bytes() if docker_config.exists() else None

    with pytest.raises(PrepareFailed) as anonymous:
        await envs.ensure_image(docker, repo.url, sha, "Dockerfile", FakeReporter())
    assert "env image build failed" in anonymous.value.detail
    assert not any(auth for _, auth in registry.seen)

    registry.seen.clear()
    reporter = FakeReporter()
    with pytest.raises(PrepareFailed) as authed:
        await envs.ensure_image(
            docker,
            repo.url,
            sha,
            "Dockerfile",
            reporter,
            registry_auth={registry.host: f"{USER}:{PASSWORD}"},
        )
    # The engine authenticated with the task's credential, then met the (absent) manifest.
    assert any(auth.startswith("Basic ") for _, auth in registry.seen), registry.seen
    assert any(p.startswith("/v2/private/base/manifests/") for p, a in registry.seen if a)
    assert PASSWORD not in authed.value.detail and PASSWORD not in reporter.text("build")
    # Nothing was written on the node: no Docker client config, nothing in the agent's cache.
    assert (docker_config.read_bytes() if docker_config.exists() else None) == before
    for path in exec_config.cache_path.rglob("*"):
        assert not path.is_file() or PASSWORD.encode() not in path.read_bytes()
