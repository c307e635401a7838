"""``unidesk-server backup`` and ``unidesk-server restore <dump>``: the admin's side of backups."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import msgspec

from unidesk.core.settings import Settings

__all__ = ["add_backup_parsers", "run_backup_command"]


def add_backup_parsers(sub: Any) -> None:
    b = sub.add_parser(
        "backup",
        help="pg_dump the database into the backup dir as a manual snapshot, verify it, prune",
    )
    b.add_argument(
        "--dir",
        dest="backup_dir",
        help="backup directory (default: setting backup_dir, else <data_dir>/backups)",
    )
    b.add_argument(
        "--keep",
        type=int,
        help="Beijing days of daily snapshots to keep (default: setting backup_keep)",
    )
    b.add_argument(
        "--keep-manual",
        type=int,
        help="manual snapshots to keep (default: setting backup_keep_manual)",
    )
    b.add_argument(
        "--daily",
        action="store_true",
        help="take it as a daily snapshot (for an external cron instead of the server's schedule)",
    )
    r = sub.add_parser(
        "restore",
        help="restore a dump into the (empty) configured database; stop every server first",
    )
    r.add_argument("dump", help="a unidesk-*.dump file written by `unidesk-server backup`")
    r.add_argument(
        "--force", action="store_true", help="replace everything in a non-empty database"
    )


async def _open(settings: Settings) -> Any:
    from unidesk.core.db.bootstrap import open_database

    return await open_database(settings, migrate=False)


async def _record(url: str, **kwargs: Any) -> str | None:
    """Write the backup event; returns why it could not be written (the database may be what
    failed)."""
    from unidesk.core.db.engine import make_engine, make_sessionmaker
    from unidesk.core.ops.backup_schedule import record_backup

    engine = make_engine(url, 1)
    try:
        await record_backup(make_sessionmaker(engine), actor="cli:backup", **kwargs)
        return None
    except Exception as exc:
        return type(exc).__name__
    finally:
        await engine.dispose()


async def _backup(settings: Settings, args: argparse.Namespace) -> int:
    from unidesk.core.ops.backup import backup_dir_for, run_backup
    from unidesk.errors import UnideskError

    if args.backup_dir:
        settings = msgspec.structs.replace(settings, backup_dir=args.backup_dir)
    keep = args.keep if args.keep is not None else settings.backup_keep
    keep_manual = args.keep_manual if args.keep_manual is not None else settings.backup_keep_manual
    if keep < 1:
        print("unidesk-server: --keep must be at least 1", file=sys.stderr)
        return 2
    if keep_manual < 0:
        print("unidesk-server: --keep-manual must be at least 0", file=sys.stderr)
        return 2
    handle = await _open(settings)
    try:
        try:
            directory = backup_dir_for(settings.backup_dir, settings.data_path)
            result = await asyncio.to_thread(
                run_backup,
                handle.url,
                directory,
                keep_days=keep,
                keep_manual=keep_manual,
                manual=not args.daily,
                with_globals=settings.backup_globals,
                timeout_s=settings.backup_timeout_s,
            )
        except UnideskError as exc:
            print(f"unidesk-server: backup failed: {exc.detail}", file=sys.stderr)
            why = await _record(handle.url, error=exc.detail)
            if why:
                print(
                    f"unidesk-server: (the failure could not be recorded as an event: {why})",
                    file=sys.stderr,
                )
            return 1
        why = await _record(handle.url, result=result)
        print(
            f"backup written: {result.path} ({result.size} bytes, {result.entries} entries, "
            "verified with pg_restore --list)"
        )
        if result.globals_path:
            print(f"globals: {result.globals_path}")
        for name in result.pruned:
            print(f"pruned: {name}")
        if why:
            print(
                f"unidesk-server: the backup could not be recorded as an event: {why}",
                file=sys.stderr,
            )
            return 1
        return 0
    finally:
        handle.close()


async def _restore(settings: Settings, args: argparse.Namespace) -> int:
    from unidesk.core.db.engine import make_engine, make_sessionmaker
    from unidesk.core.db.migrate import expected_heads
    from unidesk.core.events.writer import NewEvent, append
    from unidesk.core.ops.backup import restore_dump
    from unidesk.errors import UnideskError

    handle = await _open(settings)
    try:
        try:
            result = await asyncio.to_thread(
                restore_dump,
                Path(args.dump),
                handle.url,
                force=args.force,
                timeout_s=settings.backup_timeout_s,
            )
        except UnideskError as exc:
            print(f"unidesk-server: restore refused: {exc.detail}", file=sys.stderr)
            return 1
        engine = make_engine(handle.url, 1)
        try:
            async with make_sessionmaker(engine)() as s:
                await append(
                    s,
                    NewEvent(
                        kind="backup.restored",
                        subject_type="backup",
                        subject_id=Path(args.dump).name,
                        actor="cli:restore",
                        payload={
                            "dump": result.dump,
                            "forced": result.forced,
                            "alembic_version": result.alembic_version,
                        },
                    ),
                )
                await s.commit()
        finally:
            await engine.dispose()
        print(
            f"restored {result.dump} into {result.database}: {result.tables} tables, schema "
            f"{', '.join(result.alembic_version)}"
        )
        if set(result.alembic_version) != expected_heads(handle.url, _plugin_dirs(settings)):
            print(
                "the schema is older than this server's code: run `unidesk-server migrate` before "
                "starting it"
            )
        return 0
    finally:
        handle.close()


def _plugin_dirs(settings: Settings) -> list[Path]:
    from unidesk.core.plugins.facade import Plugins
    from unidesk.core.plugins.manager import make_plugin_manager, parse_selection

    facade = Plugins(
        make_plugin_manager(settings.plugins), enabled=parse_selection(settings.plugins) != set()
    )
    return list(facade.migration_dirs())


def run_backup_command(settings: Settings, args: argparse.Namespace) -> int:
    """Entry from ``unidesk.core.cli.main`` for ``backup`` and ``restore``."""
    return asyncio.run(
        _backup(settings, args) if args.command == "backup" else _restore(settings, args)
    )
