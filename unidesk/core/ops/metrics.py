"""Prometheus metrics at ``/metrics`` (text exposition 0.0.4), read from the database at scrape
time.

The database is the one source: counts of nodes and tasks, the dispatch latency histogram
(attempt ``assigned_at`` → ``acked_at``), heartbeat age and stored bytes are queried on
each scrape, so every replica reports the same figures. Per-process figures (WebSocket
connections and event-bus lag of this instance) carry no replica label; Prometheus adds
``instance``. When the database is down the scrape still answers 200 with
``unidesk_database_up 0`` and without the database-derived families.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable

from litestar import Response, get
from litestar.datastructures import State
from sqlalchemy import text

import unidesk
from unidesk.core.ops.readiness import READY_CHECKS
from unidesk.core.tasks.states import TASK_STATES

__all__ = ["DISPATCH_BUCKETS_S", "NODE_STATES", "Family", "metrics", "render"]

DISPATCH_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
NODE_STATES = ("online", "unhealthy", "draining", "offline")
"""Each node is counted once, in the first of: offline, unhealthy, draining, online."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SCRAPE_DB_TIMEOUT_S = 3.0


class Family:
    """One metric family: name, type, help and its samples ``(suffix, labels, value)``."""

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name, self.kind, self.help = name, kind, help_text
        self.samples: list[tuple[str, dict[str, str], float]] = []

    def add(self, value: float, suffix: str = "", **labels: str) -> Family:
        self.samples.append((suffix, labels, value))
        return self


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for f in families:
        lines.append(f"# HELP {f.name} {f.help}")
        lines.append(f"# TYPE {f.name} {f.kind}")
        for suffix, labels, value in f.samples:
            lab = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(
                f"{f.name}{suffix}{{{lab}}} {_number(value)}"
                if lab
                else f"{f.name}{suffix} {_number(value)}"
            )
    return "\n".join(lines) + "\n"


_NODES_SQL = text("""
SELECT CASE WHEN state <> 'online' THEN 'offline' WHEN unhealthy_reason IS NOT NULL THEN 'unhealthy'
            WHEN draining THEN 'draining' ELSE 'online' END AS s, count(*)
FROM nodes GROUP BY 1""")
_HEARTBEAT_SQL = text("""
SELECT name, extract(epoch FROM now() - last_heartbeat_at) FROM nodes
WHERE state = 'online' AND last_heartbeat_at IS NOT NULL ORDER BY name""")
_TASKS_SQL = text("SELECT state, count(*) FROM tasks GROUP BY state")
_LATENCY_SQL = text(
    "SELECT count(*), coalesce(sum(extract(epoch FROM acked_at - assigned_at)), 0), "
    + ", ".join(
        f"count(*) FILTER (WHERE acked_at - assigned_at <= make_interval(secs => {b}))"
        for b in DISPATCH_BUCKETS_S
    )
    + " FROM task_attempts WHERE acked_at IS NOT NULL"
)
_STORAGE_SQL = text("SELECT to_regclass('public.artifacts') IS NOT NULL")
_STORAGE_BYTES_SQL = text(
    "SELECT state, coalesce(sum(size), 0), count(*) FROM artifacts GROUP BY state"
)
_BACKUP_SQL = text("""
SELECT extract(epoch FROM ts), (payload->>'size')::bigint FROM events
WHERE kind = 'backup.succeeded' ORDER BY id DESC LIMIT 1""")
_EVENTS_SQL = text("SELECT coalesce(max(id), 0) FROM events")
_OLDEST_UNSEEN_SQL = text(
    "SELECT extract(epoch FROM now() - min(ts)) FROM events WHERE id > :cursor"
)


