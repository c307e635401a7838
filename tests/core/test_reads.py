"""The read path: rows back, a busy pool refused with 503, a dead connection retried once; list
answers kept in memory until a write, with ETag/304."""

from __future__ import annotations

import asyncio
import multiprocessing

import psycopg
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import literal, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.core.conftest import task_body
from unidesk.core.db.engine import libpq_url, make_engine, make_read_engine, make_sessionmaker
from unidesk.core.db.readcache import ReadCache, WriteCounter
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


async def test_a_list_answer_is_kept_until_a_write_and_304_while_unchanged(
    client: AsyncTestClient, admin_headers: dict[str, str], member_headers: dict[str, str]
) -> None:
    cache = client.app.state.read_cache
    first = await client.get("/api/tasks", headers=admin_headers)
    assert first.status_code == 200 and first.json()["items"] == []
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, no-cache"
    hits = cache.hits
    again = await client.get("/api/tasks", headers={**admin_headers, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert cache.hits == hits + 1  # served from memory: no database read
    created = await client.post("/api/tasks", json=task_body(name="new"), headers=admin_headers)
    assert created.status_code == 201, created.text
    after = await client.get("/api/tasks", headers={**admin_headers, "If-None-Match": etag})
    assert after.status_code == 200 and after.headers["etag"] != etag
    assert [t["name"] for t in after.json()["items"]] == ["new"]
    # Kept per caller: the member gets its own answer (what it may do differs).
    mine = (await client.get("/api/tasks", headers=admin_headers)).json()["items"][0]
    theirs = (await client.get("/api/tasks", headers=member_headers)).json()["items"][0]
    assert "cancel" in mine["allowed_actions"] and "cancel" not in theirs["allowed_actions"]
    # Other list routes answer the same way.
    for path in ("/api/events", "/api/nodes", "/api/secrets", "/api/users"):
        r = await client.get(path, headers=admin_headers)
        assert r.status_code == 200, (path, r.text)
        r2 = await client.get(path, headers={**admin_headers, "If-None-Match": r.headers["etag"]})
        assert r2.status_code == 304, path


async def test_the_cache_is_bypassed_while_the_event_stream_is_down(
    client: AsyncTestClient, admin_headers: dict[str, str]
) -> None:
    cache, hub = client.app.state.read_cache, client.app.state.event_hub
    await client.get("/api/tasks", headers=admin_headers)
    error, hub.error = hub.error, "event stream listener down: test"
    try:
        misses = cache.misses
        for _ in range(2):
            assert (await client.get("/api/tasks", headers=admin_headers)).status_code == 200
        assert cache.misses == misses + 2  # another instance's writes could not be heard
    finally:
        hub.error = error


def _bump_slot(counter: WriteCounter, slot: int, times: int) -> None:
    counter.attach(slot)
    for _ in range(times):
        counter.bump()


def test_the_write_counter_is_shared_with_forked_workers() -> None:
    counter = WriteCounter(2).attach(0)
    counter.bump()
    child = multiprocessing.get_context("fork").Process(target=_bump_slot, args=(counter, 1, 3))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert counter.value() == 4
    with pytest.raises(ValueError):
        counter.attach(2)


async def test_only_a_commit_that_wrote_moves_the_counter(database_url: str) -> None:
    counter = WriteCounter()
    engine = make_engine(database_url, 1)
    sessions = make_sessionmaker(engine, on_commit=counter.bump)
    try:
        async with sessions() as s:
            await s.execute(select(literal(1)))  # a SELECT statement (text() counts as a write)
            await s.commit()
        assert counter.value() == 0
        async with sessions() as s:
            await s.execute(text("CREATE TEMP TABLE t (x int)"))
            await s.commit()
        assert counter.value() == 1
        async with sessions() as s:
            await s.execute(text("CREATE TEMP TABLE t2 (x int)"))
            await s.rollback()
            await s.execute(select(literal(1)))
            await s.commit()
        assert counter.value() == 1
    finally:
        await engine.dispose()


async def test_tuples_come_back_a_killed_connection_is_retried_and_a_busy_pool_is_503(
    database_url: str,
) -> None:
    engine = create_async_engine(
        make_read_engine(database_url, 1).url,
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.2,
        isolation_level="AUTOCOMMIT",
    )
    reads = Reads(engine)
    try:
        assert await reads.tuples("SELECT %(n)s::int, 'a'", {"n": 1}) == [(1, "a")]
        pid = (await reads.tuples("SELECT pg_backend_pid()", {}))[0][0]
        with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        again = await reads.tuples("SELECT pg_backend_pid()", {})
        assert again[0][0] != pid  # the dead connection was dropped and the read retried
        async with engine.connect():  # the only connection is taken
            with pytest.raises(Unavailable):
                await reads.tuples("SELECT 1", {})
    finally:
        await engine.dispose()


async def test_a_memo_is_kept_until_a_write_and_computed_once_for_concurrent_callers() -> None:
    counter = WriteCounter()
    enabled = True
    cache = ReadCache(counter, enabled=lambda: enabled)
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return calls

    assert await asyncio.gather(*(cache.memo("n", compute) for _ in range(5))) == [1] * 5
    assert await cache.memo("n", compute) == 1 and calls == 1  # kept
    counter.bump()  # a write
    assert await cache.memo("n", compute) == 2
    enabled = False  # the event stream is down: nothing is kept
    assert await cache.memo("n", compute) == 3
    assert await cache.memo("n", compute) == 4

    async def fail() -> int:
        raise RuntimeError("boom")

    enabled = True
    counter.bump()
    with pytest.raises(RuntimeError):
        await cache.memo("n", fail)
    assert await cache.memo("n", compute) == 5  # a failure is not kept
