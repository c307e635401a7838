"""The task pages people work in all day, in real Chromium (New York time zone) against a real
server: the task list sorted and paged by the server, logs first with colours and permalinks,
and the submit form's memory, ref resolution and attachments."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, Request, expect

from tests.browser.browser import shot
from tests.browser.conftest import UiServer

pytestmark = [pytest.mark.browser, pytest.mark.docker]

BULK = 1000


def _bulk_tasks(ui: UiServer) -> list[dict[str, Any]]:
    """1,000 tasks no node takes (a label nothing has), priorities 0..4, oldest first."""
    listed = ui.api.get("/api/tasks", params={"q": "bulk-", "total": "true", "limit": 1}).json()
    if listed["total"] != BULK:
        specs = []
        for i in range(BULK):
            body = ui.task_body("echo never", f"bulk-{i:04d}")
            body["resources"] = {"cpus": 0.5, "memory_mb": 128, "labels": {"ui-never": "1"}}
            body["priority"] = i % 5
            specs.append(body)
        r = ui.api.post("/api/task-batches", json={"tasks": specs})
        assert r.status_code in (200, 201), r.text
    return ui.api.get(
        "/api/tasks", params={"q": "bulk-", "sort": "created_at", "limit": 500}
    ).json()["items"]


def _names(page: Page) -> Any:
    return page.locator("tbody tr td:first-child a")


def test_task_list_sorts_and_pages_on_the_server_and_loads_once(
    page: Page, ui_server: UiServer
) -> None:
    oldest = _bulk_tasks(ui_server)[0]
    assert oldest["name"] == "bulk-0000"
    list_calls: list[str] = []

    def on_request(req: Request) -> None:
        if re.search(r"/api/tasks(\?|$)", req.url) and req.method == "GET":
            list_calls.append(req.url)

    page.on("request", on_request)
    page.goto("/tasks?q=bulk-")
    expect(page.get_by_test_id("tasks-count")).to_have_text(
        re.compile(r"^1000 tasks match these filters · page 1 of 20")
    )
    expect(page.get_by_test_id("live-indicator")).to_have_attribute(
        "aria-label", "Live updates: Live"
    )
    expect(_names(page).first).to_have_text("bulk-0999")  # newest first
    assert len(list_calls) == 1, list_calls  # one fetch per load, also once the stream is open

    # The oldest of 1,000 is one click away.
    page.get_by_role("button", name="Last »").click()
    expect(page.get_by_test_id("tasks-count")).to_contain_text("page 20 of 20")
    expect(_names(page).last).to_have_text("bulk-0000")
    expect(_names(page)).to_have_count(50)
    shot(page, "30-tasks-last-page")
    page.get_by_role("button", name="« First").click()
    expect(_names(page).first).to_have_text("bulk-0999")

    # Page numbers, then next/previous by cursor from there.
    page.get_by_role("button", name="Page 3", exact=True).click()
    expect(page.get_by_test_id("tasks-count")).to_contain_text("page 3 of 20")
    expect(_names(page).first).to_have_text("bulk-0899")
    page.get_by_role("button", name="Next →").click()
    expect(page.get_by_test_id("tasks-count")).to_contain_text("page 4 of 20")
    expect(_names(page).first).to_have_text("bulk-0849")
    page.get_by_role("button", name="← Previous").click()
    expect(page.get_by_test_id("tasks-count")).to_contain_text("page 3 of 20")
    expect(_names(page).first).to_have_text("bulk-0899")

    # Headers sort on the server, over every page: the order holds across the whole list.
    page.get_by_role("button", name=re.compile(r"^Created")).click()
    expect(page.get_by_role("columnheader", name=re.compile(r"^Created"))).to_have_attribute(
        "aria-sort", "ascending"
    )
    expect(page.get_by_test_id("tasks-count")).to_contain_text("page 1 of 20")
    expect(_names(page).first).to_have_text("bulk-0000")
    assert "sort=created_at" in list_calls[-1]
    page.get_by_role("button", name=re.compile(r"^Priority")).click()
    expect(page.get_by_role("columnheader", name=re.compile(r"^Priority"))).to_have_attribute(
        "aria-sort", "descending"
    )
    expect(_names(page).first).to_have_text("bulk-0999")  # priority 4, newest first among them
    page.get_by_role("button", name="Last »").click()
    expect(_names(page).last).to_have_text("bulk-0000")  # priority 0, oldest
    page.get_by_role("button", name=re.compile(r"^Task")).click()
    expect(page.get_by_role("columnheader", name=re.compile(r"^Task"))).to_have_attribute(
        "aria-sort", "ascending"
    )
    expect(_names(page).first).to_have_text("bulk-0000")
    expect(page.get_by_test_id("tasks-count")).to_contain_text("sorted by name, ascending")
    shot(page, "31-tasks-sorted-by-name")
