"""Metric points: validation, storage (narrow table + per-run summary), downsampled reads."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import case, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.plugin_api import NewEvent, append
from unidesk.errors import BadRequest
from unidesk.plugins.research import models as m
from unidesk.plugins.research import schemas as s

__all__ = [
    "CHANNEL",
    "MAX_CHART_POINTS",
    "SKIPPED_SAMPLES_KEPT",
    "Point",
    "on_attempt_data",
    "series",
    "store_points",
    "validate_item",
    "validate_items",
]

log = structlog.get_logger("unidesk.plugins.research")
CHANNEL = "metrics"
MAX_CHART_POINTS = 5000
SKIPPED_SAMPLES_KEPT = 5
"""Samples of agent-skipped lines kept per run (the first ones: they point at the cause)."""
_NAME = __import__("re").compile(s.METRIC_NAME_PATTERN)

Point = tuple[str, int, float, datetime]


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(
            f"{where}.value: must be a number, got {type(value).__name__} {str(value)[:40]!r}",
            field=f"{where}.value",
        )
    v = float(value)
    if not math.isfinite(v):
        raise BadRequest(f"{where}.value: must be a finite number, got {v}", field=f"{where}.value")
    return v


def validate_item(item: Any, where: str, now: datetime) -> Point:
    """One metric point from untrusted JSON (a line of the metrics file)."""
    if not isinstance(item, dict):
        raise BadRequest(f"{where}: expected an object with name, step, value", field=where)
    unknown = set(item) - {"name", "step", "value", "time"}
    if unknown:
        raise BadRequest(
            f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}", field=where
        )
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadRequest(
            f"{where}.name: 1-200 characters of letters, digits and _./:- expected, got "
            f"{str(name)[:40]!r}",
            field=f"{where}.name",
        )
    step = item.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= 2**62:
        raise BadRequest(
            f"{where}.step: a non-negative integer expected, got {str(step)[:40]!r}",
            field=f"{where}.step",
        )
    value = _finite(item.get("value"), where)
    ts = item.get("time")
    if ts is None:
        when = now
    elif (
        isinstance(ts, (int, float))
        and not isinstance(ts, bool)
        and math.isfinite(ts)
        and 0 <= ts < 32503680000
    ):
        when = datetime.fromtimestamp(ts, UTC)
    elif isinstance(ts, str):
        try:
            when = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(
                f"{where}.time: seconds since the epoch or an ISO 8601 time expected",
                field=f"{where}.time",
            ) from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    else:
        raise BadRequest(
            f"{where}.time: seconds since the epoch or an ISO 8601 time expected",
            field=f"{where}.time",
        )
    return name, step, value, when


def validate_items(items: Sequence[s.MetricIn]) -> list[Point]:
    """API-submitted points (already typed by msgspec): every value must be finite."""
    now = datetime.now(UTC)
    return [
        (p.name, p.step, _finite(p.value, f"items[{i}]"), p.time or now)
        for i, p in enumerate(items)
    ]


async def _key_ids(session: AsyncSession, names: Iterable[str]) -> dict[str, int]:
    wanted = sorted(set(names))
    await session.execute(
        pg_insert(m.MetricKey).values([{"name": n} for n in wanted]).on_conflict_do_nothing()
    )
    rows = await session.execute(
        select(m.MetricKey.name, m.MetricKey.id).where(m.MetricKey.name.in_(wanted))
    )
    return dict(rows.all())


async def store_points(session: AsyncSession, run_id: int, points: list[Point]) -> None:
    """Upsert points (a later value of the same step wins) and fold them into the summaries."""
    if not points:
        return
    keys = await _key_ids(session, (p[0] for p in points))
    latest: dict[tuple[int, int], dict[str, Any]] = {}
    for name, step, value, ts in points:
        latest[(keys[name], step)] = {
            "run_id": run_id,
            "key_id": keys[name],
            "step": step,
            "value": value,
            "ts": ts,
        }
    rows = list(latest.values())
    ins = pg_insert(m.MetricPoint)
    upsert = ins.on_conflict_do_update(
        index_elements=["run_id", "key_id", "step"],
        set_={"value": ins.excluded.value, "ts": ins.excluded.ts},
    )
    conn = (
        await session.connection()
    )  # Core executemany (no ORM bulk machinery): multi-row VALUES batches
    await conn.execute(upsert, rows)
    summary: dict[int, dict[str, Any]] = {}
    for r in rows:
        cur = summary.get(r["key_id"])
        if cur is None:
            summary[r["key_id"]] = {
                "run_id": run_id,
                "key_id": r["key_id"],
                "points": 1,
                "first_step": r["step"],
                "last_step": r["step"],
                "last_value": r["value"],
                "min_value": r["value"],
                "max_value": r["value"],
            }
            continue
        cur["points"] += 1
        cur["first_step"] = min(cur["first_step"], r["step"])
        if r["step"] >= cur["last_step"]:
            cur["last_step"], cur["last_value"] = r["step"], r["value"]
        cur["min_value"] = min(cur["min_value"], r["value"])
        cur["max_value"] = max(cur["max_value"], r["value"])
    ins = pg_insert(m.MetricSummary).values(list(summary.values()))
    t, x = m.MetricSummary, ins.excluded
    newer = x.last_step >= t.last_step
    await session.execute(
        ins.on_conflict_do_update(
            index_elements=["run_id", "key_id"],
            set_={
                "points": t.points + x.points,
                "first_step": func.least(t.first_step, x.first_step),
                "last_step": func.greatest(t.last_step, x.last_step),
                "last_value": case((newer, x.last_value), else_=t.last_value),
                "min_value": func.least(t.min_value, x.min_value),
                "max_value": func.greatest(t.max_value, x.max_value),
                "updated_at": func.now(),
            },
        )
    )


_BUCKETS = text("""
    SELECT (step - CAST(:first AS bigint)) / CAST(:width AS bigint) AS bucket,
           min(step), max(step), avg(value), min(value), max(value),
           (array_agg(value ORDER BY step DESC))[1], count(*)
    FROM research_metrics
    WHERE run_id = :run AND key_id = :key AND step BETWEEN :first AND :last
    GROUP BY bucket ORDER BY bucket
