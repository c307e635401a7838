"""A slow plugin event listener delays only itself: the core's listeners and dispatch go on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import ADMIN_PASSWORD, login
from tests.core.sched_helpers import SimCluster
from tests.plugins.conftest import eventually, make_task_body
from unidesk.core.app import COMPONENT_FACTORIES, create_app
from unidesk.core.events.schemas import EventOut
from unidesk.core.hookspecs import hookimpl
from unidesk.core.plugins import facade
from unidesk.core.plugins.manager import make_plugin_manager
from unidesk.core.settings import Settings


class SlowPlugin:
    """Its listener sleeps on the first batch it gets until the test releases it."""

    def __init__(self) -> None:
        self.sleeping = False
        self.slept = False
        self.release = asyncio.Event()
        self.seen: list[str] = []

    @hookimpl
    def unidesk_event_listeners(self) -> list[Any]:
        return [self.listener]

    async def listener(self, events: list[EventOut], state: Any) -> None:
        self.seen += [e.kind for e in events]
        if not self.slept:
            self.slept = self.sleeping = True
            try:
                await self.release.wait()
            finally:
                self.sleeping = False


async def test_a_sleeping_plugin_listener_does_not_hold_up_dispatch(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Long enough that only the release ends the sleep (the old pump would wait it out).
    monkeypatch.setattr(facade, "LISTENER_TIMEOUT_S", 300.0)
    slow = SlowPlugin()
    loaded = make_plugin_manager("all", extra=[("slow", slow)], entry_points=False)
    scheduler = next(f for f in COMPONENT_FACTORIES if f.__name__ == "_scheduler")
    app = create_app(settings, components=[scheduler], plugins=loaded)
    async with AsyncTestClient(app=app) as c:
        headers = await login(c, "admin", ADMIN_PASSWORD)
        core_seen: list[str] = []

        async def core_listener(events: list[EventOut]) -> None:
            core_seen.extend(e.kind for e in events)

        app.state.event_hub.add_listener("test-core", core_listener)
        await SimCluster(app.state.sessions).nodes(1)

        async def asleep() -> bool:
            return slow.sleeping

        await eventually(asleep)
        r = await c.post("/api/tasks", json=make_task_body(), headers=headers)
        assert r.status_code == 201, r.text
        task_id = r.json()["id"]

        async def assigned() -> bool:
            t = (await c.get(f"/api/tasks/{task_id}", headers=headers)).json()
            return t["state"] == "assigned" and "task.assigned" in core_seen

        # assigned, and seen by a core listener registered after the plugin's, while the
        # plugin's listener still sleeps
        await eventually(assigned)
        assert slow.sleeping and "task.assigned" not in slow.seen
        slow.release.set()

        async def caught_up() -> bool:
            return "task.assigned" in slow.seen

        await eventually(caught_up)  # the plugin gets every batch afterwards, in order
        assert slow.seen.index("task.submitted") < slow.seen.index("task.assigned")
