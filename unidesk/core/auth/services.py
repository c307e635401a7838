"""Users, sessions, personal API tokens and node tokens: the only code touching their tables."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.auth import schemas
from unidesk.core.auth.models import ApiToken, NodeToken, User
from unidesk.core.auth.policy import admin_actions
from unidesk.core.auth.secrets import (
    hash_password,
    hash_secret,
    new_secret,
    verify_password,
)
from unidesk.core.events.writer import NewEvent, append
from unidesk.errors import Conflict, NotFound, Unauthenticated

__all__ = [
    "LOCAL_AGENT_TOKEN_PREFIX",
    "NodeTokenService",
    "TokenService",
    "UserService",
    "me_out",
    "node_token_out",
    "user_out",
]

LOCAL_AGENT_TOKEN_PREFIX = "local:"
"""Name prefix of the node token the server issues itself for its local agent."""


def _now() -> datetime:
    return datetime.now(UTC)


def user_out(u: User) -> schemas.User:
    return schemas.User(
        id=u.id,
        username=u.username,
        role=cast(schemas.Role, u.role),  # only ever written from a schemas.Role
        disabled=u.disabled,
        created_at=u.created_at,
    )


def _token_out(t: ApiToken) -> schemas.ApiToken:
    return schemas.ApiToken(
        id=t.id,
        name=t.name,
        prefix=t.prefix,
        created_at=t.created_at,
        expires_at=t.expires_at,
        last_used_at=t.last_used_at,
        revoked_at=t.revoked_at,
    )


def node_token_out(t: NodeToken) -> schemas.NodeToken:
    return schemas.NodeToken(
        id=t.id,
        name=t.name,
        prefix=t.prefix,
        created_at=t.created_at,
        last_used_at=t.last_used_at,
        revoked_at=t.revoked_at,
        server_local=t.created_by is None and t.name.startswith(LOCAL_AGENT_TOKEN_PREFIX),
    )


def me_out(u: User) -> schemas.Me:
    """``u`` as the caller sees themselves, with what the access policy allows them."""
    return schemas.Me(
        id=u.id,
        username=u.username,
        role=cast(schemas.Role, u.role),
        disabled=u.disabled,
        created_at=u.created_at,
        allowed_actions=admin_actions(u.role),
    )


class UserService:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def create(self, data: schemas.UserCreate, *, actor: str) -> schemas.User:
        user = User(
            id=uuid.uuid4(),
            username=data.username,
            password_hash=await hash_password(data.password),
            role=data.role,
        )
        self.s.add(user)
        try:
            await self.s.flush()
        except IntegrityError:
            await self.s.rollback()
            raise Conflict(f"user {data.username!r} already exists") from None
        await append(
            self.s,
            NewEvent(
                kind="user.created",
                subject_type="user",
                subject_id=str(user.id),
                actor=actor,
                payload={"username": user.username, "role": user.role},
            ),
        )
        await self.s.commit()
        await self.s.refresh(user)
        return user_out(user)

    async def authenticate(self, username: str, password: str) -> User:
        user = await self.s.scalar(select(User).where(User.username == username))
        if user is None:
            await verify_password(None, password)  # same cost whether or not the user exists
            raise Unauthenticated("wrong username or password")
        if not await verify_password(user.password_hash, password) or user.disabled:
            raise Unauthenticated("wrong username or password")
        return user

    async def list(self) -> list[schemas.User]:
        return [
            user_out(u) for u in (await self.s.scalars(select(User).order_by(User.username))).all()
        ]

    async def get(self, user_id: uuid.UUID) -> User:
        user = await self.s.get(User, user_id)
        if user is None:
            raise NotFound(f"user {user_id} not found")
        return user

    async def update(
        self, user_id: uuid.UUID, data: schemas.UserUpdate, *, actor: str
    ) -> schemas.User:
        user = await self.get(user_id)
        changed: dict[str, object] = {}
        if data.role is not None and data.role != user.role:
            user.role = changed["role"] = data.role
        if data.disabled is not None and data.disabled != user.disabled:
            user.disabled = changed["disabled"] = data.disabled
        if data.password is not None:
            user.password_hash = await hash_password(data.password)
            changed["password"] = "changed"
        if data.disabled:
            await self.s.execute(
                update(ApiToken)
                .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
        if changed:
            await append(
                self.s,
                NewEvent(
                    kind="user.updated",
                    subject_type="user",
                    subject_id=str(user.id),
                    actor=actor,
                    payload=changed,
                ),
            )
        await self.s.commit()
        return user_out(user)

    async def any_admin(self) -> bool:
        return (
            await self.s.scalar(select(User.id).where(User.role == "admin").limit(1))
        ) is not None


class TokenService:
    """Sessions (cookie) and personal tokens (Bearer) for people."""

    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def issue(
        self, user: User, *, kind: str, name: str, ttl: timedelta | None
    ) -> tuple[ApiToken, str]:
        secret = new_secret("uds" if kind == "session" else "udk")
        token = ApiToken(
            id=uuid.uuid4(),
            user_id=user.id,
            kind=kind,
            name=name,
            prefix=secret[:8],
            token_hash=hash_secret(secret),
            expires_at=(_now() + ttl) if ttl else None,
        )
        self.s.add(token)
        await self.s.flush()
        if kind == "personal":
            await append(
                self.s,
                NewEvent(
                    kind="api_token.created",
                    subject_type="user",
                    subject_id=str(user.id),
                    actor=f"user:{user.username}",
                    payload={"token_id": str(token.id), "name": name},
                ),
            )
        await self.s.commit()
        await self.s.refresh(token)
        return token, secret

    async def create_personal(
        self, principal: schemas.Principal, data: schemas.ApiTokenCreate
    ) -> schemas.ApiTokenCreated:
        user = await UserService(self.s).get(principal.user_id)
        ttl = timedelta(days=data.expires_in_days) if data.expires_in_days else None
        token, secret = await self.issue(user, kind="personal", name=data.name, ttl=ttl)
        return schemas.ApiTokenCreated(token=_token_out(token), secret=secret)

    async def list_personal(self, user_id: uuid.UUID) -> list[schemas.ApiToken]:
        rows = await self.s.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.kind == "personal")
            .order_by(ApiToken.created_at.desc())
        )
        return [_token_out(t) for t in rows.all()]

    async def revoke(self, principal: schemas.Principal, token_id: uuid.UUID) -> None:
        token = await self.s.get(ApiToken, token_id)
        if token is None or (token.user_id != principal.user_id and not principal.is_admin):
            raise NotFound(f"token {token_id} not found")
        if token.revoked_at is None:
            token.revoked_at = _now()
            await append(
                self.s,
                NewEvent(
                    kind="api_token.revoked",
                    subject_type="user",
                    subject_id=str(token.user_id),
                    actor=principal.actor,
                    payload={"token_id": str(token.id)},
                ),
            )
            await self.s.commit()

    async def resolve(self, secret: str) -> schemas.Principal:
        """The principal a presented secret stands for, or Unauthenticated."""
        return (await self.resolve_with_expiry(secret))[0]

    async def resolve_with_expiry(self, secret: str) -> tuple[schemas.Principal, datetime | None]:
        """The principal and its token's expiry (for the principal cache), or Unauthenticated."""
        row = (
            await self.s.execute(
                select(
                    ApiToken.id,
                    ApiToken.revoked_at,
                    ApiToken.expires_at,
                    ApiToken.last_used_at,
                    User.id,
                    User.username,
                    User.role,
                    User.disabled,
                )
                .join(User, User.id == ApiToken.user_id)
                .where(ApiToken.token_hash == hash_secret(secret))
            )
        ).first()
        if row is None:
            raise Unauthenticated("invalid credentials")
        token_id, revoked_at, expires_at, last_used_at, user_id, username, role, disabled = row
        if revoked_at is not None or disabled:
            raise Unauthenticated("credentials revoked")
        now = _now()
        if expires_at is not None and expires_at <= now:
            raise Unauthenticated("credentials expired")
        if last_used_at is None or now - last_used_at > timedelta(minutes=1):
            await self.s.execute(
                update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now)
            )
            await self.s.commit()
        principal = schemas.Principal(
            user_id=user_id, username=username, role=cast(schemas.Role, role), token_id=token_id
        )
        return principal, expires_at

    async def end_session(self, token_id: uuid.UUID) -> None:
        await self.s.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id, ApiToken.kind == "session")
            .values(revoked_at=_now())
        )
        await self.s.commit()


