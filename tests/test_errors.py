"""The error tree maps to WebSocket closes in one place, and the protocol's codes are its own."""

from __future__ import annotations

from unidesk import protocol
from unidesk.errors import (
    BadRequest,
    ProtocolViolation,
    TimedOut,
    Unauthenticated,
    Unavailable,
    close_for,
)


def test_close_for_uses_the_error_trees_codes_and_cuts_the_reason() -> None:
    assert close_for(Unauthenticated("bad token")) == (4401, "bad token")
    assert close_for(TimedOut("silent")) == (protocol.CLOSE_SILENT, "silent") == (4408, "silent")
    assert close_for(Unavailable("busy")) == (protocol.CLOSE_BUSY, "busy") == (1013, "busy")
    code, reason = close_for(ProtocolViolation("x" * 500))
    assert code == protocol.CLOSE_BAD_FRAME == BadRequest.close_code == 4400
    assert len(reason.encode()) <= 123
    assert close_for(RuntimeError("boom")) == (1011, "internal error (RuntimeError)")


def test_protocol_close_codes_are_the_error_trees() -> None:
    assert (
        protocol.CLOSE_UNAUTHENTICATED,
        protocol.CLOSE_REVOKED,
        protocol.CLOSE_REPLACED,
        protocol.CLOSE_INCOMPATIBLE,
        protocol.CLOSE_TOO_BIG,
    ) == (4401, 4403, 4409, 4426, 1009)
