"""The task pages people work in all day, in real Chromium (New York time zone) against a real
server: the task list sorted and paged by the server, logs first with colours and permalinks,
and the submit form's memory, ref resolution and attachments."""

from __future__ import annotations

import re
from datetime import datetime
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


def _log_lines(ui: UiServer, task_id: str) -> list[str]:
    """The attempt's lines as the page numbers them (each chunk's lines, in seq order)."""
    items = ui.api.get(f"/api/tasks/{task_id}/logs", params={"limit": 1000}).json()["items"]
    out: list[str] = []
    for item in items:
        data = item["data"][:-1] if item["data"].endswith("\n") else item["data"]
        out += data.split("\n")
    return out


LOUD = (
    "printf '\\033[1;31mred-bold\\033[0m plain \\033[32mgreen\\033[39m\\n'; "
    "printf '\\033[2K\\033]0;title\\007no-escapes-left\\n'; "
    "i=1; while [ $i -le 300 ]; do echo line-$i; i=$((i+1)); done; "
    "echo 'Traceback (most recent call last):' >&2; "
    "echo 'ValueError: bad shape' >&2; exit 3"
)


def test_failed_task_logs_first_coloured_with_error_lines_and_permalinks(
    page: Page, ui_server: UiServer
) -> None:
    task = ui_server.submit(LOUD, "ui-loud-fail")
    ui_server.wait_task(task["id"], {"failed"})
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"/tasks/{task['id']}")
    # Why it failed, as a sentence, the raw reason one click away, and the logs above the fold.
    expect(page.get_by_test_id("failure-sentence")).to_have_text(
        "The command failed with exit code 3."
    )
    raw = page.get_by_test_id("failure-raw")
    expect(raw).to_be_hidden()
    page.get_by_test_id("failure-banner").get_by_text("Details").click()
    expect(raw).to_have_text(re.compile(r"^exit_nonzero: command exited with code 3"))
    view = page.get_by_test_id("logs-view")
    expect(view).to_be_in_viewport()
    assert view.bounding_box()["y"] < 900 - 100, "the log starts above the fold at 1440x900"
    expect(page.get_by_test_id("logs-status")).to_have_text("Complete")

    # Colours are spans with classes; no escape bytes reach the screen.
    lines = _log_lines(ui_server, task["id"])
    red_n = next(i for i, t in enumerate(lines, 1) if "red-bold" in t)
    view.evaluate("el => { el.scrollTop = 0; }")
    red = page.locator(f"[data-line='{red_n}'] .log-text span.ansi-fg-1.ansi-bold")
    expect(red).to_have_text("red-bold")
    assert red.evaluate("e => getComputedStyle(e).fontWeight") == "700"
    expect(page.locator(f"[data-line='{red_n}'] .ansi-fg-2")).to_have_text("green")
    expect(page.locator(f"[data-line='{red_n + 1}'] .log-text")).to_have_text("no-escapes-left")
    assert "\x1b" not in view.inner_text() and "[31m" not in view.inner_text()

    # Error lines stand out; the last lines are in view (the log follows to its end).
    tb_n = next(i for i, t in enumerate(lines, 1) if t.startswith("Traceback"))
    # Rows are drawn only where the view is scrolled, and stderr's chunks may sit anywhere among
    # stdout's (ordered by time, not at the end): scroll down until the line is drawn.
    tb = page.locator(f"[data-line='{tb_n}']")
    view.evaluate("el => { el.scrollTop = 0; }")
    for _ in range(200):  # bounded: 200 steps of 120 px cover far more than this log
        if tb.count():
            break
        view.evaluate("el => { el.scrollTop = el.scrollTop + 120; }")
        page.wait_for_timeout(20)
    expect(tb).to_have_class(re.compile(r"\blog-error\b"))
    expect(page.locator(f"[data-line='{tb_n + 1}']")).to_have_class(re.compile(r"\blog-error\b"))
    # Lines are numbered in the order of the times the agent recorded (Docker's read time of
    # each stream: stdout the program wrote first may be read after its stderr); each line's
    # time says its stream and the time to the millisecond.
    items = ui_server.api.get(f"/api/tasks/{task['id']}/logs", params={"limit": 1000}).json()
    stamps = [datetime.fromisoformat(i["ts"]) for i in items["items"]]
    assert stamps == sorted(stamps), [(i["seq"], i["stream"], i["ts"]) for i in items["items"]]
    expect(tb.locator(".log-ts")).to_have_attribute(
        "title", re.compile(r"^stderr · \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")
    )
    shot(page, "32-task-failed-logs-first")

    # A permalink scrolls to its line and marks it; clicking a line number makes one.
    n = lines.index("line-120") + 1
    assert lines[n + 1] == "line-122", lines[n - 1 : n + 2]
    page.goto(f"/tasks/{task['id']}#L{n}")
    target = page.locator(f"[data-line='{n}']")
    expect(target).to_have_class(re.compile(r"\blog-target\b"))
    expect(target.locator(".log-text")).to_have_text("line-120")
    expect(target).to_be_in_viewport()
    box, vbox = target.bounding_box(), view.bounding_box()
    assert vbox["y"] <= box["y"] and box["y"] + box["height"] <= vbox["y"] + vbox["height"]
    expect(page.get_by_test_id("logs-permalink")).to_contain_text(f"Line {n}")
    page.locator(f"[data-line='{n + 2}'] a.log-n").click()
    expect(page).to_have_url(re.compile(f"#L{n + 2}$"))
    expect(page.locator(f"[data-line='{n + 2}']")).to_have_class(re.compile(r"\blog-target\b"))
    expect(target).not_to_have_class(re.compile(r"\blog-target\b"))
    page.get_by_role("button", name=re.compile(r"^Copy link to this line")).click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.endswith(f"/tasks/{task['id']}?attempt=1#L{n + 2}"), copied
    shot(page, "33-task-log-permalink")
    # The copied link opens on the same line in a fresh page.
    page.goto(copied)
    expect(page.locator(f"[data-line='{n + 2}'] .log-text")).to_have_text("line-122")
    expect(page.locator(f"[data-line='{n + 2}']")).to_be_in_viewport()


