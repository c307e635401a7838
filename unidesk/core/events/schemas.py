"""Public shapes of events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

__all__ = ["EventOut", "EventPage"]


class EventOut(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    ts: datetime
    kind: str
    subject_type: str
    subject_id: str
    actor: str
    payload: dict[str, Any]


class EventPage(msgspec.Struct, kw_only=True):
    items: list[EventOut]
    last_id: int
