"""ASGI middleware: a NUL character anywhere in a request's path, query or JSON body is a 400.

PostgreSQL text cannot hold U+0000, so a NUL that reaches a query is a database error (a 500)
wherever it slips through. Refusing it at the edge, once, covers every route: the path and
query string (raw or ``%00``) and every string (keys and values) of a JSON body up to the
request size limit. Binary uploads (any other content type) are not looked at.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import structlog
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from unidesk.core.requestid import request_id_of

__all__ = ["NulGuardMiddleware", "find_nul"]

log = structlog.get_logger("unidesk.http")


def find_nul(value: Any) -> str | None:
    """Where a decoded JSON value holds U+0000 (``command[1]``, ``env.A``, ``env`` for a key),
    or None."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return where or "body"
        elif isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str) and "\x00" in key:
                    return where or "body"
                stack.append((sub, f"{where}.{key}" if where else str(key)))
        elif isinstance(item, list):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


class NulGuardMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int = 1_048_576) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if "\x00" in scope.get("path", "") or b"\x00" in query or b"%00" in query.lower():
            await self._refuse(scope, send, "the path or query string")
            return
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        buffered: list[ReceiveMessage] = []
        size = 0
        more = True
        while more and size <= self.max_body_bytes:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        if not more and size <= self.max_body_bytes:
            chunks = [m.get("body", b"") for m in buffered if m["type"] == "http.request"]
            body = b"".join(c for c in chunks if isinstance(c, bytes))
            try:
                decoded = msgspec.json.decode(body)
            except msgspec.DecodeError:
                decoded = None  # the route answers its own 400 for bad JSON
            where = find_nul(decoded)
            if where is not None:
                await self._refuse(scope, send, f"the JSON body ({where[:200]})", field=where)
                return

        async def replay() -> ReceiveMessage:
            if buffered:
                return buffered.pop(0)
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send, where: str, field: str = "") -> None:
        rid = request_id_of(scope)
        detail = f"NUL characters (U+0000) are not accepted in {where}"
        log.info(
            "request refused",
            path=scope.get("path", "")[:200].replace("\x00", "\\0"),
            status=400,
            detail=detail,
            request_id=rid,
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4400, "reason": detail})
            return
        problem = {"type": "about:blank", "title": "Bad request", "status": 400, "detail": detail}
        if field:
            problem["field"] = field[:200]
        body = json.dumps(problem).encode()
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
        await send(start)
        end: HTTPResponseBodyEvent = {
            "type": "http.response.body",
            "body": body,
            "more_body": False,
        }
        await send(end)
