"""ASGI middleware: a request id per HTTP request, bound into every log line and echoed back."""

from __future__ import annotations

import os
import re

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestIdMiddleware", "request_id_of"]

_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


SCOPE_KEY = "unidesk.request_id"


def request_id_of(scope: Scope) -> str:
    """The request's id: kept in the ASGI scope, taken from a safe X-Request-ID or made up once."""
    kept = scope.get(SCOPE_KEY)
    if isinstance(kept, str):
        return kept
    incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
    rid = incoming if _SAFE.match(incoming) else os.urandom(8).hex()
    scope[SCOPE_KEY] = rid  # type: ignore[literal-required]  # ASGI extension key, not in Scope
    return rid


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=rid):
            await self.app(scope, receive, send_with_id)
