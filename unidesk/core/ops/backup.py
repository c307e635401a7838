"""Backups of the one database: ``pg_dump`` snapshots, verified, pruned by day; restore.

A snapshot is ``unidesk-<UTC stamp>.dump`` (daily, taken by the schedule) or
``unidesk-<UTC stamp>.manual.dump`` (taken on demand), custom format, plus ``….globals.sql``
(roles and tablespaces from ``pg_dumpall --globals-only``) when ``backup_globals`` is on.

Retention (``retained``): of the daily snapshots, the newest of each of the last ``keep_days``
Beijing calendar days (Asia/Shanghai, UTC+8) that have one; of the manual snapshots, the
newest ``keep_manual``. The two pools are pruned separately, so a burst of manual backups
never wipes out the week of dailies. The stamp in the name (not the file's mtime) dates a
snapshot. It is written
as ``….partial`` and renamed only after ``pg_restore --list`` reads it back and finds the
schema version table in it, so a file with the final name is always a readable dump.

Restore refuses a file ``pg_restore`` cannot read (the target is not touched) and a target
that already holds tables unless forced. It runs in ONE transaction with errors stopping it
(``--single-transaction --exit-on-error``): a failure leaves the target exactly as it was.
A forced restore drops the target's schemas first, inside that same transaction.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import psycopg
import structlog
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from unidesk.core.db.embedded import pg_bin
from unidesk.core.db.engine import libpq_url
from unidesk.errors import BadRequest, Conflict, Unavailable

__all__ = [
    "BEIJING",
    "SNAPSHOT_RE",
    "BackupResult",
    "RestoreResult",
    "backup_dir_for",
    "list_snapshots",
    "restore_dump",
    "retained",
    "run_backup",
    "snapshot_time",
    "verify_dump",
]

log = structlog.get_logger("unidesk.backup")

SNAPSHOT_RE = re.compile(r"^unidesk-(\d{8}T\d{6}Z)(?:-(\d+))?(\.manual)?\.dump$")
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
"""The calendar that daily retention counts days in (fixed UTC+8, no daylight saving)."""
_USER_SCHEMAS_SQL = (
    "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema', "
    "'pg_toast')"
    " AND nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%'"
)
_TABLES_SQL = (
    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
    "c.relkind IN ('r', 'p', 'v', 'm', 'S')"
    " AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
)


class BackupResult(msgspec.Struct, kw_only=True):
    path: str
    size: int
    entries: int
    """TOC entries ``pg_restore --list`` found in the dump."""
    globals_path: str | None
    manual: bool
    taken_at: str
    """ISO UTC instant in the snapshot's name (from the clock the backup was given)."""
    pruned: list[str]
    duration_s: float


class RestoreResult(msgspec.Struct, kw_only=True):
    dump: str
    database: str
    tables: int
    alembic_version: list[str]
    forced: bool
    duration_s: float


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A keyword connection string WITHOUT the password (it goes in PGPASSWORD, never on a command
    line)."""
    params = conninfo_to_dict(libpq_url(url))
    password = params.pop("password", None)
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items()}), env


def _database_name(url: str) -> str:
    return str(conninfo_to_dict(libpq_url(url)).get("dbname", "?"))


def _first_error(stderr: str) -> str:
    lines = [
        ln.strip()
        for ln in stderr.splitlines()
        if ln.strip() and "RuntimeDirWarning" not in ln and "return Path(" not in ln
    ]
    errors = [ln for ln in lines if "error" in ln.lower() or "fatal" in ln.lower()]
    return ((errors or lines or ["no output"])[0])[:300]


def _run(
    argv: list[str], env: dict[str, str] | None, timeout_s: float
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{Path(argv[0]).name} did not finish within {timeout_s:g} s") from None


def backup_dir_for(configured: str, data_path: Path) -> Path:
    """The backup directory: a configured one must already exist (a missing mount is an error,
    never a silent write to the root disk); the default ``<data_dir>/backups`` is created."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise BadRequest(
                f"backup dir {path} does not exist or is not a directory; create (or mount) it "
                "first"
            )
        return path.resolve()
    path = data_path / "backups"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadRequest(f"cannot create backup dir {path}: {exc.strerror}") from None
    return path


def verify_dump(path: Path, *, timeout_s: float = 600.0) -> list[str]:
    """The TOC lines of a readable UniDesk dump; ``BadRequest`` if pg_restore cannot read it,
    it is empty, or it holds no ``alembic_version`` data (not a UniDesk database)."""
    if not path.is_file():
        raise BadRequest(f"{path}: no such dump file")
    if path.stat().st_size == 0:
        raise BadRequest(f"{path}: the dump is empty (0 bytes)")
    done = _run([pg_bin("pg_restore"), "--list", str(path)], None, timeout_s)
    if done.returncode != 0:
        raise BadRequest(
            f"{path.name} is not a readable pg_dump archive: {_first_error(done.stderr)}"
        )
    entries = [ln for ln in done.stdout.splitlines() if ln and not ln.startswith(";")]
    if not any("TABLE DATA public alembic_version" in ln for ln in entries):
        raise BadRequest(
            f"{path.name} holds no UniDesk schema (no alembic_version data); refusing it as empty"
        )
    return entries


