"""The one error tree of UniDesk, shared by the server core and the agent.

    UnideskError                      (500, close 4500)
    ├── BadRequest                    (400)  input that fails validation
    │   └── ProtocolViolation         (close 4400) a malformed or unknown agent frame
    ├── Unauthenticated               (401, close 4401) missing, bad, expired or revoked credentials
    ├── Forbidden                     (403, close 4403) authenticated, but not allowed
    ├── NotFound                      (404)
    ├── Conflict                      (409)  the request races or contradicts current state
    ├── PayloadTooLarge               (413, close 1009)
    ├── RateLimited                   (429)
    ├── TimedOut                      (408, close 4408) a peer sent nothing within its timeout
    ├── IncompatibleProtocol          (close 4426) agent and server speak different versions
    └── Unavailable                   (503, close 1013)  a dependency is down; try again later

Each class carries the HTTP ``status`` and WebSocket ``close_code`` it maps to: one handler in
the core turns them into RFC 9457 problem+json, and ``close_for`` into a WebSocket close (the
protocol's ``CLOSE_*`` codes are these). Context goes in keyword-only arguments so messages
stay short and structured.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "IncompatibleProtocol",
    "NotFound",
    "PayloadTooLarge",
    "ProtocolViolation",
    "RateLimited",
    "TimedOut",
    "Unauthenticated",
    "Unavailable",
    "UnideskError",
    "close_for",
]

CLOSE_INTERNAL_ERROR = 1011
CLOSE_REASON_MAX = 120
"""A close frame holds at most 123 bytes of reason."""


class UnideskError(Exception):
    """Root of every error UniDesk raises on purpose."""

    status: int = 500
    close_code: int = 4500
    title: str = "Internal error"

    def __init__(self, detail: str, /, **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context


class BadRequest(UnideskError):
    status, close_code, title = 400, 4400, "Bad request"


class ProtocolViolation(BadRequest):
    title = "Protocol violation"


class Unauthenticated(UnideskError):
    status, close_code, title = 401, 4401, "Authentication required"


class Forbidden(UnideskError):
    status, close_code, title = 403, 4403, "Forbidden"


class NotFound(UnideskError):
    status, close_code, title = 404, 4404, "Not found"


class Conflict(UnideskError):
    status, close_code, title = 409, 4409, "Conflict"


class PayloadTooLarge(UnideskError):
    status, close_code, title = 413, 1009, "Payload too large"


class RateLimited(UnideskError):
    status, close_code, title = 429, 4429, "Too many requests"

    def __init__(self, detail: str, /, *, retry_after_s: int, **context: Any) -> None:
        super().__init__(detail, retry_after_s=retry_after_s, **context)
        self.retry_after_s = retry_after_s


class TimedOut(UnideskError):
    status, close_code, title = 408, 4408, "Timed out"


class IncompatibleProtocol(UnideskError):
    status, close_code, title = 400, 4426, "Incompatible protocol version"


class Unavailable(UnideskError):
    # 1013 "try again later": a standard code every WebSocket client knows is not final
    status, close_code, title = 503, 1013, "Service unavailable"


def close_for(exc: BaseException) -> tuple[int, str]:
    """The WebSocket close ``(code, reason)`` for an error: an ``UnideskError``'s own close
    code and detail (cut to fit a close frame); anything else 1011 with its type name."""
    if isinstance(exc, UnideskError):
        return exc.close_code, exc.detail[:CLOSE_REASON_MAX]
    return CLOSE_INTERNAL_ERROR, f"internal error ({type(exc).__name__})"
