"""The daily backup inside the server: schedule, one runner across replicas, events, /health check.

Each backup is an event: ``backup.succeeded`` (path, size, pruned snapshots) or
``backup.failed`` (the reason). Several replicas share one database; a PostgreSQL advisory
lock lets exactly one of them run a given day's backup, and a replica that finds that day's
``backup.succeeded`` already written skips it. ``/health`` shows the last outcome: a failed
backup, or no successful one for more than a day while the schedule is on, is a reason.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk.core.background import cancel_and_wait
from unidesk.core.backup import BackupResult, backup_dir_for, run_backup
from unidesk.core.events.models import Event
from unidesk.core.events.writer import NewEvent, append
from unidesk.core.settings import Settings
from unidesk.errors import UnideskError

__all__ = [
    "BACKUP_LOCK_KEY",
    "BackupSchedule",
    "backup_check",
    "next_run",
    "record_backup",
    "take_backup",
]

log = structlog.get_logger("unidesk.backup")

BACKUP_LOCK_KEY = 0x0B5EC0DE
"""Advisory lock key held by the replica that runs a backup."""
STALE_AFTER = timedelta(hours=26)


def next_run(daily_at: str, now: datetime) -> datetime:
    """The next UTC instant at ``HH:MM`` strictly after ``now``."""
    hh, mm = (int(x) for x in daily_at.split(":"))
    candidate = datetime.combine(
        now.astimezone(UTC).date(), dtime(hh, mm), tzinfo=UTC
    )
    return candidate if candidate > now else candidate + timedelta(days=1)


async def record_backup(
    sessions: async_sessionmaker[AsyncSession],
    *,
    actor: str,
    result: BackupResult | None = None,
    error: str | None = None,
) -> None:
    """Write ``backup.succeeded`` or ``backup.failed`` as an event."""
    if result is not None:
        name = result.path.rsplit("/", 1)[-1]
        event = NewEvent(
            kind="backup.succeeded",
            subject_type="backup",
            subject_id=name,
            actor=actor,
            payload={
                "path": result.path,
                "size": result.size,
                "entries": result.entries,
                "globals_path": result.globals_path,
                "pruned": result.pruned,
                "duration_s": result.duration_s,
            },
        )
    else:
        event = NewEvent(
            kind="backup.failed",
            subject_type="backup",
            subject_id="-",
            actor=actor,
            payload={"error": error or "unknown"},
        )
    async with sessions() as s:
        await append(s, event)
        await s.commit()


async def take_backup(
    settings: Settings, database_url: str, sessions: async_sessionmaker[AsyncSession], *, actor: str
) -> BackupResult:
    """Run one backup in a worker thread and record its event; re-raises the failure after recording it."""
    try:
        directory = backup_dir_for(settings.backup_dir, settings.data_path)
        result = await asyncio.to_thread(
            run_backup,
            database_url,
            directory,
            keep=settings.backup_keep,
            with_globals=settings.backup_globals,
            timeout_s=settings.backup_timeout_s,
        )
    except UnideskError as exc:
        log.error("backup failed", error=exc.detail)
        try:
            await record_backup(sessions, actor=actor, error=exc.detail)
        except Exception as rec:  # the database itself may be what failed
            log.error("could not record the failed backup", error=f"{type(rec).__name__}")
        raise
    await record_backup(sessions, actor=actor, result=result)
    return result


async def _last_backup_event(sessions: async_sessionmaker[AsyncSession]) -> Event | None:
    async with sessions() as s:
        return await s.scalar(
            select(Event)
            .where(Event.kind.in_(("backup.succeeded", "backup.failed")))
            .order_by(Event.id.desc())
            .limit(1)
        )


def backup_check(state: Any) -> Any:
    """/health check: the last backup's outcome (and staleness while the schedule is on)."""

    async def check() -> str | None:
        schedule: BackupSchedule | None = state.components.get("backup")
        last = await _last_backup_event(state.sessions)
        if (
            schedule is not None
            and schedule.error
            and (last is None or last.ts < schedule.error_at)
        ):
            return schedule.error
        if last is None:
            return None
        if last.kind == "backup.failed":
            return f"last backup failed at {last.ts.isoformat(timespec='seconds')}: {last.payload.get('error', '?')}"
        if schedule is not None and datetime.now(UTC) - last.ts > STALE_AFTER:
            return f"no successful backup since {last.ts.isoformat(timespec='seconds')}"
        return None

    return check


class BackupSchedule:
    """Takes the daily backup at ``settings.backup_daily_at`` (UTC)."""

    name = "backup"

    def __init__(self, state: Any) -> None:
        self.state = state
        self.error: str | None = None
        """Why the last scheduled run failed (shown until a newer backup event exists)."""
        self.error_at = datetime.min.replace(tzinfo=UTC)
        self._task: asyncio.Task[None] | None = None

    @property
    def settings(self) -> Settings:
        return self.state.settings  # type: ignore[no-any-return]

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="backup-schedule")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])

    async def _loop(self) -> None:
        while True:
            due = next_run(self.settings.backup_daily_at, datetime.now(UTC))
            await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
            try:
                await self.run_due(due)
            except Exception as exc:  # e.g. the database is down: show it, try again tomorrow
                self._failed(
                    f"scheduled backup at {due.isoformat(timespec='minutes')} did not run: {type(exc).__name__}"
                )
                log.exception("scheduled backup did not run")

    def _failed(self, reason: str) -> None:
        self.error = reason
        self.error_at = datetime.now(UTC)

    async def run_due(self, slot: datetime) -> BackupResult | None:
        """Run the backup for ``slot`` unless another replica holds the lock or already did it."""
        engine = self.state.engine
        async with engine.connect() as conn:
            got = (
                await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": BACKUP_LOCK_KEY})
            ).scalar()
            await conn.commit()
            if not got:
                return None
            try:
                last = await _last_backup_event(self.state.sessions)
                if last is not None and last.kind == "backup.succeeded" and last.ts >= slot:
                    return None
                try:
                    result = await take_backup(
                        self.settings,
                        self.state.db_handle.url,
                        self.state.sessions,
                        actor="system:backup",
                    )
                except UnideskError as exc:
                    self._failed(f"scheduled backup failed: {exc.detail}")
                    return None
                except Exception as exc:  # recording the event failed: keep the reason for /health
                    self._failed(f"scheduled backup could not be recorded: {type(exc).__name__}")
                    log.exception("scheduled backup")
                    return None
                self.error = None
                return result
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": BACKUP_LOCK_KEY})
                await conn.commit()