""")


async def series(
    session: AsyncSession, runs: Sequence[tuple[uuid.UUID, int]], name: str, max_points: int
) -> s.SeriesPage:
    """Each run's ``name`` metric, at most ``max_points`` points: raw when it has fewer,
    else buckets of equal step width with min/max/avg/last (computed in SQL over the index)."""
    key = await session.scalar(select(m.MetricKey.id).where(m.MetricKey.name == name))
    out: list[s.Series] = []
    for task_id, run_id in runs:
        summ = await session.get(m.MetricSummary, (run_id, key)) if key is not None else None
        if summ is None:
            out.append(s.Series(task_id=task_id, name=name, points=[], downsampled=False))
            continue
        span = summ.last_step - summ.first_step + 1
        if summ.points <= max_points:
            rows = (
                await session.execute(
                    select(m.MetricPoint.step, m.MetricPoint.value)
                    .where(m.MetricPoint.run_id == run_id, m.MetricPoint.key_id == key)
                    .order_by(m.MetricPoint.step)
                )
            ).all()
            pts = [
                s.SeriesPoint(step=st, step_end=st, avg=v, min=v, max=v, last=v, count=1)
                for st, v in rows
            ]
            out.append(s.Series(task_id=task_id, name=name, points=pts, downsampled=False))
            continue
        width = max(1, -(-span // max_points))
        buckets = (
            await session.execute(
                _BUCKETS,
                {
                    "width": width,
                    "first": summ.first_step,
                    "last": summ.last_step,
                    "run": run_id,
                    "key": key,
                },
            )
        ).all()
        pts = [
            s.SeriesPoint(step=lo, step_end=hi, avg=float(avg), min=mn, max=mx, last=last, count=n)
            for _b, lo, hi, avg, mn, mx, last, n in buckets
        ]
        out.append(s.Series(task_id=task_id, name=name, points=pts, downsampled=True))
    return s.SeriesPage(metric=name, series=out)


async def on_attempt_data(
    session: AsyncSession,
    task_id: uuid.UUID,
    attempt_no: int,
    channel: str,
    seq: int,
    items: list[dict[str, Any]],
    skipped_lines: int = 0,
    skipped_samples: Sequence[str] = (),
) -> bool | None:
    """Points a run wrote to ``$UNIDESK_METRICS_FILE``, forwarded by its agent. Bad points are
    counted on the run and named in a ``research.metrics_rejected`` event; good ones are stored.
    Lines the agent skipped as malformed are counted on the run with their first samples, and
    named in a ``research.metrics_skipped`` event."""
    if channel != CHANNEL:
        return None
    run = await session.scalar(select(m.Run).where(m.Run.task_id == task_id).with_for_update())
    if run is None:
        log.info(
            "metrics from a task in no experiment ignored", task_id=str(task_id), points=len(items)
        )
        return True
    fresh = await session.execute(
        pg_insert(m.DataBatch)
        .values(task_id=task_id, attempt_no=attempt_no, seq=seq)
        .on_conflict_do_nothing()
        .returning(m.DataBatch.seq)
    )
    if fresh.first() is None:
        return True  # a resent batch: already stored
    now = datetime.now(UTC)
    good: list[Point] = []
    errors: list[str] = []
    for i, item in enumerate(items):
        try:
            good.append(validate_item(item, f"metrics[{i}]", now))
        except BadRequest as exc:
            errors.append(exc.detail)
    await store_points(session, run.id, good)
    if skipped_lines > 0:
        samples = [str(t)[:300] for t in skipped_samples]
        run.skipped_lines += skipped_lines
        room = SKIPPED_SAMPLES_KEPT - len(run.skipped_samples)
        if room > 0 and samples:
            run.skipped_samples = [*run.skipped_samples, *samples[:room]]
        await append(
            session,
            NewEvent(
                kind="research.metrics_skipped",
                subject_type="task",
                subject_id=str(task_id),
                actor="plugin:research",
                payload={"attempt_no": attempt_no, "skipped": skipped_lines, "samples": samples},
            ),
        )
    if errors:
        run.rejected_points += len(errors)
        run.last_rejection = errors[-1][:1000]
        await append(
            session,
            NewEvent(
                kind="research.metrics_rejected",
                subject_type="task",
                subject_id=str(task_id),
                actor="plugin:research",
                payload={
                    "attempt_no": attempt_no,
                    "rejected": len(errors),
                    "first_error": errors[0][:500],
                },
            ),
        )
    return True
