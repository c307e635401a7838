"""Alembic driven from code: upgrade to head, report the current and head revisions."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from unidesk.core.db.engine import sync_url

__all__ = ["alembic_config", "upgrade", "current_heads", "expected_heads", "MIGRATIONS_DIR"]

MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, target: str = "heads") -> None:
    """Apply every pending migration (core and plugin branches)."""
    command.upgrade(alembic_config(url), target)


def expected_heads(url: str) -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def current_heads(url: str) -> set[str]:
    engine = create_engine(sync_url(url), poolclass=None)
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()