async def _database_families(state: State) -> list[Family]:
    out: list[Family] = []
    async with state.engine.connect() as conn:
        nodes = Family(
            "unidesk_nodes", "gauge", "Known nodes by state (offline, unhealthy, draining, online)."
        )
        counts = dict((await conn.execute(_NODES_SQL)).all())
        for s in NODE_STATES:
            nodes.add(counts.get(s, 0), state=s)
        out.append(nodes)
        age = Family(
            "unidesk_node_heartbeat_age_seconds",
            "gauge",
            "Seconds since each online node's last heartbeat was stored.",
        )
        ages = [(n, float(a)) for n, a in (await conn.execute(_HEARTBEAT_SQL)).all()]
        for name, a in ages:
            age.add(a, node=name)
        out.append(age)
        out.append(
            Family(
                "unidesk_heartbeat_lag_max_seconds",
                "gauge",
                "Largest heartbeat age among online nodes.",
            ).add(max((a for _, a in ages), default=0.0))
        )
        tasks = Family("unidesk_tasks", "gauge", "Tasks by state.")
        tcounts = dict((await conn.execute(_TASKS_SQL)).all())
        for s in TASK_STATES:
            tasks.add(tcounts.get(s, 0), state=s)
        out.append(tasks)
        row = (await conn.execute(_LATENCY_SQL)).one()
        hist = Family(
            "unidesk_dispatch_latency_seconds",
            "histogram",
            "Time from a task's assignment to the node's ack of its dispatch.",
        )
        for bound, n in zip(DISPATCH_BUCKETS_S, row[2:], strict=False):
            hist.add(n, "_bucket", le=repr(float(bound)))
        hist.add(row[0], "_bucket", le="+Inf").add(row[0], "_count").add(float(row[1]), "_sum")
        out.append(hist)
        if (await conn.execute(_STORAGE_SQL)).scalar():
            stored = Family(
                "unidesk_storage_bytes", "gauge", "Bytes of artifacts in the object store by state."
            )
            objects = Family(
                "unidesk_storage_objects", "gauge", "Artifacts in the object store by state."
            )
            by_state = {s: (b, c) for s, b, c in (await conn.execute(_STORAGE_BYTES_SQL)).all()}
            for s in ("ready", "uploading"):
                b, c = by_state.get(s, (0, 0))
                stored.add(b, state=s)
                objects.add(c, state=s)
            out += [stored, objects]
        out.append(
            Family(
                "unidesk_database_bytes",
                "gauge",
                "Size of the database on disk (compose budget: 10 GB).",
            ).add(
                float(
                    (
                        await conn.execute(text("SELECT pg_database_size(current_database())"))
                    ).scalar()
                    or 0
                )
            )
        )
        backup = (await conn.execute(_BACKUP_SQL)).first()
        out.append(
            Family(
                "unidesk_backup_last_success_timestamp_seconds",
                "gauge",
                "Unix time of the last successful backup (0: none).",
            ).add(float(backup[0]) if backup else 0.0)
        )
        out.append(
            Family(
                "unidesk_backup_last_size_bytes", "gauge", "Size of the last successful backup."
            ).add(float(backup[1] or 0) if backup else 0.0)
        )
        hub = state.event_hub
        newest = (await conn.execute(_EVENTS_SQL)).scalar() or 0
        out.append(
            Family(
                "unidesk_event_bus_lag_events",
                "gauge",
                "Committed events this instance has not yet fanned out.",
            ).add(max(0, newest - hub.cursor))
        )
        oldest = (await conn.execute(_OLDEST_UNSEEN_SQL, {"cursor": hub.cursor})).scalar()
        out.append(
            Family(
                "unidesk_event_bus_lag_seconds",
                "gauge",
                "Age of the oldest event this instance has not yet fanned out.",
            ).add(float(oldest or 0.0))
        )
    return out


def _process_families(state: State) -> list[Family]:
    ws = Family(
        "unidesk_websocket_connections",
        "gauge",
        "Open WebSocket/SSE connections held by this instance.",
    )
    ingress = getattr(state, "ingress", None)
    ws.add(len(ingress.connections) if ingress is not None else 0, kind="agent")
    ws.add(len(getattr(state.event_hub, "_queues", ())), kind="event_subscriber")
    bus = Family("unidesk_event_bus_up", "gauge", "1 while this instance LISTENs on the event bus.")
    bus.add(0 if state.event_hub.error else 1)
    info = Family("unidesk_build_info", "gauge", "The running version and git commit.")
    info.add(1, version=unidesk.__version__, commit=str(state.git_commit))
    return [info, ws, bus]


@get(
    "/metrics",
    operation_id="metrics",
    tags=["health"],
    exclude_from_auth=True,
    include_in_schema=False,
)
async def metrics(state: State) -> Response[str]:
    """Prometheus text exposition; gateways should not route it to the public internet."""
    started = time.monotonic()
    families = _process_families(state)
    db_up = Family("unidesk_database_up", "gauge", "1 when this instance can query the database.")
    try:
        families += await asyncio.wait_for(_database_families(state), SCRAPE_DB_TIMEOUT_S)
        db_up.add(1)
    except Exception:
        db_up.add(0)
    checks = await state.health_checks.run(names=READY_CHECKS)
    ready = Family(
        "unidesk_ready", "gauge", "1 when every readiness check passes (see /health/ready)."
    )
    ready.add(1 if all(v == "ok" for v in checks.values()) else 0)
    scrape = Family("unidesk_scrape_duration_seconds", "gauge", "How long this scrape took.")
    scrape.add(round(time.monotonic() - started, 6))
    return Response(render([db_up, ready, *families, scrape]), media_type=CONTENT_TYPE)
