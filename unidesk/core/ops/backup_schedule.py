"""The daily backup inside the server: schedule, one runner across replicas, events, /health check.

Each backup is an event: ``backup.succeeded`` (path, size, pruned snapshots) or
``backup.failed`` (the reason). Several replicas share one database; a PostgreSQL advisory
lock lets exactly one of them run a given day's backup, and a replica that finds that day's
``backup.succeeded`` already written skips it. ``/health`` shows the last outcome: a failed
backup is a reason, and so, while the schedule is on, is a newest snapshot older than
``STALE_AFTER`` (26 h), or none at all 26 h after the schedule started.

Time comes from one clock (``BackupSchedule.clock``, ``datetime.now(UTC)`` unless a test
injects one): it stamps snapshot names (``taken_at`` in the event) and ages them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any

import structlog
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk.core.background import cancel_and_wait
from unidesk.core.events.models import Event
from unidesk.core.events.writer import NewEvent, append
from unidesk.core.ops.backup import BackupResult, backup_dir_for, run_backup
from unidesk.core.ops.health import Warn
from unidesk.core.settings import Settings
from unidesk.errors import UnideskError

__all__ = [
    "BACKUP_LOCK_KEY",
    "STALE_AFTER",
    "BackupSchedule",
    "backup_check",
    "next_run",
    "record_backup",
    "take_backup",
    "taken_at",
]

log = structlog.get_logger("unidesk.backup")

BACKUP_LOCK_KEY = 0x0B5EC0DE
"""Advisory lock key held by the replica that runs a backup."""
STALE_AFTER = timedelta(hours=26)
"""A newest snapshot older than this makes /health degraded while the schedule is on."""

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def next_run(daily_at: str, now: datetime) -> datetime:
    """The next UTC instant at ``HH:MM`` strictly after ``now``."""
    hh, mm = (int(x) for x in daily_at.split(":"))
    candidate = datetime.combine(now.astimezone(UTC).date(), dtime(hh, mm), tzinfo=UTC)
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
                "manual": result.manual,
                "taken_at": result.taken_at,
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
    settings: Settings,
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    *,
    actor: str,
    manual: bool = False,
    now: datetime | None = None,
) -> BackupResult:
    """Run one backup in a worker thread and record its event; re-raises the failure after
    recording it."""
    try:
        directory = backup_dir_for(settings.backup_dir, settings.data_path)
        result = await asyncio.to_thread(
            run_backup,
            database_url,
            directory,
            keep_days=settings.backup_keep,
            keep_manual=settings.backup_keep_manual,
            manual=manual,
            with_globals=settings.backup_globals,
            timeout_s=settings.backup_timeout_s,
            now=now,
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


async def _last_backup_event(
    sessions: async_sessionmaker[AsyncSession],
    kinds: tuple[str, ...] = ("backup.succeeded", "backup.failed"),
    *,
    daily_only: bool = False,
) -> Event | None:
    query = select(Event).where(Event.kind.in_(kinds))
    if daily_only:
        query = query.where(func.coalesce(Event.payload["manual"].astext, "false") != "true")
    async with sessions() as s:
        return await s.scalar(query.order_by(Event.id.desc()).limit(1))


def taken_at(event: Event) -> datetime:
    """When a ``backup.succeeded`` snapshot was taken (its name's stamp; older events: the event
    time)."""
    stamp = (event.payload or {}).get("taken_at")
    return datetime.fromisoformat(stamp) if stamp else event.ts


def backup_check(state: Any) -> Any:
    """/health check: the last backup's outcome, and the newest snapshot's age while the schedule
    is on. No backup at all and no schedule is a warning (the server works, nothing protects its
    data)."""

    async def check() -> str | None:
        schedule: BackupSchedule | None = state.components.get("backup")
        last = await _last_backup_event(state.sessions)
        if (
            schedule is not None
            and schedule.error
            and (last is None or last.ts < schedule.error_at)
        ):
            return schedule.error
        if last is not None and last.kind == "backup.failed":
            return (
                f"last backup failed at {last.ts.isoformat(timespec='seconds')}: "
                f"{last.payload.get('error', '?')}"
            )
        if schedule is None:
            if last is None:
                return Warn(
                    "no backup exists and none is scheduled: run `unidesk-server backup`, or set "
                    "backup_daily_at for a daily one"
                )
            return None
        now = schedule.clock()
        newest = await _last_backup_event(state.sessions, ("backup.succeeded",))
        if newest is None:
            if now - schedule.started_at > STALE_AFTER:
                return (
                    "no backup taken since the schedule started at "
                    f"{schedule.started_at.isoformat(timespec='seconds')}"
                )
            return None
        age = now - taken_at(newest)
        if age > STALE_AFTER:
            return (
                f"newest snapshot is {age.total_seconds() / 3600:.0f} h old (taken "
                f"{taken_at(newest).isoformat(timespec='seconds')}); more than "
                f"{STALE_AFTER.total_seconds() / 3600:.0f} h"
            )
        return None

    return check


class BackupSchedule:
    """Takes the daily backup at ``settings.backup_daily_at`` (UTC); ``clock`` is injectable for
    tests."""

    name = "backup"

    def __init__(self, state: Any, clock: Clock = _utcnow) -> None:
        self.state = state
        self.clock = clock
        self.started_at = clock()
        self.error: str | None = None
        """Why the last scheduled run failed (shown until a newer backup event exists)."""
        self.error_at = datetime.min.replace(tzinfo=UTC)
        self._task: asyncio.Task[None] | None = None

    @property
    def settings(self) -> Settings:
        return self.state.settings

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="backup-schedule")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])

    async def _loop(self) -> None:
        while True:
            due = next_run(self.settings.backup_daily_at, self.clock())
            await asyncio.sleep(max(0.0, (due - self.clock()).total_seconds()))
            try:
                await self.run_due(due)
            except Exception as exc:  # e.g. the database is down: show it, try again tomorrow
                self._failed(
                    f"scheduled backup at {due.isoformat(timespec='minutes')} did not run: "
                    f"{type(exc).__name__}"
                )
                log.exception("scheduled backup did not run")

    def _failed(self, reason: str) -> None:
        self.error = reason
        self.error_at = datetime.now(UTC)  # compared with event times, which are real time

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
                last = await _last_backup_event(
                    self.state.sessions, ("backup.succeeded",), daily_only=True
                )
                if last is not None and taken_at(last) >= slot:
                    return None
                try:
                    result = await take_backup(
                        self.settings,
                        self.state.db_handle.url,
                        self.state.sessions,
                        actor="system:backup",
                        now=self.clock(),
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