def list_snapshots(directory: Path) -> list[Path]:
    """Completed snapshots, oldest first (names sort by their UTC stamp)."""

    def key(p: Path) -> tuple[str, int]:
        m = SNAPSHOT_RE.match(p.name)
        return (m.group(1), int(m.group(2) or 0)) if m else ("", 0)

    return sorted((p for p in directory.iterdir() if SNAPSHOT_RE.match(p.name)), key=key)


def snapshot_time(path: Path) -> datetime:
    """The UTC instant in a snapshot's name."""
    m = SNAPSHOT_RE.match(path.name)
    if not m:
        raise ValueError(f"{path.name} is not a snapshot name")
    return datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _is_manual(path: Path) -> bool:
    m = SNAPSHOT_RE.match(path.name)
    return bool(m and m.group(3))


def retained(snapshots: list[Path], *, keep_days: int, keep_manual: int) -> list[Path]:
    """The snapshots retention keeps (see the module docstring); ``snapshots`` oldest first."""
    newest_per_day: dict[date, Path] = {}
    for p in snapshots:
        if not _is_manual(p):
            newest_per_day[snapshot_time(p).astimezone(BEIJING).date()] = p  # later ones win
    days = sorted(newest_per_day)[-keep_days:] if keep_days > 0 else []
    keep = {newest_per_day[d] for d in days}
    manual = [p for p in snapshots if _is_manual(p)]
    keep.update(manual[-keep_manual:] if keep_manual > 0 else [])
    return [p for p in snapshots if p in keep]


def _globals_of(dump: Path) -> Path:
    return dump.with_name(dump.name[: -len(".dump")] + ".globals.sql")


def _new_name(directory: Path, now: datetime, manual: bool) -> Path:
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = ".manual.dump" if manual else ".dump"
    path = directory / f"unidesk-{stamp}{suffix}"
    n = 1
    while path.exists():
        path = directory / f"unidesk-{stamp}-{n}{suffix}"
        n += 1
    return path


def _prune(directory: Path, keep_days: int, keep_manual: int) -> list[str]:
    snapshots = list_snapshots(directory)
    kept = set(retained(snapshots, keep_days=keep_days, keep_manual=keep_manual))
    gone = [p for p in snapshots if p not in kept]
    for p in gone:
        p.unlink(missing_ok=True)
        _globals_of(p).unlink(missing_ok=True)
    return [p.name for p in gone]


def run_backup(
    database_url: str,
    directory: Path,
    *,
    keep_days: int = 7,
    keep_manual: int = 3,
    manual: bool = False,
    with_globals: bool = True,
    timeout_s: float = 3600.0,
    now: datetime | None = None,
) -> BackupResult:
    """Dump, verify, publish under the final name, prune (``retained``). Blocking.

    ``manual`` names it a manual snapshot (its own pool); ``now`` stamps the name (tests pass
    a controlled clock).

    Raises ``BadRequest`` (directory unusable), ``Unavailable`` (pg_dump failed or timed out);
    nothing is left behind on failure and older snapshots are never pruned by a failed run."""
    started = time.monotonic()
    if not directory.is_dir():
        raise BadRequest(f"backup dir {directory} does not exist or is not a directory")
    taken_at = (now or datetime.now(UTC)).astimezone(UTC)
    final = _new_name(directory, taken_at, manual)
    partial = final.with_name("." + final.name + ".partial")
    globals_partial = partial.with_name(
        partial.name.replace(".dump.partial", ".globals.sql.partial")
    )
    conninfo, env = _libpq(database_url)
    try:
        try:
            partial.touch()
        except OSError as exc:
            raise BadRequest(f"cannot write to backup dir {directory}: {exc.strerror}") from None
        done = _run(
            [pg_bin("pg_dump"), "--format=custom", "--file", str(partial), "--dbname", conninfo],
            env,
            timeout_s,
        )
        if done.returncode != 0:
            raise Unavailable(f"pg_dump failed: {_first_error(done.stderr)}")
        entries = verify_dump(partial)
        globals_path = None
        if with_globals:
            g = _run(
                [
                    pg_bin("pg_dumpall"),
                    "--globals-only",
                    "--file",
                    str(globals_partial),
                    "--dbname",
                    conninfo,
                ],
                env,
                timeout_s,
            )
            if g.returncode != 0:
                raise Unavailable(
                    f"pg_dumpall --globals-only failed: {_first_error(g.stderr)} (set "
                    "backup_globals = false "
                    "where the database user may not read roles)"
                )
            globals_path = _globals_of(final)
            os.replace(globals_partial, globals_path)
        os.replace(partial, final)
    except OSError as exc:
        raise BadRequest(f"cannot write to backup dir {directory}: {exc.strerror}") from None
    finally:
        for leftover in (partial, globals_partial):
            with contextlib.suppress(OSError):
                leftover.unlink(missing_ok=True)
    pruned = _prune(directory, keep_days, keep_manual)
    result = BackupResult(
        path=str(final),
        size=final.stat().st_size,
        entries=len(entries),
        globals_path=str(globals_path) if globals_path else None,
        manual=manual,
        taken_at=taken_at.isoformat(timespec="seconds"),
        pruned=pruned,
        duration_s=round(time.monotonic() - started, 3),
    )
    log.info("backup written", path=result.path, size=result.size, pruned=pruned)
    return result


