"""Readable terminal output: aligned tables, Beijing-time timestamps, task and node summaries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

__all__ = [
    "BEIJING",
    "format_time",
    "node_rows",
    "table",
    "task_detail",
    "task_rows",
    "trace_lines",
]

BEIJING = timezone(timedelta(hours=8), "CST")
"""Every timestamp a person sees is Beijing time (Asia/Shanghai, no daylight saving)."""


def format_time(value: str | None) -> str:
    """ISO 8601 (UTC) from the API → ``2026-11-27 18:00:00`` in Beijing time; ``-`` for none."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces; cells are ``str()``-ed, ``None`` shows
    ``-``."""
    cells = [[("-" if c is None or c == "" else str(c)) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def _node_of(task: dict[str, Any]) -> str | None:
    attempts = task.get("attempts") or []
    return attempts[-1].get("node_name") if attempts else None


def pending_text(task: dict[str, Any]) -> str | None:
    """Why a pending task waits, in one line: the reason code and what it is waiting for."""
    code = task.get("pending_reason")
    if task.get("state") != "pending" or not code:
        return None
    detail = task.get("pending_detail") or {}
    if code == "waiting_for_resources":
        ahead = task.get("ranked_ahead")
        parts = [f"{ahead} ranked ahead" if ahead is not None else ""]
        if detail.get("reserved_node"):
            parts.append(f"reserved {detail['reserved_node']}")
        if detail.get("avoiding"):
            parts.append(f"avoiding {', '.join(detail['avoiding'])}")
        extra = ", ".join(p for p in parts if p)
        return f"{code} ({extra})" if extra else code
    if code == "retry_backoff":
        until = task.get("not_before")
        return f"{code} until {format_time(until)}" if until else code
    if code == "held_for_reservation" and detail.get("node"):
        return f"{code} (node {detail['node']})"
    if detail.get("message"):
        return f"{code}: {detail['message']}"
    return code


def usage_rows(usage: dict[str, Any]) -> str:
    """``GET /api/usage`` as tables: resource-hours per day and user, then fair-share keys; the
    same per account when any task was charged to one."""
    daily = table(
        ["DAY (UTC)", "USER", "ATTEMPTS", "CPU-H", "GPU-H", "MEM GB-H"],
        [
            (
                u["day"],
                u.get("username") or u.get("user_id"),
                u["attempts"],
                f"{u['cpu_hours']:.2f}",
                f"{u['gpu_hours']:.2f}",
                f"{u['memory_gb_hours']:.2f}",
            )
            for u in usage.get("items", [])
        ],
    )
    shares = table(
        ["USER", "FAIR-SHARE KEY (CPU-H, lower runs first)"],
        [
            (f.get("username") or f.get("user_id"), f"{f['share_cpu_hours']:.2f}")
            for f in usage.get("fair_share", [])
        ],
    )
    accounts = usage.get("accounts") or []
    if not any(a.get("account") for a in accounts):
        return f"{daily}\n\n{shares}"
    by_account = table(
        ["DAY (UTC)", "ACCOUNT", "ATTEMPTS", "CPU-H", "GPU-H", "MEM GB-H"],
        [
            (
                a["day"],
                a["account"] or "(none)",
                a["attempts"],
                f"{a['cpu_hours']:.2f}",
                f"{a['gpu_hours']:.2f}",
                f"{a['memory_gb_hours']:.2f}",
            )
            for a in accounts
        ],
    )
    account_shares = table(
        ["ACCOUNT", "FAIR-SHARE KEY (CPU-H, added to each user's)"],
        [
            (f["account"] or "(none)", f"{f['share_cpu_hours']:.2f}")
            for f in usage.get("account_fair_share", [])
        ],
    )
    return f"{daily}\n\n{shares}\n\n{by_account}\n\n{account_shares}"


def task_rows(tasks: list[dict[str, Any]]) -> str:
    return table(
        ["ID", "NAME", "STATE", "REASON", "ATTEMPTS", "PRIORITY", "CREATED"],
        [
            (
                t["id"],
                t.get("name"),
                t["state"],
                pending_text(t) or t.get("reason") or t.get("unschedulable_reason"),
                t.get("attempt_count"),
                t.get("priority"),
                format_time(t.get("created_at")),
            )
            for t in tasks
        ],
    )


def _gpus(node: dict[str, Any]) -> str:
    gpus = node.get("gpus") or []
    free = (node.get("free") or {}).get("gpus")
    return f"{free}/{len(gpus)}" if free is not None else str(len(gpus))


def node_rows(nodes: list[dict[str, Any]]) -> str:
    def state(n: dict[str, Any]) -> str:
        extra = [
            w
            for w, on in (("draining", n.get("draining")), ("unhealthy", n.get("unhealthy_reason")))
            if on
        ]
        return n["state"] + (f" ({', '.join(extra)})" if extra else "")

    return table(
        [
            "NAME",
            "STATE",
            "OS",
            "CPUS FREE",
            "MEM FREE MB",
            "GPUS FREE",
            "RUNNING",
            "LABELS",
            "LAST HEARTBEAT",
        ],
        [
            (
                n["name"],
                state(n),
                n.get("os"),
                f"{(n.get('free') or {}).get('cpus', '?')}/{n.get('cpus')}",
                f"{(n.get('free') or {}).get('memory_mb', '?')}/{n.get('memory_mb')}",
                _gpus(n),
                len(n.get("running_attempts") or []),
                ",".join(f"{k}={v}" for k, v in sorted((n.get("labels") or {}).items())),
                format_time(n.get("last_heartbeat_at")),
            )
            for n in nodes
        ],
    )


def task_detail(task: dict[str, Any]) -> str:
    res = task.get("resources") or {}
    labels = ",".join(f"{k}={v}" for k, v in sorted((res.get("labels") or {}).items()))
    lines = [
        f"Task      {task['id']}  {task.get('name') or ''}".rstrip(),
        f"State     {task['state']}" + (f"  ({task['reason']})" if task.get("reason") else ""),
    ]
    if task.get("message"):
        lines.append(f"Message   {task['message']}")
    waiting = pending_text(task)
    if waiting:
        lines.append(f"Waiting   {waiting}")
    elif task.get("unschedulable_reason"):
        lines.append(f"Waiting   {task['unschedulable_reason']}")
    lines += [
        f"Owner     {task.get('owner') or '-'}",
        f"Code      {task['code_repo_url']} @ {task['code_commit_id']}",
        f"Env       {task['env_repo_url']} @ {task['env_commit_id']} ({task['dockerfile_path']})",
        f"Command   {' '.join(task.get('command') or [])}",
        f"Resources cpus={res.get('cpus')} memory_mb={res.get('memory_mb')} gpus={res.get('gpus')}"
        + (f" labels={labels}" if labels else ""),
        f"Limits    timeout={task.get('timeout_s')}s priority={task.get('priority')} "
        f"attempts={task.get('attempt_count')}/{task.get('max_attempts')}",
        f"Created   {format_time(task.get('created_at'))}   Finished "
        f"{format_time(task.get('finished_at'))}",
    ]
    attempts = task.get("attempts") or []
    if attempts:
        lines += [
            "",
            table(
                ["ATTEMPT", "NODE", "STATE", "STAGE", "REASON", "EXIT", "STARTED", "FINISHED"],
                [
                    (
                        a["attempt_no"],
                        a.get("node_name"),
                        a["state"],
                        a.get("stage"),
                        a.get("reason"),
                        a.get("exit_code"),
                        format_time(a.get("started_at")),
                        format_time(a.get("finished_at")),
                    )
                    for a in attempts
                ],
            ),
        ]
    return "\n".join(lines)


def _payload_summary(payload: dict[str, Any] | None) -> str:
    if not payload:
        return ""
    keep = ("attempt_no", "node_name", "state", "stage", "reason", "exit_code", "message", "by")
    parts = [f"{k}={payload[k]}" for k in keep if payload.get(k) not in (None, "")]
    return " ".join(parts)


def trace_lines(events: list[dict[str, Any]]) -> str:
    return table(
        ["TIME", "EVENT", "ACTOR", "DETAILS"],
        [
            (
                format_time(e.get("ts")),
                e.get("kind"),
                e.get("actor"),
                _payload_summary(e.get("payload")),
            )
            for e in events
        ],
    )
