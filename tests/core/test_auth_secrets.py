"""Password hashing runs off the event loop: the loop keeps running other work meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from unidesk.core.auth.secrets import hash_password, verify_password


async def _loop_ran_during(coro_factory: Callable[[], Awaitable[object]]) -> tuple[object, int]:
    """Run the coroutine beside a task that counts its turns; the count when the coroutine
    returns is 0 if it held the loop the whole time (work done inline)."""
    turns = 0
    stop = asyncio.Event()

    async def count() -> None:
        nonlocal turns
        while not stop.is_set():
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count())
    try:
        result = await coro_factory()
        return result, turns
    finally:
        stop.set()
        await counter


async def test_hash_and_verify_leave_the_loop_free() -> None:
    stored, turns = await _loop_ran_during(lambda: hash_password("correct horse"))
    assert isinstance(stored, str) and stored.startswith("$argon2") and turns > 0
    ok, turns = await _loop_ran_during(lambda: verify_password(stored, "correct horse"))
    assert ok is True and turns > 0
    bad, turns = await _loop_ran_during(lambda: verify_password(stored, "wrong"))
    assert bad is False and turns > 0
    # no such user: verified against the dummy hash, same answer shape, also off the loop
    missing, turns = await _loop_ran_during(lambda: verify_password(None, "anything"))
    assert missing is False and turns > 0
    assert await verify_password("not-a-hash", "x") is False
