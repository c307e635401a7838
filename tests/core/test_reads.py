"""The read path: rows back, a busy pool refused with 503, a dead connection retried once."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from unidesk.core.db.engine import libpq_url, make_read_engine
from unidesk.core.db.reads import Reads
from unidesk.errors import Unavailable


async def test_rows_come_back_and_a_busy_pool_is_503(database_url: str) -> None:
    engine = create_async_engine(
        make_read_engine(database_url, 1).url, pool_size=1, max_overflow=0, pool_timeout=0.2
    )
    reads = Reads(engine)
    try:
        assert [tuple(r) for r in await reads.all(text("SELECT 1, 'a'"))] == [(1, "a")]
        async with engine.connect():  # the only connection is taken
            with pytest.raises(Unavailable):
                await reads.all(text("SELECT 1"))
        assert (await reads.first(text("SELECT 2")))[0] == 2  # type: ignore[index]
    finally:
        await engine.dispose()


async def test_a_connection_killed_by_the_server_is_retried_once(database_url: str) -> None:
    reads = Reads(make_read_engine(database_url, 1))
    try:
        pid = (await reads.first(text("SELECT pg_backend_pid()")))[0]  # type: ignore[index]
        with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        row = await reads.first(text("SELECT pg_backend_pid()"))
        assert row is not None and row[0] != pid
    finally:
        await reads.engine.dispose()
