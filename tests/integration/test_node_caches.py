"""Node caches through a real server and a real agent with the Docker runner: heartbeats carry
the cache sizes and caps, and the admin's "clear caches" (API) empties them on the node."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.integration.conftest import AgentProcess, events, node_token, wait_for, wait_online


def _caches(api: Any, node_id: str) -> dict[str, dict[str, Any]]:
    usage = api.get(f"/api/nodes/{node_id}").json()["usage"] or {}
    return {c["name"]: c for c in usage.get("caches", [])}


def test_heartbeat_sizes_and_admin_clear(live_server: Any, tmp_path: Path) -> None:
    root = tmp_path / "agent"
    cache = root / "cache"
    repo = cache / "git" / ("0" * 32 + ".git")  # a cached repository left by earlier tasks
    repo.mkdir(parents=True)
    (repo / "pack.bin").write_bytes(os.urandom(300 * 1024))
    inputs = cache / "files" / "sha256"
    inputs.mkdir(parents=True)
    (inputs / ("a" * 64)).write_bytes(os.urandom(200 * 1024))
    config = root / "agent.toml"
    root.mkdir(exist_ok=True)
    config.write_text("[docker]\ngit_cache_mb = 64\ninput_cache_mb = 32\n")
    with live_server.api() as api:
        secret = node_token(api, "cache-node")["secret"]
        agent = AgentProcess(live_server.url, secret, "cache-node", root)
        agent.env.update(
            {
                "UNIDESK_AGENT_RUNNER": "docker",
                "UNIDESK_AGENT_CONFIG": str(config),
                "UNIDESK_AGENT_HEARTBEAT_INTERVAL_S": "0.5",
            }
        )
        agent.start()
        try:
            node = wait_online(api, "cache-node")["cache-node"]
            caches = wait_for(lambda: _caches(api, node["id"]) or None, timeout=30)
            assert caches["git"]["bytes"] >= 300 * 1024 and caches["git"]["entries"] == 1
            assert caches["git"]["cap_bytes"] == 64 * 1024 * 1024
            assert caches["inputs"]["bytes"] == 200 * 1024
            assert caches["inputs"]["cap_bytes"] == 32 * 1024 * 1024
            assert "images" in caches

            made = api.post(
                "/api/users",
                json={"username": "cm", "password": "member-password", "role": "member"},
            )
            assert made.status_code == 201
            with live_server.api(live_server.token("cm", "member-password")) as member:
                r = member.post(f"/api/nodes/{node['id']}/clear-caches")
                assert r.status_code == 403
            assert repo.exists()

            r = api.post(f"/api/nodes/{node['id']}/clear-caches")
            assert r.status_code == 202, r.text
            request_id = r.json()["request_id"]
            wait_for(
                lambda: (
                    (
                        (c := _caches(api, node["id"]))
                        and c["git"]["entries"] == 0
                        and c["inputs"]["entries"] == 0
                    )
                    or None
                ),
                timeout=30,
            )
            assert not repo.exists() and not any(inputs.iterdir())
            kinds = [
                (e["kind"], e["payload"].get("request_id"))
                for e in events(api, subject_id=node["id"])
            ]
            assert ("node.caches_clear_requested", request_id) in kinds
        finally:
            agent.stop()
        wait_for(
            lambda: api.get(f"/api/nodes/{node['id']}").json()["state"] == "offline" or None,
            timeout=30,
        )
        r = api.post(f"/api/nodes/{node['id']}/clear-caches")
        assert r.status_code == 409 and "offline" in r.json()["detail"]
