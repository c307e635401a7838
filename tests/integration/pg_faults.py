"""An embedded PostgreSQL of its own that a fault test may restart or stop (``pg_ctl``), so the
session's shared cluster is never disturbed."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from unidesk.core.db.embedded import EmbeddedPostgres, pg_bin

__all__ = ["FaultyPostgres"]


class FaultyPostgres:
    """``restart()`` (``pg_ctl restart -m fast``), ``stop()`` then ``start()``; ``url`` is the
    database the server under test uses."""

    def __init__(self, root: Path, database: str = "unidesk_faults") -> None:
        self.pgdata = root / "pg"
        self._pg = EmbeddedPostgres(self.pgdata, database=database)
        self.url = self._pg.start()
        self.socket_dir = parse_qs(urlparse(self.url).query)["host"][0]
        self._owner = os.stat(self.pgdata).st_uid

    def _pg_ctl(self, *args: str, timeout: float = 60) -> None:
        # Output to a file, never a pipe: the postmaster inherits it and the pipe never closes.
        with open(self.pgdata.parent / "pg_ctl.out", "ab") as out:
            subprocess.run(
                [pg_bin("pg_ctl"), "-D", str(self.pgdata), "-w", *args],
                check=True,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                user=self._owner if os.geteuid() == 0 else None,
            )

    def restart(self) -> None:
        self._pg_ctl("-m", "fast", "-l", str(self.pgdata / "restart.log"), "restart")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl(
            "-o",
            '-h ""',
            "-o",
            f"-k {self.socket_dir}",
            "-l",
            str(self.pgdata / "restart.log"),
            "start",
        )

    def close(self) -> None:
        try:
            self._pg.stop()
        except Exception:
            with contextlib.suppress(Exception):
                self.stop()
