"""Logging of a real server process: JSON lines with request ids, and no secret ever written."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import ADMIN_PASSWORD


def test_secrets_never_reach_the_log(live_server: Any) -> None:
    good = live_server.token()
    bad = "udk_" + "Zq9" * 14
    node_secret = None
    with httpx.Client(base_url=live_server.url, timeout=30) as c:
        assert (
            c.post(
                "/api/auth/login", json={"username": "admin", "password": "wrong-" + ADMIN_PASSWORD}
            ).status_code
            == 401
        )
        assert c.get("/api/tasks", headers={"Authorization": f"Bearer {bad}"}).status_code == 401
        assert c.get("/api/tasks", headers={"Authorization": f"Bearer {good}"}).status_code == 200
        assert c.get("/api/tasks", headers={"Authorization": f"Basic {good}"}).status_code == 401
        assert c.get("/api/tasks", cookies={"unidesk_session": bad}).status_code == 401
        r = c.post(
            "/api/node-tokens", json={"name": "box"}, headers={"Authorization": f"Bearer {good}"}
        )
        node_secret = r.json()["secret"]
        assert (
            c.get("/api/tasks", headers={"Authorization": f"Bearer {node_secret}"}).status_code
            == 401
        )
        assert (
            c.post(
                "/api/users",
                json={"username": "u1", "password": "user-one-password"},
                headers={"Authorization": f"Bearer {good}"},
            ).status_code
            == 201
        )
    live_server.stop()  # flush everything the process would write
    log = live_server.log_path.read_text()
    assert "login failed" in log and "request refused" in log, "the refusals are logged…"
    for secret in (good, bad, node_secret, ADMIN_PASSWORD, "user-one-password"):
        assert secret not in log, "…but never a secret"
        assert secret[4:] not in log


def test_json_lines_with_request_id(live_server: Any) -> None:
    with httpx.Client(base_url=live_server.url, timeout=30) as c:
        r = c.get("/api/tasks", headers={"X-Request-ID": "trace-me-42"})
        assert r.status_code == 401
        assert r.headers["x-request-id"] == "trace-me-42"
        generated = c.get("/health").headers["x-request-id"]
        assert generated and generated != "trace-me-42"
        hostile = c.get("/health", headers={"X-Request-ID": 'a"b c' + "x" * 100}).headers[
            "x-request-id"
        ]
        assert hostile != 'a"b c' + "x" * 100, "unsafe request ids are replaced"
    live_server.stop()
    lines = [ln for ln in live_server.log_path.read_text().splitlines() if ln.startswith("{")]
    records = [json.loads(ln) for ln in lines]
    assert records, "UNIDESK_LOG_FORMAT=json writes JSON lines"
    assert all("event" in rec and "level" in rec and "timestamp" in rec for rec in records)
    refused = [rec for rec in records if rec.get("request_id") == "trace-me-42"]
    assert refused and refused[0]["path"] == "/api/tasks"
