"""The embedded PostgreSQL across a server crash: a real server process (no database URL) is
killed with -9, restarted on the same data dir (it joins the still running PostgreSQL), then
stopped cleanly, and PostgreSQL stops with it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.conftest import LiveServer, free_port, server_env
from unidesk.core.db.embedded import HANDLE_PIDS_FILE, process_alive


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def wait_gone(pid: int, limit_s: float = 60.0) -> bool:
    for _ in range(int(limit_s / 0.2)):
        if not process_alive(pid):
            return True
        time.sleep(0.2)
    return not process_alive(pid)


def test_clean_stop_after_a_crash_and_restart_stops_embedded_postgres(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    env = server_env("", data, port)
    del env["UNIDESK_DATABASE_URL"]
    srv = LiveServer(env, port, tmp_path / "server.log")
    pgdata = data / "pg"
    pg_pid = None
    try:
        srv.start(timeout=180)
        pg_pid = postmaster_pid(pgdata)
        assert srv.proc is not None
        srv.proc.kill()  # kill -9: no cleanup runs, its pid stays in the handle list
        srv.proc.wait(30)
        assert process_alive(pg_pid), "PostgreSQL outlives the crashed server"

        srv.start(timeout=180)
        assert postmaster_pid(pgdata) == pg_pid, "the restarted server joins the same PostgreSQL"
        srv.stop(signal.SIGTERM)
        assert srv.proc.returncode is not None
        assert wait_gone(pg_pid), (
            f"PostgreSQL {pg_pid} still runs after a clean stop; handles: "
            f"{(pgdata / HANDLE_PIDS_FILE).read_text()}"
        )
        assert not (pgdata / "postmaster.pid").exists()
    finally:
        srv.stop(signal.SIGKILL)
        if pg_pid is not None and process_alive(pg_pid):
            os.kill(pg_pid, signal.SIGINT)  # fast shutdown, so nothing leaks from this test
            wait_gone(pg_pid)
