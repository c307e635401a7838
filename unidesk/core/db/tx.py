"""Run a unit of work in its own transaction, retrying on deadlock or serialization failure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg.errors
import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk.backoff import backoff_delay

__all__ = ["in_transaction"]

log = structlog.get_logger("unidesk.db")
T = TypeVar("T")
_RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


async def in_transaction(
    sessions: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    attempts: int = 4,
    name: str = "tx",
) -> T:
    """``work(session)`` then commit; on a deadlock, roll back and run it again (bounded)."""
    for i in range(attempts):
        async with sessions() as session:
            try:
                result = await work(session)
                await session.commit()
                return result
            except DBAPIError as exc:
                await session.rollback()
                if isinstance(exc.orig, _RETRYABLE) and i + 1 < attempts:
                    log.info(
                        "transaction retried",
                        name=name,
                        error=type(exc.orig).__name__,
                        attempt=i + 1,
                    )
                    await asyncio.sleep(backoff_delay(i, base_s=0.025, cap_s=0.5))
                    continue
                raise
    raise AssertionError("unreachable")
