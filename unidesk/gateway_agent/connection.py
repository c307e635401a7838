"""Dialing the server's ingress: the handshake, close-code meaning, and reconnect backoff."""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from unidesk import __version__
from unidesk.backoff import backoff_delay
from unidesk.protocol import (
    CLOSE_INCOMPATIBLE,
    CLOSE_REPLACED,
    CLOSE_REVOKED,
    CLOSE_UNAUTHENTICATED,
    MAX_FRAME_BYTES,
)

from .config import AgentConfig

__all__ = [
    "EXIT_AUTH_REFUSED",
    "EXIT_INCOMPATIBLE",
    "EXIT_REPLACED",
    "RETRYABLE",
    "FinalRefusal",
    "backoff_delay",
    "dial",
    "final_refusal_for",
]

EXIT_AUTH_REFUSED = 77  # sysexits EX_NOPERM
EXIT_INCOMPATIBLE = 76  # EX_PROTOCOL
EXIT_REPLACED = 75

_FINAL_CLOSES = {
    CLOSE_UNAUTHENTICATED: (EXIT_AUTH_REFUSED, "the server refused the node token"),
    CLOSE_REVOKED: (EXIT_AUTH_REFUSED, "the node token was revoked or is not allowed"),
    CLOSE_INCOMPATIBLE: (EXIT_INCOMPATIBLE, "the server speaks an incompatible protocol version"),
    CLOSE_REPLACED: (EXIT_REPLACED, "another agent connected with this node token"),
}

RETRYABLE = (OSError, TimeoutError, InvalidHandshake, ConnectionClosed)
"""Errors after which the agent waits a backoff delay and dials again."""


class FinalRefusal(Exception):
    """The server said no in a way that retrying cannot fix; the agent exits with ``exit_code``."""

    def __init__(self, message: str, *, code: int, exit_code: int, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code
        self.reason = reason


def final_refusal_for(code: int | None, reason: str = "") -> FinalRefusal | None:
    """A close code that means "stop trying" becomes a ``FinalRefusal``; others give None."""
    if code not in _FINAL_CLOSES:
        return None
    exit_code, text = _FINAL_CLOSES[code]
    detail = f"{text} (close {code}{': ' + reason if reason else ''})"
    return FinalRefusal(detail, code=code, exit_code=exit_code, reason=reason)


async def dial(config: AgentConfig, *, open_timeout_s: float = 15.0) -> ClientConnection:
    """Open the ingress socket with the token in the ``Authorization`` header (never the URL).

    Raises ``FinalRefusal`` when the server rejects the token before the upgrade (HTTP 401/403)
    or the URL is unusable; other failures are ``RETRYABLE``.
    """
    try:
        return await connect(
            config.ws_url,
            additional_headers={"Authorization": f"Bearer {config.token}"},
            user_agent_header=f"unidesk-agent/{__version__}",
            max_size=MAX_FRAME_BYTES,
            open_timeout=open_timeout_s,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=5,
            # small msgpack frames: deflate would cost the server ~44 KiB per node
            compression=None,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            code = CLOSE_UNAUTHENTICATED if status == 401 else CLOSE_REVOKED
            raise FinalRefusal(
                f"the server refused the node token (HTTP {status})",
                code=code,
                exit_code=EXIT_AUTH_REFUSED,
            ) from None
        if status == 426:
            refusal = final_refusal_for(CLOSE_INCOMPATIBLE, f"HTTP {status}")
            if refusal is not None:  # always: 4426 is a final close
                raise refusal from None
        raise
    except InvalidURI as exc:
        raise FinalRefusal(f"bad server URL: {exc}", code=0, exit_code=78) from None
