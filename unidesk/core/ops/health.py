"""/health: is the documented path up? Each check names what is wrong, never hides it.

Anonymous callers (load balancers, monitors) get each failing check's generic public reason
("database unreachable (OperationalError)"); an admin (session cookie or Bearer token) gets the
check's own words, which may hold paths, host and user names. The server log holds those words
too, once per change of a check's answer."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import msgspec
import structlog
from litestar import Request, Response, get
from litestar.datastructures import State
from sqlalchemy import text

import unidesk
from unidesk.core.auth.middleware import optional_principal
from unidesk.core.requestid import request_id_of

__all__ = [
    "PUBLIC_REASONS",
    "WARNING_PREFIX",
    "Health",
    "HealthChecks",
    "Warn",
    "answers_for",
    "git_commit",
    "health",
]

log = structlog.get_logger("unidesk.health")

CACHE_S = 1.0
"""How long one round of check results is shared between callers."""

WARNING_PREFIX = "warning: "
"""How a check's answer in ``checks`` starts when it is a warning, not a failure."""


PUBLIC_REASONS = {
    "database": "database unreachable",
    "migrations": "database schema not at this server's version (run `unidesk-server migrate`) "
    "or unreadable",
    "event_stream": "event stream listener down",
    "storage": "file store unreachable or not writable",
    "secrets": "secret key file unreadable or missing keys",
    "local_agent": "local agent not running",
    "plugins": "a plugin failed to load",
    "backup": "backups failing or stale",
}
"""What anonymous callers read for a failing check: no paths, hosts, users or exception text
(the exception's type name, or "check timed out", is added in parentheses)."""


class Warn(str):
    """A check's answer that is not a failure: the path works, but a person should act (e.g. no
    backup exists and none is scheduled). /health stays 200 and ``status`` "ok"; the sentence is
    listed in ``warnings`` and the check reads ``"warning: <sentence>"``. Warnings are shown to
    anonymous callers as written: they must hold no paths, hosts or user names."""


Check = Callable[[], Awaitable[str | None]]
"""A check returns None when healthy, a ``Warn`` sentence when a person should act, else a short
reason (degraded)."""


class Health(msgspec.Struct, kw_only=True):
    status: Literal["ok", "degraded", "ready", "not ready"]
    """``ok``/``degraded`` on /health, ``ready``/``not ready`` on /health/ready."""
    reasons: list[str]
    """Degraded checks, ``"<check>: <reason>"`` (then status is "degraded" and the code 503)."""
    version: str
    commit: str
    checks: dict[str, str]
    warnings: list[str] = []
    """Checks that work but want a person's attention, ``"<check>: <sentence>"``."""


