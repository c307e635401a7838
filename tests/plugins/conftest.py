"""Fixtures of the plugin tests: task bodies, an event waiter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


def make_task_body(**overrides: Any) -> dict[str, Any]:
    """A valid TaskCreate body (submission only validates it; nothing runs these in API tests)."""
    body = {
        "name": "t",
        "code_repo_url": "file:///srv/code",
        "code_commit_id": "a" * 40,
        "env_repo_url": "file:///srv/env",
        "env_commit_id": "b" * 40,
        "dockerfile_path": "Dockerfile",
        "command": "echo hi",
        "resources": {"cpus": 0.5, "memory_mb": 64},
        "max_attempts": 1,
    }
    body.update(overrides)
    return body


@pytest.fixture
def task_body() -> Callable[..., dict[str, Any]]:
    return make_task_body


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.1
) -> Any:
    """Await ``check()`` until it returns something truthy (bounded in time)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")
