"""The read path of list routes: Core statements on an autocommit pool, one round trip per read.

A list read needs no transaction: run on an autocommit connection it costs one round trip
(no BEGIN, no ROLLBACK), and without a pre-ping on checkout (another round trip) it costs one
in all. A connection found dead (the database restarted) fails that statement; reads are
idempotent, so it is retried once on a fresh connection, and the pool drops the dead ones.
When every read connection stays busy past the pool's timeout the read is refused with 503.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import psycopg
from sqlalchemy import Executable
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from unidesk.errors import Unavailable

__all__ = ["Reads"]


class Reads:
    """Runs read-only Core statements and returns their rows (never ORM objects)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def all(self, stmt: Executable, params: dict[str, Any] | None = None) -> Sequence[Any]:
        """The statement's rows (SQLAlchemy Rows: tuples with attribute access)."""
        for attempt in (1, 2):
            try:
                async with self.engine.connect() as conn:
                    return (await conn.execute(stmt, params)).all()
            except PoolTimeout:
                raise Unavailable(
                    "the database is busy: no read connection came free in time; retry shortly"
                ) from None
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    async def tuples(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of a SQL text (psycopg ``%(name)s`` parameters) as plain tuples, run on the
        pooled connection's psycopg connection: no SQLAlchemy execution context, no Row objects,
        a prepared statement once psycopg has seen the text a few times. For the hottest reads
        (the task list), whose statement is compiled once per shape."""
        for attempt in (1, 2):
            try:
                async with self.engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    driver: Any = raw.driver_connection
                    try:
                        cur = await driver.execute(sql, params)
                        return cast(list[tuple[Any, ...]], await cur.fetchall())
                    except psycopg.OperationalError as exc:
                        if driver.closed:  # the connection died: the pool must drop it
                            await conn.invalidate(exc)
                            if attempt == 1:
                                continue
                        raise Unavailable("the database is unreachable; see /health") from exc
            except PoolTimeout:
                raise Unavailable(
                    "the database is busy: no read connection came free in time; retry shortly"
                ) from None
        raise AssertionError("unreachable")

    async def first(self, stmt: Executable, params: dict[str, Any] | None = None) -> Any:
        rows = await self.all(stmt, params)
        return rows[0] if rows else None
