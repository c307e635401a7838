"""HTTP handlers for login, users, personal API tokens and node tokens."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import structlog
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import Cookie, State
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.auth import schemas
from unidesk.core.auth.guards import admin_only
from unidesk.core.auth.middleware import SESSION_COOKIE
from unidesk.core.auth.services import NodeTokenService, TokenService, UserService, me_out
from unidesk.core.db.readcache import cached_answer
from unidesk.core.settings import Settings
from unidesk.errors import Unauthenticated

__all__ = ["ApiTokenController", "AuthController", "NodeTokenController", "UserController"]

log = structlog.get_logger("unidesk.auth")


class AuthController(Controller):
    path = "/api/auth"
    tags = ("auth",)

    @post("/login", operation_id="login", status_code=200)
    async def login(
        self,
        data: schemas.Login,
        request: Request,
        db: AsyncSession,
        state: State,
        settings: Settings,
    ) -> Response[schemas.LoginResult]:
        """Check a username and password; on success set the session cookie."""
        client = request.client.host if request.client else "unknown"
        limiter = state.login_limiter
        limiter.check(client)
        try:
            user = await UserService(db).authenticate(data.username, data.password)
        except Unauthenticated:
            limiter.record(client)
            log.info("login failed", username=data.username[:64], client=client)
            raise
        limiter.forget(client)
        _, secret = await TokenService(db).issue(
            user, kind="session", name="browser", ttl=timedelta(seconds=settings.session_ttl_s)
        )
        cookie = Cookie(
            key=SESSION_COOKIE,
            value=secret,
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookies,
            max_age=settings.session_ttl_s,
            path="/",
        )
        return Response(schemas.LoginResult(user=me_out(user)), cookies=[cookie])

    @post("/logout", operation_id="logout", status_code=204)
    async def logout(
        self, principal: schemas.Principal, db: AsyncSession, state: State
    ) -> Response[None]:
        """End this browser session."""
        await TokenService(db).end_session(principal.token_id)
        state.principal_cache.forget_token(principal.token_id)
        return Response(
            None,
            status_code=204,
            cookies=[Cookie(key=SESSION_COOKIE, value="", max_age=0, path="/")],
        )

    @get("/me", operation_id="me")
    async def me(self, principal: schemas.Principal, db: AsyncSession) -> schemas.Me:
        """The calling user, with the admin-only actions the access policy allows them."""
        return me_out(await UserService(db).get(principal.user_id))


class UserController(Controller):
    path = "/api/users"
    tags = ("users",)
    guards = (admin_only,)

    @get("/", operation_id="list_users")
    async def list_users(
        self,
        request: Request[Any, Any, Any],
        db: AsyncSession,
        principal: schemas.Principal,
    ) -> Response[dict[str, list[schemas.User]]]:
        """All users (admin)."""

        async def page() -> dict[str, list[schemas.User]]:
            return {"items": await UserService(db).list()}

        return await cached_answer(request, principal, page)

    @post("/", operation_id="create_user")
    async def create_user(
        self, data: schemas.UserCreate, db: AsyncSession, principal: schemas.Principal
    ) -> schemas.User:
        """Create a user (admin)."""
        return await UserService(db).create(data, actor=principal.actor)

    @patch("/{user_id:uuid}", operation_id="update_user")
    async def update_user(
        self,
        user_id: uuid.UUID,
        data: schemas.UserUpdate,
        db: AsyncSession,
        principal: schemas.Principal,
        state: State,
    ) -> schemas.User:
        """Change a user's role, password, or disable them (admin); disabling revokes their
        tokens."""
        user = await UserService(db).update(user_id, data, actor=principal.actor)
        state.principal_cache.forget_user(user_id)
        return user


class ApiTokenController(Controller):
    path = "/api/tokens"
    tags = ("tokens",)

    @get("/", operation_id="list_api_tokens")
    async def list_tokens(
        self, db: AsyncSession, principal: schemas.Principal
    ) -> dict[str, list[schemas.ApiToken]]:
        """The caller's personal API tokens (never their secrets)."""
        return {"items": await TokenService(db).list_personal(principal.user_id)}

    @post("/", operation_id="create_api_token")
    async def create_token(
        self, data: schemas.ApiTokenCreate, db: AsyncSession, principal: schemas.Principal
    ) -> schemas.ApiTokenCreated:
        """Create a personal API token; its secret is in this response only."""
        return await TokenService(db).create_personal(principal, data)

    @delete("/{token_id:uuid}", operation_id="revoke_api_token")
    async def revoke_token(
        self, token_id: uuid.UUID, db: AsyncSession, principal: schemas.Principal, state: State
    ) -> None:
        """Revoke one of the caller's tokens."""
        await TokenService(db).revoke(principal, token_id)
        state.principal_cache.forget_token(token_id)


class NodeTokenController(Controller):
    path = "/api/node-tokens"
    tags = ("node tokens",)
    guards = (admin_only,)

    @get("/", operation_id="list_node_tokens")
    async def list_node_tokens(self, db: AsyncSession) -> dict[str, list[schemas.NodeToken]]:
        """All node tokens (admin)."""
        return {"items": await NodeTokenService(db).list()}

    @post("/", operation_id="create_node_token")
    async def create_node_token(
        self, data: schemas.NodeTokenCreate, db: AsyncSession, principal: schemas.Principal
    ) -> schemas.NodeTokenCreated:
        """Issue a node token for `unidesk-agent --token`; the secret is shown once."""
        return await NodeTokenService(db).create(
            data.name, actor=principal.actor, created_by=principal.user_id
        )

    @delete("/{token_id:uuid}", operation_id="revoke_node_token")
    async def revoke_node_token(
        self, token_id: uuid.UUID, db: AsyncSession, principal: schemas.Principal, state: State
    ) -> None:
        """Revoke a node token; agents using it are disconnected within one heartbeat."""
        await NodeTokenService(db).revoke(token_id, actor=principal.actor)