def test_infrastructure_failure_reads_as_a_sentence(page: Page, ui_server: UiServer) -> None:
    body = ui_server.task_body("echo never", "ui-missing-commit")
    body["code_commit_id"] = "c" * 40  # not in the repository: the node's git fetch fails
    r = ui_server.api.post("/api/tasks", json=body)
    assert r.status_code == 201, r.text
    task = ui_server.wait_task(r.json()["id"], {"failed"})
    assert task["reason"] == "infra_error" and "not found in repository" in task["message"]
    task_calls: list[str] = []
    page.on(
        "request",
        lambda req: (
            task_calls.append(req.url)
            if req.method == "GET" and req.url.endswith(f"/api/tasks/{task['id']}")
            else None
        ),
    )
    page.goto(f"/tasks/{task['id']}")
    expect(page.get_by_test_id("failure-sentence")).to_have_text(
        "That commit is not in the repository. Was it pushed?"
    )
    expect(page.get_by_test_id("live-indicator")).to_have_attribute(
        "aria-label", "Live updates: Live"
    )
    assert len(task_calls) == 1, task_calls  # the task page loads once, also as the stream opens
    page.get_by_test_id("failure-banner").get_by_text("Details").click()
    expect(page.get_by_test_id("failure-raw")).to_contain_text("c" * 40)
    # The details under the logs fold away, and stay folded on the next task page.
    toggle = page.get_by_role("button", name=re.compile(r"^▾ Details"))
    expect(page.get_by_role("heading", name="Summary")).to_be_visible()
    toggle.click()
    expect(page.get_by_role("heading", name="Summary")).to_have_count(0)
    page.reload()
    expect(page.get_by_role("button", name=re.compile(r"^▸ Details"))).to_have_attribute(
        "aria-expanded", "false"
    )
    page.get_by_role("button", name=re.compile(r"^▸ Details")).click()
    expect(page.get_by_role("heading", name="Summary")).to_be_visible()


