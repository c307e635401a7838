"""Authentication middleware: a session cookie or a personal Bearer token becomes a Principal."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from unidesk.core.auth.services import TokenService
from unidesk.errors import Unauthenticated

__all__ = ["PUBLIC_PATHS", "SESSION_COOKIE", "AuthMiddleware", "presented_secret"]

SESSION_COOKIE = "unidesk_session"
# Public: health, docs, metrics and login; the agent ingress authenticates node tokens itself;
# storage presigned URLs carry their own signature; the UI bundle handler opts out itself.
PUBLIC_PATHS = [
    r"^/health",
    r"^/schema",
    r"^/metrics$",
    r"^/api/auth/login$",
    r"^/api/agent/",
    r"^/api/files/signed/",
]


def presented_secret(connection: ASGIConnection) -> str | None:
    header = connection.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("Authorization header must be 'Bearer <token>'")
        return value.strip()
    return connection.cookies.get(SESSION_COOKIE)


class AuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        secret = presented_secret(connection)
        if not secret:
            raise Unauthenticated("log in or send 'Authorization: Bearer <token>'")
        async with connection.app.state.sessions() as session:
            principal = await TokenService(session).resolve(secret)
        return AuthenticationResult(user=principal, auth=secret)
