"""One mapping from errors to RFC 9457 problem+json responses."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.routes import HTTPRoute
from sqlalchemy.exc import DBAPIError, OperationalError

from unidesk.core.requestid import request_id_of
from unidesk.errors import RateLimited, UnideskError

__all__ = ["EXCEPTION_HANDLERS", "PROBLEM_RESPONSES", "Problem", "declare_problems", "problem"]

log = structlog.get_logger("unidesk.http")
PROBLEM = "application/problem+json"


def problem(
    status: int, title: str, detail: str, *, request: Request | None = None, **extra: Any
) -> Response[dict[str, Any]]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    headers = {}
    if request is not None:
        # Exception handlers answer outside the request-id middleware: echo the id here.
        headers["X-Request-ID"] = request_id_of(request.scope)
    if "retry_after_s" in extra:
        headers["Retry-After"] = str(extra["retry_after_s"])
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def _unidesk(request: Request, exc: UnideskError) -> Response[dict[str, Any]]:
    log.info(
        "request refused",
        path=request.url.path,
        method=request.method,
        status=exc.status,
        detail=exc.detail,
        request_id=request_id_of(request.scope),
    )
    extra = {k: v for k, v in exc.context.items() if isinstance(v, (str, int, float, bool))}
    if isinstance(exc.context.get("errors"), list):  # a batch's bad items, each with its index
        extra["errors"] = exc.context["errors"]
    if isinstance(exc, RateLimited):
        extra["retry_after_s"] = exc.retry_after_s
    return problem(exc.status, exc.title, exc.detail, request=request, **extra)


def _validation(request: Request, exc: ValidationException) -> Response[dict[str, Any]]:
    log.info(
        "request invalid",
        path=request.url.path,
        method=request.method,
        detail=exc.detail,
        request_id=request_id_of(request.scope),
    )
    errors = exc.extra if isinstance(exc.extra, list) else []
    detail = exc.detail
    if errors:
        detail = (
            "; ".join(
                f"{e.get('key', '')}: {e.get('message', '')}".strip(": ")
                for e in errors
                if isinstance(e, dict)
            )
            or detail
        )
    return problem(400, "Bad request", detail, request=request, errors=errors)


def _http(request: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if status >= 500:
        log.error(
            "http error",
            path=request.url.path,
            status=status,
            detail=exc.detail,
            request_id=request_id_of(request.scope),
        )
    else:
        log.info(
            "request refused",
            path=request.url.path,
            method=request.method,
            status=status,
            detail=exc.detail,
            request_id=request_id_of(request.scope),
        )
    titles = {
        401: "Authentication required",
        403: "Forbidden",
        404: "Not found",
        405: "Method not allowed",
        413: "Payload too large",
    }
    return problem(status, titles.get(status, "Error"), exc.detail, request=request)


def _database(request: Request, exc: DBAPIError) -> Response[dict[str, Any]]:
    log.error(
        "database unavailable",
        path=request.url.path,
        error=type(exc.orig).__name__ if exc.orig else str(type(exc)),
        request_id=request_id_of(request.scope),
    )
    return problem(
        503, "Service unavailable", "the database is unreachable; see /health", request=request
    )


_TOO_DEEP = "while deserializing"
"""msgspec's RecursionError message when a JSON document nests past the interpreter's limit."""


def _recursion(request: Request, exc: RecursionError) -> Response[dict[str, Any]]:
    """A request body nested past what the JSON decoder recurses into is the client's
    error (400); any other RecursionError is ours."""
    if _TOO_DEEP not in str(exc):
        return _unexpected(request, exc)
    detail = "the request body is nested too deeply to be read as JSON"
    log.info(
        "request refused",
        path=request.url.path,
        method=request.method,
        status=400,
        detail=detail,
        request_id=request_id_of(request.scope),
    )
    return problem(400, "Bad request", detail, request=request)


def _unexpected(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    log.exception(
        "unhandled error",
        path=request.url.path,
        method=request.method,
        request_id=request_id_of(request.scope),
    )
    return problem(
        500, "Internal error", "an unexpected error occurred; it has been logged", request=request
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    UnideskError: _unidesk,
    ValidationException: _validation,
    HTTPException: _http,
    OperationalError: _database,
    RecursionError: _recursion,
    Exception: _unexpected,
}


class Problem(msgspec.Struct, kw_only=True):
    """An RFC 9457 problem body; refusals may add context fields (``field``, ``task_id``, …)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None
    retry_after_s: int | None = None


_PROBLEM_STATUSES = {
    400: "Bad request: the input does not validate (problem+json says which field and why)",
    401: "Authentication required: no valid session cookie or bearer token",
    403: "Forbidden: authenticated, but the access policy (docs/access.md) says no",
    404: "Not found",
    409: "Conflict with the current state (e.g. the task already ended)",
    413: "Payload too large",
    422: "Unprocessable: well-formed but cannot be done",
    429: "Rate limited; Retry-After says when to try again",
    503: "Service unavailable: a dependency (database, store, event stream) is down; see /health",
}
PROBLEM_RESPONSES: dict[int, ResponseSpec] = {
    status: ResponseSpec(
        data_container=Problem, description=text, media_type=PROBLEM, generate_examples=False
    )
    for status, text in _PROBLEM_STATUSES.items()
}
"""Every refusal any route may answer, declared once for all of them (``declare_problems``)."""


def declare_problems(app: Litestar) -> None:
    """Declare ``PROBLEM_RESPONSES`` on every HTTP route of ``app`` (a route's own declared
    responses win), so the OpenAPI schema documents each status code and problem body."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            handler.responses = {**PROBLEM_RESPONSES, **(handler.responses or {})}
