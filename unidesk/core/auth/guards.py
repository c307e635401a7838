"""Route guards: roles."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from unidesk.errors import Forbidden

__all__ = ["admin_only"]


def admin_only(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    if connection.scope.get("method") == "OPTIONS":
        return  # answered by Litestar's own OPTIONS handler, unauthenticated by design
    if not connection.user.is_admin:
        raise Forbidden("this action needs the admin role")
