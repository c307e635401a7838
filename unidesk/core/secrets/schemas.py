"""Public shapes of secrets: SecretPut (a value, write-only) and Secret (metadata only)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

__all__ = ["NAME_PATTERN", "REF_PATTERN", "Secret", "SecretList", "SecretPut", "SecretRef"]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
REF_PATTERN = (
    r"^(?:(?:global|project:[A-Za-z0-9][A-Za-z0-9_.-]{0,127})/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
)
SecretRef = Annotated[
    str,
    msgspec.Meta(
        pattern=REF_PATTERN,
        max_length=300,
        description="NAME (yours, else the global one), project:<project id>/NAME or global/NAME",
    ),
]
Scope = Literal["user", "project", "global"]


class SecretPut(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    value: Annotated[str, msgspec.Meta(min_length=4, max_length=65536)]
    """The secret value; stored encrypted, never returned by any route."""


class Secret(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    scope: Scope
    name: str
    project: str | None
    owner_id: uuid.UUID | None
    ref: str
    """How a task names this secret (see SecretRef)."""
    created_by: str
    updated_by: str
    created_at: datetime
    updated_at: datetime


class SecretList(msgspec.Struct, kw_only=True):
    items: list[Secret]