class NodeTokenService:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def create(
        self, name: str, *, actor: str, created_by: uuid.UUID | None
    ) -> schemas.NodeTokenCreated:
        secret = new_secret("udn")
        token = NodeToken(
            id=uuid.uuid4(),
            name=name,
            prefix=secret[:8],
            token_hash=hash_secret(secret),
            created_by=created_by,
        )
        self.s.add(token)
        await self.s.flush()
        await append(
            self.s,
            NewEvent(
                kind="node_token.created",
                subject_type="node_token",
                subject_id=str(token.id),
                actor=actor,
                payload={"name": name},
            ),
        )
        await self.s.commit()
        await self.s.refresh(token)
        return schemas.NodeTokenCreated(token=node_token_out(token), secret=secret)

    async def list(self) -> list[schemas.NodeToken]:
        return [
            node_token_out(t)
            for t in (
                await self.s.scalars(select(NodeToken).order_by(NodeToken.created_at.desc()))
            ).all()
        ]

    async def revoke(self, token_id: uuid.UUID, *, actor: str) -> None:
        token = await self.s.get(NodeToken, token_id)
        if token is None:
            raise NotFound(f"node token {token_id} not found")
        if token.revoked_at is None:
            token.revoked_at = _now()
            await append(
                self.s,
                NewEvent(
                    kind="node_token.revoked",
                    subject_type="node_token",
                    subject_id=str(token.id),
                    actor=actor,
                    payload={"name": token.name},
                ),
            )
            await self.s.commit()

    async def resolve(self, secret: str) -> NodeToken:
        result = (await self.resolve_many([secret]))[secret]
        if isinstance(result, Unauthenticated):
            raise result
        return result

    async def resolve_many(self, secrets: Sequence[str]) -> dict[str, NodeToken | Unauthenticated]:
        """Each presented secret's token, or the Unauthenticated it earns, in one read."""
        hashes = {secret: hash_secret(secret) for secret in secrets}
        rows = (
            await self.s.scalars(
                select(NodeToken).where(NodeToken.token_hash.in_(set(hashes.values())))
            )
        ).all()
        by_hash = {t.token_hash: t for t in rows}
        out: dict[str, NodeToken | Unauthenticated] = {}
        for secret, h in hashes.items():
            token = by_hash.get(h)
            if token is None:
                out[secret] = Unauthenticated("invalid node token")
            elif token.revoked_at is not None:
                out[secret] = Unauthenticated("node token revoked")
            else:
                out[secret] = token
        return out
