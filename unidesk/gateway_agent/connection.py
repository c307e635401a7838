"""Dialing the server's ingress: the handshake, close-code meaning, and when to dial again.

When to dial again (``Redial``): exponential backoff with full jitter up to ``backoff_cap_s``
after a lost link; after the server closed for a stop or restart (1001 going away, 1012 service
restart) the delays are capped at ``restart_redial_cap_s`` for ``restart_window_s`` so the fleet
is back within seconds of the server (not a full cap later); a busy server's refusal before the
upgrade (HTTP 503 with ``Retry-After: N``) is honoured first: wait N s plus up to 1 s of jitter.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

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
    "RESTART_CLOSES",
    "RETRYABLE",
    "RETRY_AFTER_MAX_S",
    "FinalRefusal",
    "Redial",
    "backoff_delay",
    "dial",
    "final_refusal_for",
    "retry_after_of",
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


RESTART_CLOSES = frozenset({1001, 1012})
"""Close codes of a server that stops on purpose (going away, service restart): it is most
likely back in seconds, so the agent redials on the short restart schedule."""
RETRY_AFTER_MAX_S = 300.0
"""A server's Retry-After hint is honoured up to this long (a bad hint cannot park the agent)."""


def retry_after_of(exc: BaseException) -> float | None:
    """The seconds of a ``Retry-After`` header on an HTTP 503 refusal before the upgrade, or None
    (no refusal, no header, or an HTTP date instead of seconds)."""
    if not isinstance(exc, InvalidStatus) or exc.response.status_code != 503:
        return None
    raw = exc.response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(raw)
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, RETRY_AFTER_MAX_S)


class Redial:
    """The delay before each dial after the first: backoff, the restart window, Retry-After.

    ``connected()`` after a welcome resets the backoff; ``closed(code)`` records how the server
    closed (a restart close opens the window); ``refused(exc)`` records a dial that failed (its
    Retry-After hint, if any, sets the next delay); ``next_delay()`` gives the wait."""

    def __init__(
        self,
        *,
        cap_s: float = 60.0,
        restart_cap_s: float = 5.0,
        restart_window_s: float = 120.0,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cap_s = cap_s
        self.restart_cap_s = restart_cap_s
        self.restart_window_s = restart_window_s
        self._rand = rand
        self._clock = clock
        self.failures = 0
        self._restart_until = -math.inf
        self._hint: float | None = None

    def connected(self) -> None:
        self.failures = 0
        self._hint = None

    def closed(self, code: int | None) -> None:
        if code in RESTART_CLOSES:
            self._restart_until = self._clock() + self.restart_window_s

    def refused(self, exc: BaseException) -> None:
        self._hint = retry_after_of(exc)

    @property
    def restarting(self) -> bool:
        return self._clock() < self._restart_until

    def next_delay(self) -> float:
        if self._hint is not None:
            delay, self._hint = self._hint + self._rand(), None
            return delay
        cap = min(self.cap_s, self.restart_cap_s) if self.restarting else self.cap_s
        # in the restart window the ladder starts at 1 s: no tight loop while the port is closed
        base = 1.0 if self.restarting else 0.5
        delay = backoff_delay(self.failures, base_s=base, cap_s=cap, rand=self._rand)
        self.failures += 1
        return delay


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
