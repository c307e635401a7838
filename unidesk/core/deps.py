"""Litestar dependency providers shared by every controller."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from litestar import Request
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.auth.schemas import Principal
from unidesk.core.db.reads import Reads
from unidesk.core.settings import Settings
from unidesk.errors import BadRequest

__all__ = [
    "DEPENDENCIES",
    "owner_filter",
    "provide_db",
    "provide_principal",
    "provide_reads",
    "provide_settings",
]


async def provide_db(state: State) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


def provide_reads(state: State) -> Reads:
    return state.reads


def provide_principal(request: Request) -> Principal:
    return request.user


def provide_settings(state: State) -> Settings:
    return state.settings


def owner_filter(owner: str | None, principal: Principal) -> uuid.UUID | None:
    """The ``owner`` query parameter of list routes: ``me``, a user id, or absent."""
    if not owner:
        return None
    if owner == "me":
        return principal.user_id
    try:
        return uuid.UUID(owner)
    except ValueError:
        raise BadRequest("owner: 'me' or a user id") from None


from litestar.di import Provide  # noqa: E402

DEPENDENCIES = {
    "db": Provide(provide_db),
    "principal": Provide(provide_principal, sync_to_thread=False),
    "settings": Provide(provide_settings, sync_to_thread=False),
    "reads": Provide(provide_reads, sync_to_thread=False),
}
