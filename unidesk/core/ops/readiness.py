"""``/health/ready``: can this instance serve requests now? Database, schema, object store,
plugins."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State

import unidesk
from unidesk.core.ops.health import WARNING_PREFIX, Health, answers_for

__all__ = ["READY_CHECKS", "ready"]

READY_CHECKS = ("database", "migrations", "storage", "plugins")
"""The checks readiness runs, where registered (liveness, ``/health``, runs every check)."""


@get("/health/ready", operation_id="health_ready", tags=["health"], exclude_from_auth=True)
async def ready(request: Request[Any, Any, Any], state: State) -> Response[Health]:
    """Readiness for load balancers: 200 when every readiness check passes (a warning, such as
    a switched-off plugin's schema left in place, passes), else 503 with the reasons (generic
    unless the caller is an admin)."""
    checks = await answers_for(request, names=READY_CHECKS)
    reasons = [
        f"{k}: {v}" for k, v in checks.items() if v != "ok" and not v.startswith(WARNING_PREFIX)
    ]
    body = Health(
        status="not ready" if reasons else "ready",
        reasons=reasons,
        version=unidesk.__version__,
        commit=state.git_commit,
        checks=checks,
    )
    return Response(body, status_code=503 if reasons else 200)
