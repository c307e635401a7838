"""Why a task waits, in real Chromium (New York time zone) against a real server and its local
agent: the task list and the task page show a pending task's reason, and it changes live as the
situation does (over its account's quota -> waiting for resources once the quota is raised ->
running once the node frees)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.browser import shot
from tests.browser.conftest import UiServer

pytestmark = [pytest.mark.browser, pytest.mark.docker]


def test_pending_reason_shows_and_follows_quota_and_capacity(
    page: Page, ui_server: UiServer
) -> None:
    node = ui_server.local_node()
    cpus = node["cpus"]
    blocker = ui_server.task_body("sleep 300", "ui-sched-blocker")
    blocker["resources"] = {"cpus": cpus, "memory_mb": 64}
    blocker = ui_server.api.post("/api/tasks", json=blocker).json()
    ui_server.wait_task(blocker["id"], {"assigned", "preparing", "running"})
    r = ui_server.api.put("/api/quotas/accounts/ui-sched", json={"max_cpus": 0})
    assert r.status_code == 200, r.text
    body = ui_server.task_body("echo done", "ui-sched-waiter")
    body["resources"] = {"cpus": cpus, "memory_mb": 64}
    body["account"] = "ui-sched"
    r = ui_server.api.post("/api/tasks", json=body)
    assert r.status_code == 201, r.text
    waiter = r.json()
    try:
        page.goto("/tasks")
        row = page.locator(f"tr[data-task-id='{waiter['id']}']")
        expect(row.get_by_test_id("pending-reason")).to_contain_text(
            "Over quota · needs", timeout=20_000
        )
        expect(row.get_by_test_id("pending-reason")).to_contain_text(
            "the account ui-sched's quota allows 0"
        )
        page.goto(f"/tasks/{waiter['id']}")
        reason = page.get_by_test_id("pending-reason")
        expect(reason).to_contain_text("Over quota", timeout=20_000)
        expect(page.locator(".kv-row").filter(has_text="Account")).to_contain_text("ui-sched")
        shot(page, "30-task-over-quota")

        # The admin raises the quota: the same page, without a reload, now says it waits for
        # the node the blocker holds (and that node is reserved for it).
        r = ui_server.api.put("/api/quotas/accounts/ui-sched", json={"max_cpus": 1000})
        assert r.status_code == 200, r.text
        expect(reason).to_contain_text("Waiting for resources", timeout=20_000)
        expect(reason).to_contain_text(f"node {node['name']} reserved for it")
        shot(page, "31-task-waiting-for-resources")
        page.goto("/tasks")
        expect(row.get_by_test_id("pending-reason")).to_contain_text("Waiting for resources")

        # The node frees: the task runs and no reason is shown any more.
        ui_server.api.post(f"/api/tasks/{blocker['id']}/cancel")
        ui_server.wait_task(waiter["id"], {"succeeded", "failed"})
        expect(row.get_by_test_id("pending-reason")).to_have_count(0, timeout=20_000)
        trace = ui_server.api.get(f"/api/tasks/{waiter['id']}/trace").json()["items"]
        waits = [e["payload"]["pending_reason"] for e in trace if e["kind"] == "task.waiting"]
        assert waits == ["over_quota", "waiting_for_resources"], waits
    finally:
        for t in (blocker, waiter):
            ui_server.api.post(f"/api/tasks/{t['id']}/cancel")
        ui_server.api.delete("/api/quotas/accounts/ui-sched")
