"""``serve --workers N``: N processes on one port, once-per-machine jobs in worker 0 only."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.conftest import ADMIN_PASSWORD, PgCluster, free_port, server_env
from tests.core.conftest import task_body
from unidesk.core.settings import Settings
from unidesk.core.workers import listen_socket, worker_settings


def test_worker_zero_keeps_the_once_per_machine_jobs(settings: Settings) -> None:
    on = msgspec_replace(settings, local_agent=True, backup_daily_at="03:00")
    assert worker_settings(on, 0).local_agent and worker_settings(on, 0).backup_daily_at
    for i in (1, 2):
        assert not worker_settings(on, i).local_agent
        assert worker_settings(on, i).backup_daily_at == ""


def msgspec_replace(settings: Settings, **changes: Any) -> Settings:
    import msgspec

    return msgspec.structs.replace(settings, **changes)


def start(
    pg_cluster: PgCluster, tmp_path: Path, workers: int
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = server_env(pg_cluster.fresh_database(), tmp_path / "data", port)
    log = open(tmp_path / "server.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "unidesk.core.cli", "serve", "--workers", str(workers)],
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        workers_up = [c for c in psutil.Process(proc.pid).children() if "python" in c.name()]
        try:
            if len(workers_up) == workers and httpx.get(f"{url}/health", timeout=2).is_success:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("server with workers did not come up")


def test_two_workers_serve_one_database_and_stop_cleanly(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    proc, url = start(pg_cluster, tmp_path, 2)
    try:
        children = psutil.Process(proc.pid).children()
        assert len(children) == 2
        with httpx.Client(base_url=url, timeout=30) as c:
            c.post(
                "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
            ).raise_for_status()
            secret = c.post("/api/tokens", json={"name": "w"}).json()["secret"]
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {secret}"}, timeout=30
        ) as api:
            created = api.post("/api/tasks", json=task_body(name="via-workers"))
            assert created.status_code == 201, created.text
            # New connections land on either worker; every one sees the same database.
            for _ in range(20):
                with httpx.Client(
                    base_url=url, headers={"Authorization": f"Bearer {secret}"}
                ) as fresh:
                    items = fresh.get("/api/tasks").json()["items"]
                    assert [t["name"] for t in items] == ["via-workers"]
            # Each worker keeps list answers until a write; a write answered by one worker is
            # seen by a read on the other at once (their write counter is shared memory).
            for i in range(6):
                with httpx.Client(base_url=url, headers=api.headers) as w:
                    w.post("/api/tasks", json=task_body(name=f"w-{i}")).raise_for_status()
                for _ in range(3):
                    with httpx.Client(base_url=url, headers=api.headers) as r:
                        assert r.get("/api/tasks").json()["items"][0]["name"] == f"w-{i}"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_dead_worker_stops_the_whole_server(pg_cluster: PgCluster, tmp_path: Path) -> None:
    proc, _ = start(pg_cluster, tmp_path, 2)
    try:
        first, second = psutil.Process(proc.pid).children()
        os.kill(first.pid, signal.SIGKILL)
        assert proc.wait(60) == 1
        assert not second.is_running() or second.status() == psutil.STATUS_ZOMBIE
        assert "a worker exited" in (tmp_path / "server.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_connections_on_the_shared_socket_get_tcp_nodelay() -> None:
    """asyncio sets TCP_NODELAY only when the accepted socket's proto is IPPROTO_TCP; without
    it every kept-alive response waited ~40 ms for the client's delayed ACK."""
    sock = listen_socket("127.0.0.1", 0)
    nodelay: list[int] = []

    def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = writer.get_extra_info("socket")
        nodelay.append(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=sock)
    try:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        for _ in range(200):  # bounded: the accept runs on this loop
            if nodelay:
                break
            await asyncio.sleep(0.01)
        writer.close()
        assert nodelay and nodelay[0] != 0
    finally:
        server.close()
        await server.wait_closed()
