"""Async engine and session factory for the one authoritative PostgreSQL database."""

from __future__ import annotations

import msgspec
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

__all__ = ["libpq_url", "make_engine", "make_read_engine", "make_sessionmaker", "sync_url"]


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


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def sync_url(url: str) -> str:
    """The same database for synchronous tools (Alembic) with psycopg 3."""
    return _normalise(url)


def libpq_url(url: str) -> str:
    """A plain libpq URL (for psycopg connections and pg_dump)."""
    return "postgresql://" + _normalise(url).split("://", 1)[1]
