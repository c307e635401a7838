"""Route guards: roles."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from unidesk.errors import Forbidden

__all__ = ["admin_only"]


def admin_only(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    if not connection.user.is_admin:
        raise Forbidden("this action needs the admin role")
