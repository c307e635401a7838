"""A short-lived cache of authenticated principals: token hash → Principal, per server process.

Resolving a token costs a database round trip on every request; the cache keeps the answer for
at most ``auth_cache_s`` seconds (and never past the token's own expiry). Revocation stays
effective: revoking a token, ending a session or changing/disabling a user drops the entries at
once in the process that made the change, and in every other process when the change's event
(``api_token.revoked``, ``user.updated``) arrives through the event hub, normally within
milliseconds. The bound in the worst case (event stream down, or a logout, which writes no
event, served by another worker) is ``auth_cache_s``.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime

from unidesk.core.auth.schemas import Principal
from unidesk.core.events.schemas import EventOut

__all__ = ["PrincipalCache"]

MAX_ENTRIES = 10_000


class PrincipalCache:
    """Principals by token hash, each kept until a monotonic deadline."""

    def __init__(self, ttl_s: float, *, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[Principal, float]] = {}

    def get(self, key: str) -> Principal | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            self._entries.pop(key, None)
            return None
        return entry[0]

    def put(self, key: str, principal: Principal, expires_at: datetime | None) -> None:
        """Keep ``principal`` for ``ttl_s`` seconds, or until the token expires if sooner."""
        if self.ttl_s <= 0:
            return
        ttl = self.ttl_s
        if expires_at is not None:
            ttl = min(ttl, expires_at.timestamp() - time.time())
            if ttl <= 0:
                return
        if len(self._entries) >= self.max_entries:
            self._prune()
        self._entries[key] = (principal, time.monotonic() + ttl)

    def _prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, (_, deadline) in self._entries.items() if deadline <= now]:
            del self._entries[key]
        if len(self._entries) >= self.max_entries:
            self._entries.clear()

    def forget_token(self, token_id: uuid.UUID) -> None:
        for key in [k for k, (p, _) in self._entries.items() if p.token_id == token_id]:
            del self._entries[key]

    def forget_user(self, user_id: uuid.UUID) -> None:
        for key in [k for k, (p, _) in self._entries.items() if p.user_id == user_id]:
            del self._entries[key]

    async def on_events(self, events: list[EventOut]) -> None:
        """Event hub listener: revocations and user changes made by any server process."""
        for e in events:
            try:
                if e.kind == "api_token.revoked":
                    self.forget_token(uuid.UUID(str(e.payload.get("token_id"))))
                elif e.kind == "user.updated":
                    self.forget_user(uuid.UUID(e.subject_id))
            except ValueError:
                continue
