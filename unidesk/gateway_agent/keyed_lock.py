"""A lock per key that holds across coroutines (asyncio) and across agent processes (flock)."""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

__all__ = ["KeyedLock"]

_POLL_S = 0.05


class KeyedLock:
    """``async with locks.hold("key"):`` — one holder per key; lock files live in ``lock_dir``.

    Inside one process an ``asyncio.Lock`` orders waiters fairly; a ``flock`` on
    ``lock_dir/<key>.lock`` keeps a second agent process (same cache dir) out too. Waiting is
    cancellable: a cancelled waiter never takes the lock.
    """

    def __init__(self, lock_dir: Path) -> None:
        self._dir = lock_dir
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                fd = await self._flock(key)
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                self._locks.pop(key, None)

    async def _flock(self, key: str) -> int:
        self._dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._dir / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    await asyncio.sleep(_POLL_S)
        except BaseException:
            os.close(fd)
            raise
