"""Migrations: the models are the single source of the schema; `migrate` works on an empty
database."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, pool

import unidesk.core.db.models  # noqa: F401  (registers every core table)
from unidesk.core.db.base import Base
from unidesk.core.db.engine import libpq_url, sync_url
from unidesk.core.db.migrate import current_heads, expected_heads, upgrade
from unidesk.core.plugins.facade import Plugins
from unidesk.core.plugins.manager import make_plugin_manager

CORE_TABLES = {"users", "api_tokens", "node_tokens", "nodes", "tasks", "task_attempts", "events"}


def test_autogenerate_against_migrated_db_is_empty(database_url: str) -> None:
    """Core and every built-in plugin: migrate their branches, then compare with all their
    models."""
    plugins = Plugins(make_plugin_manager("all"))
    plugins.import_models()
    upgrade(database_url, plugins.migration_dirs())
    assert not plugins.errors, plugins.errors
    engine = create_engine(sync_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": False}
            )
            diff = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def test_migrated_db_has_core_tables_and_guards(database_url: str) -> None:
    assert current_heads(database_url) == expected_heads(database_url)
    with psycopg.connect(libpq_url(database_url)) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        triggers = {
            r[0] for r in conn.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        }
    assert tables >= CORE_TABLES
    assert {
        "tasks_state_needs_event",
        "task_attempts_state_needs_event",
        "nodes_state_needs_event",
    } <= triggers


def _cli(
    args: list[str], database_url: str, tmp_path: os.PathLike[str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIDESK_")}
    env.update(
        UNIDESK_DATABASE_URL=database_url, UNIDESK_DATA_DIR=str(tmp_path), UNIDESK_LOG_FORMAT="json"
    )
    return subprocess.run(
        [sys.executable, "-m", "unidesk.core.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_command_on_empty_database(pg_cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = pg_cluster.empty_database()
    with psycopg.connect(libpq_url(url)) as conn:
        assert (
            conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
            == 0
        )
    out = _cli(["migrate"], url, tmp_path)
    assert out.returncode == 0, out.stderr
    assert current_heads(url) == expected_heads(
        url, Plugins(make_plugin_manager("all")).migration_dirs()
    )
    with psycopg.connect(libpq_url(url)) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    assert tables >= CORE_TABLES
    again = _cli(["migrate"], url, tmp_path)
    assert again.returncode == 0, again.stderr  # idempotent


def test_migrate_against_unreachable_database_fails_visibly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"postgresql+psycopg://postgres@/nope?host={tmp_path}/no-socket-here"
    out = _cli(["migrate"], url, tmp_path)
    assert out.returncode == 1
    assert "database error" in out.stderr and "Traceback" not in out.stderr
