"""Benchmark: research metrics at a million points in one experiment (4 runs x 250,000 steps).

    .venv/bin/python bench/bench_research_metrics.py [--points 1000000] [--runs 4] [--chart-points
    1000]

Uses an embedded PostgreSQL in a temporary directory migrated with the research branch. Measures
ingestion through the plugin's own ``store_points`` (the path agent batches take, in batches of
2,000 like the agent's), then a chart read through ``series`` (SQL buckets over the
(run, key, step) primary key, ``--chart-points`` per run) against the baseline of reading every
raw point of the same metric in step order. Prints figures and the ratio. Bounded in count.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, text

from unidesk.core.db.embedded import EmbeddedPostgres
from unidesk.core.db.engine import make_engine, make_sessionmaker
from unidesk.core.db.migrate import upgrade
from unidesk.plugins.research import models as m
from unidesk.plugins.research.metrics import series, store_points

RESEARCH_VERSIONS = Path(m.__file__).parent / "migrations" / "versions"


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg")
        url = pg.start()
        try:
            await asyncio.to_thread(upgrade, url, [RESEARCH_VERSIONS])
            engine = make_engine(url, 4)
            sessions = make_sessionmaker(engine)
            per_run = args.points // args.runs
            async with sessions() as s:
                exp = uuid.uuid4()
                await s.execute(
                    text("SET session_replication_role = replica")
                )  # no task rows needed for the FK in a bench
                await s.execute(
                    m.Experiment.__table__.insert().values(id=exp, name="bench", description="")
                )
                run_ids = []
                for _ in range(args.runs):
                    tid = uuid.uuid4()
                    rid = (
                        await s.execute(
                            m.Run.__table__.insert()
                            .values(task_id=tid, experiment_id=exp, params={}, rejected_points=0)
                            .returning(m.Run.id)
                        )
                    ).scalar_one()
                    run_ids.append((tid, rid))
                await s.commit()
            now = datetime.now(UTC)
            t0 = time.perf_counter()
            for _tid, rid in run_ids:
                for start in range(0, per_run, 2000):
                    async with sessions() as s:
                        pts = [
                            ("loss", step, 1.0 / (step + 1), now)
                            for step in range(start, min(per_run, start + 2000))
                        ]
                        await store_points(s, rid, pts)
                        await s.commit()
            ingest = time.perf_counter() - t0
            total = per_run * args.runs
            async with sessions() as s:
                await s.execute(text("ANALYZE research_metrics"))
                await s.commit()
            reps = 3
            t0 = time.perf_counter()
            for _ in range(reps):
                async with sessions() as s:
                    page = await series(s, run_ids, "loss", args.chart_points)
            chart = (time.perf_counter() - t0) / reps
            t0 = time.perf_counter()
            for _ in range(reps):
                async with sessions() as s:
                    key = await s.scalar(select(m.MetricKey.id).where(m.MetricKey.name == "loss"))
                    raw = 0
                    for _tid, rid in run_ids:
                        rows = (
                            await s.execute(
                                select(m.MetricPoint.step, m.MetricPoint.value)
                                .where(m.MetricPoint.run_id == rid, m.MetricPoint.key_id == key)
                                .order_by(m.MetricPoint.step)
                            )
                        ).all()
                        raw += len(rows)
            baseline = (time.perf_counter() - t0) / reps
            async with sessions() as s:
                size = (
                    await s.execute(text("SELECT pg_total_relation_size('research_metrics')"))
                ).scalar_one()
            await engine.dispose()
            shown = sum(len(x.points) for x in page.series)
            print(
                f"points stored: {total} in {args.runs} runs; ingest {ingest:.1f} s = "
                f"{total / ingest:,.0f} points/s"
            )
            print(f"table + index size: {size / 1e6:.0f} MB ({size / total:.0f} bytes/point)")
            print(
                f"chart read ({shown} points for {args.runs} runs, downsampled in SQL): "
                f"{chart * 1000:.0f} ms"
            )
            print(f"baseline, every raw point in step order ({raw} rows): {baseline * 1000:.0f} ms")
            print(f"ratio baseline/chart: {baseline / chart:.1f}x")
        finally:
            pg.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--points", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--chart-points", type=int, default=1000)
    asyncio.run(main(p.parse_args()))
