"""Authentication middleware: a session cookie or a personal Bearer token becomes a Principal.

CSRF: an unsafe request (not GET/HEAD/OPTIONS) authenticated by the session cookie that a
browser marks as cross-site is refused: it needs ``Sec-Fetch-Site: same-origin`` or an
``Origin`` whose host is the request's ``Host`` (or one of ``trusted_origins``); a request
with neither header is not from a browser page. Requests carrying ``Authorization: Bearer …``
are exempt (a browser never adds that header by itself).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from unidesk.core.auth.schemas import Principal
from unidesk.core.auth.secrets import hash_secret
from unidesk.core.auth.services import TokenService
from unidesk.errors import Forbidden, Unauthenticated

__all__ = [
    "PUBLIC_PATHS",
    "SESSION_COOKIE",
    "AuthMiddleware",
    "check_same_origin",
    "optional_principal",
    "presented_secret",
]

OPTIONAL_RESOLVE_TIMEOUT_S = 2.0
"""How long a public route waits to learn who is calling (the database may be the thing down)."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

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


def check_same_origin(connection: ASGIConnection, trusted_origins: str) -> None:
    """Refuse (403) a cookie-authenticated unsafe request that a foreign page sent.

    Browsers mark every request with ``Sec-Fetch-Site`` and unsafe ones with ``Origin``; a
    request with neither comes from a non-browser client (curl, a script holding the cookie),
    which no foreign page can make a victim's browser send. (Go's CrossOriginProtection rule.)
    """
    if connection.scope.get("method", "GET") in SAFE_METHODS:
        return
    site = connection.headers.get("sec-fetch-site")
    if site in ("same-origin", "none"):
        return
    origin = connection.headers.get("origin")
    if origin is None and site is None:
        return
    if origin and origin != "null":
        try:
            netloc = urlsplit(origin).netloc.lower()
        except ValueError:
            netloc = ""
        host = connection.headers.get("host", "").lower()
        trusted = {o.strip().rstrip("/").lower() for o in trusted_origins.split(",") if o.strip()}
        if (netloc and netloc == host) or origin.rstrip("/").lower() in trusted:
            return
    raise Forbidden(
        "cross-site request refused: a request authenticated by the session cookie must come "
        "from this server's pages (same-origin Origin or Sec-Fetch-Site); scripts and the CLI "
        "send 'Authorization: Bearer <token>' instead"
    )


class AuthMiddleware(AbstractAuthenticationMiddleware):
    """Resolves the presented secret, through the process's short-lived principal cache."""

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        secret = presented_secret(connection)
        if not secret:
            raise Unauthenticated("log in or send 'Authorization: Bearer <token>'")
        state = connection.app.state
        if not connection.headers.get("authorization"):  # the secret is the session cookie
            check_same_origin(connection, state.settings.trusted_origins)
        return AuthenticationResult(user=await _resolve(connection, secret), auth=secret)


async def _resolve(connection: ASGIConnection, secret: str) -> Principal:
    state = connection.app.state
    key = hash_secret(secret)
    principal = state.principal_cache.get(key)
    if principal is None:
        async with state.sessions() as session:
            principal, expires_at = await TokenService(session).resolve_with_expiry(secret)
        state.principal_cache.put(key, principal, expires_at)
    return principal


async def optional_principal(connection: ASGIConnection) -> Principal | None:
    """Who calls a public route (``/health``), or None: no secret, a bad or expired one, a
    cross-site cookie, or a database that cannot say within ``OPTIONAL_RESOLVE_TIMEOUT_S``
    all read as anonymous (the route answers its public form; nothing is refused)."""
    try:
        secret = presented_secret(connection)
        if not secret:
            return None
        if not connection.headers.get("authorization"):
            check_same_origin(connection, connection.app.state.settings.trusted_origins)
        async with asyncio.timeout(OPTIONAL_RESOLVE_TIMEOUT_S):
            return await _resolve(connection, secret)
    except Exception:  # any failure to resolve is "not known to be an admin"
        return None