def test_submit_form_resolves_refs_remembers_and_attaches_then_clones(
    page: Page, ui_server: UiServer
) -> None:
    code, env = ui_server.code, ui_server.env
    code.git("branch", "-f", "ui-feature", ui_server.code_sha)
    env.git("tag", "-f", "-a", "ui-env-v1", "-m", "env release", ui_server.env_sha)
    api = ui_server.api
    project = api.post("/api/projects", json={"name": "ui-attach-project"}).json()
    item = api.post(f"/api/projects/{project['id']}/items", json={"title": "Train it"}).json()
    experiment = api.post("/api/research/experiments", json={"name": "ui-attach-exp"}).json()
    page.evaluate("localStorage.clear()")

    page.goto("/tasks/new")
    form = page.get_by_role("form", name="Submit a task")
    form.locator("#f-name").fill("ui-attached")
    form.locator("#f-code_repo_url").fill(code.url)
    # A branch that does not exist says so; the one that does shows its commit before submitting.
    form.locator("#f-code_commit_id").fill("no-such-branch")
    form.locator("#f-code_commit_id").press("Tab")
    expect(page.get_by_test_id("resolved-code_commit_id")).to_contain_text(
        "no branch or tag named 'no-such-branch'"
    )
    form.locator("#f-code_commit_id").fill("ui-feature")
    form.locator("#f-code_commit_id").press("Tab")
    note = page.get_by_test_id("resolved-code_commit_id")
    expect(note).to_contain_text(f"Branch ui-feature is commit {ui_server.code_sha[:12]} now")
    form.locator("#f-env_repo_url").fill(env.url)
    form.locator("#f-dockerfile_path").fill("docker/Dockerfile")
    form.locator("#f-command").fill("echo attached")
    form.locator("#f-cpus").fill("0.5")
    form.locator("#f-memory_mb").fill("128")
    # Attach: the pickers are there because both plugins are loaded.
    form.get_by_label("Project").select_option(label="ui-attach-project")
    form.get_by_label("Work item").select_option(label="Train it (todo)")
    form.get_by_label("Experiment").select_option(label="ui-attach-exp")
    form.get_by_label("Run parameters (optional)").fill("lr=0.01\nopt=adam")
    # Submitting straight from a tag not yet looked up looks it up and shows it; nothing is sent.
    form.locator("#f-env_commit_id").fill("ui-env-v1")
    form.locator("#f-env_commit_id").press("Enter")  # submit from the field: it is never left
    expect(page.get_by_test_id("resolved-env_commit_id")).to_contain_text(
        f"Tag ui-env-v1 is commit {ui_server.env_sha[:12]} now"
    )
    expect(page).to_have_url(re.compile(r"/tasks/new$"))
    shot(page, "34-submit-refs-resolved-and-attached")
    with page.expect_response(
        lambda r: r.url.endswith("/api/tasks") and r.request.method == "POST"
    ) as resp:
        form.get_by_role("button", name="Submit task").click()
    assert resp.value.status == 201, resp.value.text()
    task = resp.value.json()
    assert task["code_commit_id"] == ui_server.code_sha  # pinned to the commit, not the branch
    assert task["env_commit_id"] == ui_server.env_sha
    assert task["extra"]["extensions"] == {
        "projects": {"work_item_id": item["id"]},
        "research": {"experiment_id": experiment["id"], "params": {"lr": 0.01, "opt": "adam"}},
    }
    run_list = api.get(f"/api/projects/items/{item['id']}").json()["run_list"]
    assert task["id"] in {r["task_id"] for r in run_list}
    runs = api.get(f"/api/research/experiments/{experiment['id']}").json()["runs"]
    assert [r["params"] for r in runs if r["task_id"] == task["id"]] == [
        {"lr": 0.01, "opt": "adam"}
    ]

    # The next form starts from what was used, and offers the refs typed before.
    page.goto("/tasks/new")
    expect(form.locator("#f-code_repo_url")).to_have_value(code.url)
    expect(form.locator("#f-env_repo_url")).to_have_value(env.url)
    expect(form.locator("#f-dockerfile_path")).to_have_value("docker/Dockerfile")
    assert page.locator("#dl-code-refs option").evaluate_all("os => os.map(o => o.value)") == [
        "ui-feature"
    ]
    assert page.locator("#dl-env-refs option").evaluate_all("os => os.map(o => o.value)") == [
        "ui-env-v1"
    ]

    # Clone: the same spec and attachments, named as a copy.
    page.goto(f"/tasks/{task['id']}")
    page.get_by_role("link", name="Clone").click()
    expect(form.locator("#f-name")).to_have_value("ui-attached-copy")
    expect(form.locator("#f-code_commit_id")).to_have_value(ui_server.code_sha)
    expect(form.get_by_label("Work item")).to_have_value(item["id"])
    expect(form.get_by_label("Experiment")).to_have_value(experiment["id"])
    with page.expect_response(
        lambda r: r.url.endswith("/api/tasks") and r.request.method == "POST"
    ) as resp:
        form.get_by_role("button", name="Submit task").click()
    assert resp.value.status == 201, resp.value.text()
    copy = resp.value.json()
    assert copy["name"] == "ui-attached-copy" and copy["id"] != task["id"]
    assert copy["extra"]["extensions"] == task["extra"]["extensions"]
    for t in (task, copy):
        api.post(f"/api/tasks/{t['id']}/cancel")
