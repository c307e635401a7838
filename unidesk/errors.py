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
    ├── IncompatibleProtocol          (close 4426) agent and server speak different versions
    └── Unavailable                   (503)  a documented dependency is down (database, Docker…)

Each class carries the HTTP ``status`` and WebSocket ``close_code`` it maps to; one
handler in the core turns them into RFC 9457 problem+json. Context goes in keyword-only
arguments so messages stay short and structured.
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
    "Unauthenticated",
    "Unavailable",
    "UnideskError",
]


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


class IncompatibleProtocol(UnideskError):
    status, close_code, title = 400, 4426, "Incompatible protocol version"


class Unavailable(UnideskError):
    status, close_code, title = 503, 4503, "Service unavailable"
