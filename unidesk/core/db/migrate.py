"""Alembic driven from code: upgrade to head, report the current and head revisions."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from unidesk.core.db.engine import sync_url

__all__ = ["MIGRATIONS_DIR", "alembic_config", "current_heads", "expected_heads", "upgrade"]

MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"


def alembic_config(url: str, plugin_dirs: Sequence[Path] = ()) -> Config:
    """Core versions plus one version directory (one branch) per loaded plugin."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option(
        "version_locations",
        os.pathsep.join([str(MIGRATIONS_DIR / "versions"), *map(str, plugin_dirs)]),
    )
    return cfg


def upgrade(url: str, plugin_dirs: Sequence[Path] = (), target: str = "heads") -> None:
    """Apply every pending migration of the core and of the loaded plugins' branches."""
    command.upgrade(alembic_config(url, plugin_dirs), target)


def expected_heads(url: str, plugin_dirs: Sequence[Path] = ()) -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config(url, plugin_dirs)).get_heads())


def current_heads(url: str) -> set[str]:
    engine = create_engine(sync_url(url), poolclass=None)
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()
