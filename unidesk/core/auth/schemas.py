"""Public shapes of users and tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

__all__ = [
    "ApiToken",
    "ApiTokenCreate",
    "ApiTokenCreated",
    "Login",
    "LoginResult",
    "NodeToken",
    "NodeTokenCreate",
    "NodeTokenCreated",
    "Principal",
    "Role",
    "User",
    "UserCreate",
    "UserUpdate",
]

Role = Literal["admin", "member"]
Username = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=1024)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class User(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    username: str
    role: Role
    disabled: bool
    created_at: datetime


class UserCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: Username
    password: Password
    role: Role = "member"


class UserUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    role: Role | None = None
    disabled: bool | None = None
    password: Password | None = None


class Login(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class Me(User, kw_only=True):
    """The calling user and the admin-only actions the access policy allows them, by kind of
    thing (``{}`` for members); owner actions come on each thing as ``allowed_actions``."""

    allowed_actions: dict[str, list[str]]


class LoginResult(msgspec.Struct, kw_only=True):
    user: Me


class ApiToken(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiTokenCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


class ApiTokenCreated(msgspec.Struct, kw_only=True):
    token: ApiToken
    secret: str


class NodeToken(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    server_local: bool = False
    """The token the server issued itself for its own local agent: revoking it takes this
    machine's node offline until the server restarts."""


class NodeTokenCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name


class NodeTokenCreated(msgspec.Struct, kw_only=True):
    token: NodeToken
    secret: str


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling: set on every authenticated request."""

    user_id: uuid.UUID
    username: str
    role: Role
    token_id: uuid.UUID

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> str:
        return f"user:{self.username}"
