"""Fair-share keys and usage accounting, computed in SQL from task attempts.

An attempt is charged ``rate = cpus + gpus * fairshare_gpu_weight + memory_GiB *
fairshare_memory_gb_weight`` per second it holds its node (from start, or assignment if it
never started, to its end or now). A second of use ``a`` seconds ago counts ``2^(-a/H)``
(H = ``fairshare_half_life_h``), so an attempt from s to e seconds ago contributes
``rate * H/ln2 * (2^(-e/H) - 2^(-s/H))``. An owner's key is that decayed usage plus the
*committed* charge of their active attempts, ``rate * min(H, estimate - elapsed)``, so work
just started already counts. Accounts get a key the same way from the attempts charged to
them (tasks without an account: the default account ''). A task ranks by its owner's key plus
its account's; smaller goes first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.settings import Settings

__all__ = ["Shares", "daily_usage", "share_keys"]

_RATE = "(t.cpus + t.gpus * :gw + t.memory_mb / 1024.0 * :mw)"
_SHARES_SQL = text(
    f"""
    SELECT grouping(t.owner_id) = 1 AS by_account, t.owner_id, t.account,
      sum({_RATE} * :h / ln(2) * (
          power(2.0, -extract(epoch from now() - coalesce(a.finished_at, now())) / :h)
        - power(2.0, -extract(epoch from now() - coalesce(a.started_at, a.assigned_at)) / :h)))
      + sum(CASE WHEN a.finished_at IS NULL THEN {_RATE} * least(:h, greatest(0,
          coalesce(t.expected_duration_s, t.timeout_s)
          - extract(epoch from now() - coalesce(a.started_at, a.assigned_at)))) ELSE 0 END)
    FROM task_attempts a JOIN tasks t ON t.id = a.task_id
    WHERE a.finished_at IS NULL OR a.finished_at > now() - make_interval(secs => :h * 10)
    GROUP BY GROUPING SETS ((t.owner_id), (t.account))
    """
)

_DAILY_SQL = text(
    """
    WITH spans AS (
      SELECT t.owner_id, t.account, t.cpus, t.gpus, t.memory_mb,
             coalesce(a.started_at, a.assigned_at) AS s, coalesce(a.finished_at, now()) AS e
      FROM task_attempts a JOIN tasks t ON t.id = a.task_id
      WHERE coalesce(a.finished_at, now()) > CAST(:since AS date)
        AND (CAST(:owner AS uuid) IS NULL OR t.owner_id = CAST(:owner AS uuid))
        AND (CAST(:account AS text) IS NULL OR t.account = CAST(:account AS text))
    ), days AS (
      SELECT sp.*, d::date AS day,
             greatest(0, extract(epoch from
               least(sp.e, d + interval '1 day') - greatest(sp.s, d))) AS secs
      FROM spans sp,
           generate_series(date_trunc('day', greatest(sp.s, CAST(:since AS date))),
                           date_trunc('day', sp.e), interval '1 day') AS d
    )
    SELECT grouping(days.owner_id) = 1 AS by_account, days.day, days.owner_id, u.username,
           days.account, count(*) AS attempts,
           sum(days.secs * days.cpus) / 3600 AS cpu_hours,
           sum(days.secs * days.gpus) / 3600 AS gpu_hours,
           sum(days.secs * days.memory_mb) / 1024 / 3600 AS memory_gb_hours
    FROM days LEFT JOIN users u ON u.id = days.owner_id
    WHERE days.secs > 0
    GROUP BY GROUPING SETS ((days.day, days.owner_id, u.username), (days.day, days.account))
    ORDER BY days.day, u.username, days.account
    """
)


def _params(settings: Settings) -> dict[str, float]:
    return {
        "gw": settings.fairshare_gpu_weight,
        "mw": settings.fairshare_memory_gb_weight,
        "h": settings.fairshare_half_life_h * 3600.0,
    }


@dataclass(frozen=True)
class Shares:
    """Fair-share keys (CPU-second equivalents): per owner, and per account ('' = default)."""

    users: dict[uuid.UUID | None, float]
    accounts: dict[str, float]

    def key(self, owner: uuid.UUID | None, account: str | None) -> float:
        """The rank key of a task: its owner's key plus its account's."""
        return self.users.get(owner, 0.0) + self.accounts.get(account or "", 0.0)


async def share_keys(session: AsyncSession, settings: Settings) -> Shares:
    """Each owner's and each account's fair-share key (decayed usage + committed charge)."""
    users: dict[uuid.UUID | None, float] = {}
    accounts: dict[str, float] = {}
    for by_account, owner, account, key in (
        await session.execute(_SHARES_SQL, _params(settings))
    ).all():
        if by_account:
            accounts[account or ""] = float(key or 0.0)
        else:
            users[owner] = float(key or 0.0)
    return Shares(users, accounts)


async def daily_usage(
    session: AsyncSession,
    since: date,
    owner: uuid.UUID | None = None,
    account: str | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Resource-time per owner and per account per UTC day since ``since``: CPU-, GPU- and
    GiB-hours (an attempt counts for its owner and for its account; '' = default account)."""
    rows = (
        await session.execute(
            _DAILY_SQL,
            {
                "since": since.isoformat(),
                "owner": str(owner) if owner else None,
                "account": account,
            },
        )
    ).all()
    users: list[dict[str, Any]] = []
    accounts: list[dict[str, Any]] = []
    for r in rows:
        hours = {
            "day": r.day.isoformat(),
            "attempts": int(r.attempts),
            "cpu_hours": round(float(r.cpu_hours), 4),
            "gpu_hours": round(float(r.gpu_hours), 4),
            "memory_gb_hours": round(float(r.memory_gb_hours), 4),
        }
        if r.by_account:
            accounts.append({"account": r.account or "", **hours})
        else:
            users.append({"user_id": r.owner_id, "username": r.username, **hours})
    return users, accounts
