"""Backups against the real embedded PostgreSQL: the restore drill, pruning, the schedule, and
every fault."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from unidesk.core.db.engine import libpq_url
from unidesk.core.ops.backup import (
    list_snapshots,
    restore_dump,
    retained,
    run_backup,
    verify_dump,
)
from unidesk.core.ops.backup_schedule import BACKUP_LOCK_KEY, BackupSchedule, next_run, take_backup
from unidesk.core.settings import Settings
from unidesk.errors import BadRequest, Conflict, Unavailable

SHA = "c" * 40


def _conn(url: str) -> psycopg.Connection:
    return psycopg.connect(libpq_url(url), autocommit=True)


def snapshot(url: str) -> dict[str, list[str]]:
    """Every row of every table in the public schema (as JSON text, sorted) plus the alembic
    version."""
    with _conn(url) as c:
        tables = [
            r[0]
            for r in c.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        return {
            t: sorted(r[0] for r in c.execute(f'SELECT to_jsonb(x)::text FROM public."{t}" x'))
            for t in tables
        }


def table_count(url: str) -> int:
    with _conn(url) as c:
        return c.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
            "'information_schema')"
        ).fetchone()[0]  # type: ignore[index]


async def populate(client: AsyncTestClient, admin: dict[str, str]) -> None:
    """Users, tokens, a node token and tasks in several states, all through the API."""
    r = await client.post(
        "/api/users",
        json={"username": "bo", "password": "member-password", "role": "member"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/node-tokens", json={"name": "gpu-box"}, headers=admin)
    assert r.status_code == 201, r.text
    ids = []
    for i in range(5):
        r = await client.post(
            "/api/tasks",
            headers=admin,
            json={
                "name": f"drill-{i}",
                "code_repo_url": "https://git.example.org/a.git",
                "code_commit_id": SHA,
                "env_repo_url": "https://git.example.org/env.git",
                "env_commit_id": SHA,
                "dockerfile_path": "Dockerfile",
                "command": ["echo", f"héllo {i}"],
                "env": {"K": "v"},
                "resources": {"cpus": 1, "memory_mb": 64},
            },
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    r = await client.post(f"/api/tasks/{ids[0]}/cancel", headers=admin)
    assert r.status_code == 200, r.text


def cli(
    *args: str, database_url: str, data_dir: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    import os

    e = {k: v for k, v in os.environ.items() if not k.startswith("UNIDESK_")}
    e.update(
        {
            "UNIDESK_DATABASE_URL": database_url,
            "UNIDESK_DATA_DIR": str(data_dir),
            "UNIDESK_LOG_FORMAT": "console",
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "unidesk.core.cli", *args],
        env=e,
        capture_output=True,
        text=True,
        timeout=300,
    )


async def test_restore_drill(
    client: AsyncTestClient,
    admin_headers: dict[str, str],
    database_url: str,
    pg_cluster: Any,
    tmp_path: Path,
) -> None:
    """Populate, back up with the CLI, restore into a fresh empty database, compare everything."""
    await populate(client, admin_headers)
    before = snapshot(database_url)
    assert len(before["tasks"]) == 5 and len(before["users"]) == 2 and len(before["events"]) > 5
    backups = tmp_path / "backups"
    backups.mkdir()
    done = cli("backup", "--dir", str(backups), database_url=database_url, data_dir=tmp_path / "d")
    assert done.returncode == 0, done.stderr
    [dump] = list_snapshots(backups)
    assert (
        dump.with_name(dump.name.replace(".dump", ".globals.sql")).read_text().count("CREATE ROLE")
        >= 1
    )
    assert "verified with pg_restore --list" in done.stdout
    with _conn(database_url) as c:
        kind, payload = c.execute(
            "SELECT kind, payload FROM events ORDER BY id DESC LIMIT 1"
        ).fetchone()  # type: ignore[misc]
    assert kind == "backup.succeeded" and payload["size"] == dump.stat().st_size

    target = pg_cluster.empty_database("restore")
    done = cli("restore", str(dump), database_url=target, data_dir=tmp_path / "d2")
    assert done.returncode == 0, done.stderr
    after = snapshot(target)
    restored_events = after.pop("events")
    source_events = before.pop("events")
    assert after == before  # every table, every row, and alembic_version
    extra = [e for e in restored_events if e not in source_events]
    assert len(extra) == 1 and '"kind": "backup.restored"' in extra[0]
    assert sorted(set(restored_events) - set(extra)) == source_events
    with _conn(target) as c:  # sequences came along: new events continue after the restored ids
        max_id = c.execute("SELECT max(id) FROM events").fetchone()[0]  # type: ignore[index]
        nxt = c.execute("SELECT nextval(pg_get_serial_sequence('events', 'id'))").fetchone()[0]  # type: ignore[index]
    assert nxt > max_id


def test_keeps_last_n_and_never_prunes_on_failure(database_url: str, tmp_path: Path) -> None:
    t0 = datetime(2030, 1, 1, 3, 0, tzinfo=UTC)
    for day in range(9):
        result = run_backup(database_url, tmp_path, keep_days=7, now=t0 + timedelta(days=day))
    names = [p.name for p in list_snapshots(tmp_path)]
    assert names == [f"unidesk-203001{d:02d}T030000Z.dump" for d in range(3, 10)]
    assert result.pruned == ["unidesk-20300102T030000Z.dump"]
    assert sorted(p.name for p in tmp_path.glob("*.globals.sql")) == [
        n.replace(".dump", ".globals.sql") for n in names
    ]
    assert not list(tmp_path.glob(".*partial"))
    with pytest.raises(Unavailable):
        run_backup(
            "postgresql://postgres@/nope?host=/nonexistent-socket-dir", tmp_path, keep_days=1
        )
    assert [p.name for p in list_snapshots(tmp_path)] == names  # a failed run prunes nothing


def test_two_backups_in_one_second_do_not_overwrite(database_url: str, tmp_path: Path) -> None:
    now = datetime(2030, 5, 5, tzinfo=UTC)
    a = run_backup(database_url, tmp_path, now=now, with_globals=False, manual=True)
    b = run_backup(database_url, tmp_path, now=now, with_globals=False, manual=True)
    assert a.path != b.path and len(list_snapshots(tmp_path)) == 2 and a.globals_path is None


def test_pg_dump_failing_reports_without_secrets(tmp_path: Path) -> None:
    with pytest.raises(Unavailable) as err:
        run_backup("postgresql://bob:s3cret-pw@127.0.0.1:1/db", tmp_path)
    assert "pg_dump failed" in err.value.detail and "s3cret-pw" not in err.value.detail
    assert list(tmp_path.iterdir()) == []


def test_backup_dir_missing(database_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "not-mounted"
    done = cli("backup", "--dir", str(missing), database_url=database_url, data_dir=tmp_path / "d")
    assert done.returncode == 1
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr
    assert (
        not missing.exists()
    )  # never created: a missing mount must not become a folder on the root disk
    with _conn(database_url) as c:
        kind, payload = c.execute(
            "SELECT kind, payload FROM events ORDER BY id DESC LIMIT 1"
        ).fetchone()  # type: ignore[misc]
    assert kind == "backup.failed" and "does not exist" in payload["error"]


def test_backup_dir_read_only(database_url: str, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "--bind", str(ro), str(ro)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        with pytest.raises(BadRequest) as err:
            run_backup(database_url, ro)
        assert "cannot write to backup dir" in err.value.detail and "Read-only" in err.value.detail
        assert list(ro.iterdir()) == []
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_cli_rejects_bad_keep(database_url: str, tmp_path: Path) -> None:
    done = cli("backup", "--keep", "0", database_url=database_url, data_dir=tmp_path)
    assert done.returncode == 2 and "--keep" in done.stderr


@pytest.fixture
def good_dump(database_url: str, tmp_path: Path) -> Path:
    directory = tmp_path / "b"
    directory.mkdir()
    return Path(run_backup(database_url, directory, with_globals=False).path)


def test_corrupt_dump_refused_target_untouched(
    good_dump: Path, pg_cluster: Any, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.dump"
    garbage.write_bytes(b"not a dump at all\n" * 100)
    target = pg_cluster.fresh_database("nonempty")
    before = snapshot(target)
    for bad in (garbage, tmp_path / "missing.dump"):
        with pytest.raises(BadRequest):
            restore_dump(bad, target, force=True)
    empty = tmp_path / "empty.dump"
    empty.write_bytes(b"")
    with pytest.raises(BadRequest, match="empty"):
        restore_dump(empty, target, force=True)
    assert snapshot(target) == before
    done = cli("restore", str(garbage), "--force", database_url=target, data_dir=tmp_path / "d")
    assert (
        done.returncode == 1
        and "not a readable pg_dump archive" in done.stderr
        and "Traceback" not in done.stderr
    )
    assert snapshot(target) == before


def test_truncated_dump_rolls_back(good_dump: Path, pg_cluster: Any, tmp_path: Path) -> None:
    """A dump cut in its data section may pass --list, but the one-transaction restore leaves
    nothing behind."""
    data = good_dump.read_bytes()
    cut = tmp_path / "cut.dump"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    target = pg_cluster.empty_database("cut")
    with pytest.raises((BadRequest, Unavailable)):
        restore_dump(cut, target)
    assert table_count(target) == 0
    forced = pg_cluster.fresh_database("cutforce")
    before = snapshot(forced)
    with pytest.raises((BadRequest, Unavailable)):
        restore_dump(cut, forced, force=True)
    assert snapshot(forced) == before


def test_non_empty_target_needs_force(good_dump: Path, database_url: str, pg_cluster: Any) -> None:
    target = pg_cluster.fresh_database("busy")
    with _conn(target) as c:
        c.execute("CREATE TABLE leftover (x int)")
        c.execute(
            "INSERT INTO users (id, username, password_hash, role, disabled) VALUES "
            "(gen_random_uuid(), 'stray', 'x', 'member', false)"
        )
    before = snapshot(target)
    with pytest.raises(Conflict, match="not empty"):
        restore_dump(good_dump, target)
    assert snapshot(target) == before
    result = restore_dump(good_dump, target, force=True)
    assert result.forced
    assert snapshot(target) == snapshot(
        database_url
    )  # replaced wholesale: no stray user, no leftover table


def test_dump_of_a_foreign_database_refused(pg_cluster: Any, tmp_path: Path) -> None:
    other = pg_cluster.empty_database("foreign")
    with _conn(other) as c:
        c.execute("CREATE TABLE t (x int)")
    with pytest.raises(BadRequest, match="no UniDesk schema"):
        run_backup(other, tmp_path)
    assert list_snapshots(tmp_path) == []


def test_verify_lists_entries(good_dump: Path) -> None:
    entries = verify_dump(good_dump)
    assert any("TABLE DATA public tasks" in e for e in entries)


def test_next_run() -> None:
    now = datetime(2030, 1, 1, 3, 0, tzinfo=UTC)
    assert next_run("03:30", now) == datetime(2030, 1, 1, 3, 30, tzinfo=UTC)
    assert next_run("03:00", now) == datetime(2030, 1, 2, 3, 0, tzinfo=UTC)
    assert next_run("00:05", now) == datetime(2030, 1, 2, 0, 5, tzinfo=UTC)


async def test_schedule_runs_once_per_slot_and_health_shows_failures(
    client: AsyncTestClient,
    admin_headers: dict[str, str],
    settings: Settings,
    database_url: str,
    tmp_path: Path,
) -> None:
    import msgspec

    state = client.app.state
    state.settings = msgspec.structs.replace(
        settings, backup_daily_at="03:00", backup_dir=str(tmp_path)
    )
    schedule = BackupSchedule(state)
    state.components["backup"] = schedule
    slot = datetime.now(UTC) - timedelta(minutes=1)
    with _conn(database_url) as holder:  # another replica holds the lock: this one skips
        holder.execute("SELECT pg_advisory_lock(%s)", (BACKUP_LOCK_KEY,))
        assert await schedule.run_due(slot) is None
        holder.execute("SELECT pg_advisory_unlock(%s)", (BACKUP_LOCK_KEY,))
    assert list_snapshots(tmp_path) == []
    result = await schedule.run_due(slot)
    assert result is not None and len(list_snapshots(tmp_path)) == 1
    assert await schedule.run_due(slot) is None  # that slot is done (by any replica)
    state.health_checks.invalidate()  # results are shared for 1 s
    r = await client.get("/health")
    assert r.json()["checks"]["backup"] == "ok"

    state.settings = msgspec.structs.replace(state.settings, backup_dir=str(tmp_path / "gone"))
    assert await schedule.run_due(datetime.now(UTC)) is None
    state.health_checks.invalidate()  # results are shared for 1 s
    r = await client.get("/health", headers=admin_headers)  # the check's own words: admins
    assert r.status_code == 503
    assert "does not exist" in r.json()["checks"]["backup"]
    with _conn(database_url) as c:
        assert c.execute(
            "SELECT kind FROM events WHERE kind LIKE 'backup.%' ORDER BY id"
        ).fetchall() == [("backup.succeeded",), ("backup.failed",)]
    state.settings = msgspec.structs.replace(state.settings, backup_dir=str(tmp_path))
    assert await schedule.run_due(datetime.now(UTC)) is not None
    state.health_checks.invalidate()  # results are shared for 1 s
    r = await client.get("/health")
    assert r.json()["checks"]["backup"] == "ok"


def test_retention_counts_beijing_days() -> None:
    """16:30 UTC and 15:59 UTC of one UTC date fall on two Beijing days (UTC+8 midnight is 16:00
    UTC)."""
    names = [
        "unidesk-20300101T155900Z.dump",  # Beijing 1 Jan 23:59
        "unidesk-20300101T163000Z.dump",  # Beijing 2 Jan 00:30
        "unidesk-20300102T100000Z.dump",  # Beijing 2 Jan 18:00: newest of 2 Jan
        "unidesk-20300102T100000Z-1.manual.dump",
        "unidesk-20300102T110000Z.manual.dump",
    ]
    kept = retained([Path(n) for n in names], keep_days=7, keep_manual=1)
    assert [p.name for p in kept] == [names[0], names[2], names[4]]
    assert retained([Path(n) for n in names], keep_days=1, keep_manual=0) == [Path(names[2])]


class FakeClock:
    """The schedule's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_ten_days_of_schedule_with_manual_bursts(
    client: AsyncTestClient, admin_headers: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    """Ten simulated days on a controlled clock: dailies at 19:00 UTC (03:00 Beijing), an extra
    daily the same Beijing day, bursts of manual backups; then /health as the newest ages."""
    import msgspec

    state = client.app.state
    state.settings = msgspec.structs.replace(
        settings,
        backup_daily_at="19:00",
        backup_dir=str(tmp_path),
        backup_keep=7,
        backup_keep_manual=2,
        backup_globals=False,
    )
    start = datetime(2030, 3, 1, 18, 0, tzinfo=UTC)
    clock = FakeClock(start)
    schedule = BackupSchedule(state, clock=clock)
    state.components["backup"] = schedule

    async def health() -> tuple[int, str]:
        state.health_checks.invalidate()
        r = await client.get("/health", headers=admin_headers)
        return r.status_code, r.json()["checks"]["backup"]

    assert await health() == (200, "ok")  # schedule just started, nothing due yet
    clock.now = start + timedelta(hours=27)
    code, reason = await health()
    assert code == 503 and "no backup taken since the schedule started" in reason

    for day in range(10):
        slot = next_run("19:00", datetime(2030, 3, 1, tzinfo=UTC) + timedelta(days=day))
        clock.now = slot + timedelta(seconds=5)
        assert await schedule.run_due(slot) is not None
        assert await schedule.run_due(slot) is None  # one per slot, whoever runs it
        if day == 3:  # a second daily later the same Beijing day (04:00): it replaces the first
            clock.now = slot + timedelta(hours=1)
            assert await schedule.run_due(slot + timedelta(hours=1)) is not None
        if day in (4, 8):  # a burst of manual backups never touches the dailies
            for i in range(3):
                clock.now = slot + timedelta(hours=2, minutes=i)
                await take_backup(
                    state.settings,
                    state.db_handle.url,
                    state.sessions,
                    actor="test",
                    manual=True,
                    now=clock(),
                )
        assert await health() == (200, "ok")

    names = [p.name for p in list_snapshots(tmp_path)]
    dailies = [n for n in names if not n.endswith(".manual.dump")]
    manuals = [n for n in names if n.endswith(".manual.dump")]
    # The newest of each of the last 7 Beijing days (5..11 March): UTC 4..10 March, and on
    # 4 March the later of its two dailies.
    assert dailies == ["unidesk-20300304T200000Z.dump"] + [
        f"unidesk-203003{d:02d}T190005Z.dump" for d in range(5, 11)
    ]
    assert manuals == [
        "unidesk-20300309T210100Z.manual.dump",
        "unidesk-20300309T210200Z.manual.dump",
    ]

    last_daily = datetime(2030, 3, 10, 19, 0, 5, tzinfo=UTC)
    clock.now = last_daily + timedelta(hours=25)
    assert await health() == (200, "ok")
    clock.now = last_daily + timedelta(hours=27)
    code, reason = await health()
    assert code == 503 and "newest snapshot is 27 h old" in reason