def git_commit() -> str:
    """The commit this server runs from (UNIDESK_GIT_COMMIT, else the checkout's HEAD)."""
    if os.environ.get("UNIDESK_GIT_COMMIT"):
        return os.environ["UNIDESK_GIT_COMMIT"]
    try:
        root = Path(unidesk.__file__).resolve().parents[1]
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return (
            out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
            if out.returncode == 0
            else "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class HealthChecks:
    """Named checks other modules register (database, migrations, event stream, storage, …)."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}
        self._cache: dict[tuple[str, ...] | None, tuple[float, dict[str, str], dict[str, str]]] = {}
        self._last: dict[str, str] = {}
        self._lock = asyncio.Lock()

    def register(self, name: str, check: Check) -> None:
        self._checks[name] = check
        self._cache.clear()

    def invalidate(self) -> None:
        """Forget shared results: the next call runs the checks again."""
        self._cache.clear()

    async def run(
        self, timeout_s: float = 3.0, names: Iterable[str] | None = None
    ) -> dict[str, str]:
        """Every check's answer in its own words (the admin's view); see ``run_both``."""
        return (await self.run_both(timeout_s, names))[0]

    async def run_both(
        self, timeout_s: float = 3.0, names: Iterable[str] | None = None
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Run every check (or only those of ``names`` that are registered) at once: each
        answer in the check's own words, and as anonymous callers read it (``PUBLIC_REASONS``).

        Results are shared for ``CACHE_S``: a burst of probes (load balancers, dashboards)
        costs one round of checks, and a failure still shows within about a second."""
        key = None if names is None else tuple(sorted(names))
        async with self._lock:
            hit = self._cache.get(key)
            if hit is not None and time.monotonic() - hit[0] < CACHE_S:
                return dict(hit[1]), dict(hit[2])
            chosen = (
                self._checks
                if names is None
                else {n: self._checks[n] for n in names if n in self._checks}
            )

            async def one(name: str, check: Check) -> tuple[str, str, str]:
                generic = PUBLIC_REASONS.get(name, f"{name.replace('_', ' ')} check failing")
                try:
                    async with asyncio.timeout(timeout_s):
                        reason = await check()
                except TimeoutError:
                    return name, "check timed out", f"{generic} (check timed out)"
                except Exception as exc:
                    return (
                        name,
                        f"{type(exc).__name__}: {str(exc)[:200]}",
                        f"{generic} ({type(exc).__name__})",
                    )
                if isinstance(reason, Warn):
                    return name, WARNING_PREFIX + reason, WARNING_PREFIX + reason
                return (name, reason, generic) if reason else (name, "ok", "ok")

            done = await asyncio.gather(*(one(n, c) for n, c in chosen.items()))
            detail = {n: d for n, d, _ in done}
            public = {n: p for n, _, p in done}
            for name, answer in detail.items():
                if self._last.get(name, "ok") != answer:
                    failing = answer != "ok" and not _warns(answer)
                    (log.warning if failing else log.info)(
                        "health check answer changed", check=name, answer=answer
                    )
                self._last[name] = answer
            self._cache[key] = (time.monotonic(), detail, public)
            return dict(detail), dict(public)


async def answers_for(
    request: Request[Any, Any, Any], timeout_s: float = 3.0, names: Iterable[str] | None = None
) -> dict[str, str]:
    """The checks' answers as this caller may read them: the checks' own words for an admin,
    else the public reasons; a degraded answer to an anonymous caller is logged with the
    request id and the full words, for the operator to match."""
    state = request.app.state
    checks: HealthChecks = state.health_checks
    detail, public = await checks.run_both(timeout_s, names)
    if detail == public:
        return detail
    principal = await optional_principal(request)
    if principal is not None and principal.is_admin:
        return detail
    hidden = {k: v for k, v in detail.items() if v != public[k]}
    log.info(
        "health answered with public reasons",
        request_id=request_id_of(request.scope),
        checks=hidden,
    )
    return public


def database_check(state: State) -> Check:
    async def check() -> str | None:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return None

    return check


def migrations_check(state: State) -> Check:
    """The schema against the code: the loaded branches at their heads. Version rows of branches
    not loaded (a plugin switched off; its tables are left untouched) are reported as a
    warning, not a failure."""

    async def check() -> str | None:
        async with state.engine.connect() as conn:
            current = {
                r[0]
                for r in (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
            }
        foreign = current - state.known_revisions
        expected: set[str] = state.expected_heads
        if current - foreign != expected:
            return (
                f"schema at {sorted(current)}, code expects {sorted(expected)}; run "
                "`unidesk-server migrate`"
            )
        if foreign:
            return Warn(
                f"schema holds {sorted(foreign)} of branches not loaded (a plugin switched "
                "off); left untouched"
            )
        return None

    return check


def _warns(answer: str) -> bool:
    return answer.startswith(WARNING_PREFIX)


@get("/health", operation_id="health", tags=["health"], exclude_from_auth=True)
async def health(request: Request[Any, Any, Any], state: State) -> Response[Health]:
    """Liveness and the state of every documented dependency; 503 with reasons when degraded
    (generic reasons unless the caller is an admin)."""
    checks = await answers_for(request)
    warnings = [f"{k}: {v[len(WARNING_PREFIX) :]}" for k, v in checks.items() if _warns(v)]
    reasons = [f"{k}: {v}" for k, v in checks.items() if v != "ok" and not _warns(v)]
    body = Health(
        status="degraded" if reasons else "ok",
        reasons=reasons,
        version=unidesk.__version__,
        commit=state.git_commit,
        checks=checks,
        warnings=warnings,
    )
    return Response(body, status_code=503 if reasons else 200)
