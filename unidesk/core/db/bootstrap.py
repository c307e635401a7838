"""Find or start the database, then bring its schema to head: the server's first step."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import structlog

from unidesk.core.db.embedded import EmbeddedPostgres
from unidesk.core.db.engine import libpq_url
from unidesk.core.db.migrate import upgrade
from unidesk.core.settings import Settings

__all__ = ["DatabaseHandle", "open_database"]

log = structlog.get_logger("unidesk.db")


class DatabaseHandle:
    def __init__(self, url: str, embedded: EmbeddedPostgres | None) -> None:
        self.url = url
        self.embedded = embedded

    @property
    def dsn(self) -> str:
        return libpq_url(self.url)

    def close(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()


async def open_database(
    settings: Settings, *, migrate: bool = True, plugin_dirs: Sequence[Path] = ()
) -> DatabaseHandle:
    """The URL from settings, or an embedded server in <data_dir>/pg; migrated to head."""
    embedded = None
    url = settings.database_url
    if not url:
        embedded = EmbeddedPostgres(settings.data_path / "pg")
        url = await asyncio.to_thread(embedded.start)
    if migrate:
        await asyncio.to_thread(upgrade, url, plugin_dirs)
        log.info("database migrated", embedded=embedded is not None)
    return DatabaseHandle(url, embedded)