def _target_state(database_url: str) -> tuple[int, list[str]]:
    try:
        with psycopg.connect(libpq_url(database_url), connect_timeout=10) as conn:
            tables = (conn.execute(_TABLES_SQL).fetchone() or (0,))[0]  # count(*): always a row
            schemas = [r[0] for r in conn.execute(_USER_SCHEMAS_SQL).fetchall()]
    except psycopg.OperationalError as exc:
        raise Unavailable(
            f"cannot reach the target database: {str(exc).strip().splitlines()[0][:200]}"
        ) from None
    return int(tables), schemas


def _alembic_version(database_url: str) -> list[str]:
    with psycopg.connect(libpq_url(database_url), connect_timeout=10) as conn:
        return sorted(
            r[0] for r in conn.execute("SELECT version_num FROM alembic_version").fetchall()
        )


def _forced_restore(
    dump: Path, conninfo: str, env: dict[str, str], schemas: list[str], timeout_s: float
) -> None:
    """Drop the target's schemas and restore, all in one psql transaction that stops on the first
    error."""
    drops = (
        "".join(f'DROP SCHEMA IF EXISTS "{s}" CASCADE; ' for s in schemas) + "CREATE SCHEMA public;"
    )
    script = subprocess.Popen(
        [pg_bin("pg_restore"), "--no-owner", "--no-acl", "--file", "-", str(dump)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        psql = subprocess.run(
            [
                pg_bin("psql"),
                "-X",
                "-q",
                "--single-transaction",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                drops,
                "-f",
                "-",
                "--dbname",
                conninfo,
            ],
            stdin=script.stdout,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        script.kill()
        raise Unavailable(
            f"restore did not finish within {timeout_s:g} s; the target was rolled back"
        ) from None
    finally:
        if script.stdout:
            script.stdout.close()
    script_err = script.stderr.read().decode(errors="replace") if script.stderr else ""
    if script.wait() != 0:
        raise Unavailable(
            f"pg_restore failed: {_first_error(script_err)}; the target was rolled back"
        )
    if psql.returncode != 0:
        raise Unavailable(
            f"restore failed: {_first_error(psql.stderr)}; the target was rolled back"
        )


def restore_dump(
    dump: Path, database_url: str, *, force: bool = False, timeout_s: float = 3600.0
) -> RestoreResult:
    """Restore ``dump`` into the database at ``database_url`` (see the module docstring).
    Blocking."""
    started = time.monotonic()
    verify_dump(dump)
    tables, schemas = _target_state(database_url)
    database = _database_name(database_url)
    if tables and not force:
        raise Conflict(
            f"database {database} is not empty ({tables} tables/sequences); restore into an empty "
            "database, or pass --force to replace everything in it"
        )
    conninfo, env = _libpq(database_url)
    if tables:
        _forced_restore(dump, conninfo, env, schemas, timeout_s)
    else:
        done = _run(
            [
                pg_bin("pg_restore"),
                "--exit-on-error",
                "--single-transaction",
                "--no-owner",
                "--no-acl",
                "--dbname",
                conninfo,
                str(dump),
            ],
            env,
            timeout_s,
        )
        if done.returncode != 0:
            raise Unavailable(
                f"restore failed: {_first_error(done.stderr)}; the target was rolled back"
            )
    after, _ = _target_state(database_url)
    result = RestoreResult(
        dump=str(dump),
        database=database,
        tables=after,
        alembic_version=_alembic_version(database_url),
        forced=bool(tables),
        duration_s=round(time.monotonic() - started, 3),
    )
    log.info("restore done", dump=str(dump), database=database, forced=result.forced, tables=after)
    return result
