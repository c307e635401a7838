"""Async engine and session factory for the one authoritative PostgreSQL database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session

__all__ = ["libpq_url", "make_engine", "make_read_engine", "make_sessionmaker", "sync_url"]


_WROTE = "unidesk.wrote"
"""Session.info key: this transaction wrote something (the commit hook then runs)."""


def _normalise(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _json_dumps(value: object) -> str:
    return msgspec.json.encode(value).decode()


def make_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    # JSONB columns (de)serialised by msgspec: several times faster than the json module on
    # the list reads and event writes that carry them.
    return create_async_engine(
        _normalise(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        json_serializer=_json_dumps,
        json_deserializer=msgspec.json.decode,
    )


def make_read_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """A pool for ``Reads``: autocommit connections, no pre-ping (a dead one is retried).

    No overflow: past ``pool_size`` concurrent reads wait a few milliseconds for a connection
    instead of each opening (and closing) a PostgreSQL backend, which costs more than the read."""
    return create_async_engine(
        _normalise(url),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=10,
        isolation_level="AUTOCOMMIT",
        json_serializer=_json_dumps,
        json_deserializer=msgspec.json.decode,
    )


def make_sessionmaker(
    engine: AsyncEngine, on_commit: Callable[[], None] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``; ``on_commit`` runs right after each commit of a transaction that
    wrote (flushed ORM changes or ran anything but a SELECT): the read cache's write counter."""
    if on_commit is None:
        return async_sessionmaker(engine, expire_on_commit=False)
    # A class of its own, so the hooks count only this server's sessions (tests run several).
    counted = type("CountedSession", (Session,), {})

    def flushed(session: Session, _context: Any) -> None:
        session.info[_WROTE] = True

    def executed(state: ORMExecuteState) -> None:
        if not state.is_select:
            state.session.info[_WROTE] = True

    def committed(session: Session) -> None:
        if session.info.pop(_WROTE, False):
            on_commit()

    event.listen(counted, "after_flush", flushed)
    event.listen(counted, "do_orm_execute", executed)
    event.listen(counted, "after_commit", committed)
    event.listen(counted, "after_rollback", lambda session: session.info.pop(_WROTE, None))
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=counted)


def sync_url(url: str) -> str:
    """The same database for synchronous tools (Alembic) with psycopg 3."""
    return _normalise(url)


def libpq_url(url: str) -> str:
    """A plain libpq URL (for psycopg connections and pg_dump)."""
    return "postgresql://" + _normalise(url).split("://", 1)[1]
