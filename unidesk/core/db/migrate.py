"""Alembic driven from code: upgrade to head, report the current and head revisions.

Only the core's and the loaded plugins' branches are known here. A version row of a branch that
is not loaded (a plugin switched off) is left as it is: its tables stay untouched, the loaded
branches upgrade around it, and ``/health`` names it (``known_revisions``)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import create_engine

from unidesk.core.db.engine import sync_url

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_heads",
    "expected_heads",
    "known_revisions",
    "upgrade",
]

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


def _known(script: ScriptDirectory, revisions: Iterable[str]) -> tuple[set[str], set[str]]:
    """Split version rows into (those of a loaded branch, those of no loaded branch)."""
    known: set[str] = set()
    foreign: set[str] = set()
    for rev in revisions:
        (known if rev in script.revision_map._revision_map else foreign).add(rev)
    return known, foreign


def _core_revisions() -> set[str]:
    core = ScriptDirectory(
        str(MIGRATIONS_DIR), version_locations=[str(MIGRATIONS_DIR / "versions")]
    )
    return {r.revision for r in core.walk_revisions()}


def upgrade(url: str, plugin_dirs: Sequence[Path] = (), target: str = "heads") -> None:
    """Apply every pending migration of the core and of the loaded plugins' branches.

    Version rows of branches not loaded are ignored and kept. They are tolerated only next to
    a row of the core's own branch: a database whose core revision this code does not know
    (a newer server's schema) is refused with the revisions named."""
    cfg = alembic_config(url, plugin_dirs)
    script = ScriptDirectory.from_config(cfg)

    def steps(heads: Sequence[str], context: MigrationContext) -> Any:
        known, foreign = _known(script, heads)
        if foreign and not known & _core_revisions():
            raise CommandError(
                f"the database is at revisions {sorted(foreign)}, none of them the core's, "
                "which this code does not know: a newer server's schema, or the rows of "
                "plugins not loaded standing for the core's first revision; nothing was changed"
            )
        # alembic's own upgrade command hands the heads over as a tuple too (typed ``str``).
        current: Any = tuple(sorted(known))
        return script._upgrade_revs(target, current)

    with EnvironmentContext(cfg, script, fn=steps, destination_rev=target):
        script.run_env()


def expected_heads(url: str, plugin_dirs: Sequence[Path] = ()) -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config(url, plugin_dirs)).get_heads())


def known_revisions(url: str, plugin_dirs: Sequence[Path] = ()) -> set[str]:
    """Every revision of the core's and the loaded plugins' branches: a version row outside it
    belongs to a branch not loaded (a plugin switched off)."""
    script = ScriptDirectory.from_config(alembic_config(url, plugin_dirs))
    return {r.revision for r in script.walk_revisions()}


def current_heads(url: str) -> set[str]:
    engine = create_engine(sync_url(url), poolclass=None)
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()
