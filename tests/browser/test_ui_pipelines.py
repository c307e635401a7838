"""The pipeline pages end to end (Chromium in New York time, real server, local agent on real
Docker): a pipeline submitted through the API is drawn step by step and edge by edge, with the
file each edge carries; step states change on the page as their tasks do, without a reload; a
step links to its task; the list shows it; actions follow the access policy; at phone width the
DAG scrolls inside its card."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.browser import new_context, shot
from tests.browser.conftest import UiServer, login_ui

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.plugins]


def _spec(ui: UiServer, name: str) -> dict[str, Any]:
    defaults = {k: v for k, v in ui.task_body("true", "x").items() if k not in ("name", "command")}
    return {
        "name": name,
        "defaults": defaults,
        "steps": [
            {
                "name": "prepare",
                "task": {
                    "command": "mkdir -p outputs && echo 1,2 > outputs/data.csv",
                    "outputs": ["data.csv"],
                },
            },
            {
                "name": "train",
                "depends_on": ["prepare"],
                "matrix": {"lr": [1, 2]},
                "task": {
                    # point lr=1 fails at once, lr=2 runs until the test cancels it
                    "command": "cat /inputs/prepare/0/data.csv; "
                    "[ {{ matrix.lr }} = 1 ] && exit 3; sleep 300",
                    "inputs": [{"from": "prepare/data.csv"}],
                },
            },
            {"name": "aggregate", "depends_on": ["train"], "task": {"command": "echo agg"}},
            {
                "name": "report",
                "depends_on": ["train"],
                "when": "on_failure",
                "task": {"command": "echo reporting"},
            },
        ],
    }


def _pipeline(ui: UiServer, pipeline_id: str) -> dict[str, Any]:
    r = ui.api.get(f"/api/pipelines/{pipeline_id}")
    r.raise_for_status()
    return r.json()


def _wait(ui: UiServer, pipeline_id: str, ok: Any, what: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        p = _pipeline(ui, pipeline_id)
        if ok(p):
            return p
        assert time.monotonic() < deadline, f"pipeline never {what}: {p}"
        time.sleep(0.5)


def _steps(p: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in p["steps"]}


def test_dag_page_draws_the_pipeline_and_follows_it_live(
    page: Page, browser: Browser, ui_server: UiServer
) -> None:
    r = ui_server.api.post("/api/pipelines", json=_spec(ui_server, "ui-dag"))
    assert r.status_code == 201, r.text
    pid = r.json()["id"]

    page.goto("/pipelines")
    row = page.locator(f"tr[data-pipeline-id='{pid}']")
    expect(row.get_by_role("link", name="ui-dag")).to_be_visible()
    row.get_by_role("link", name="ui-dag").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("ui-dag")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    # Every step and every edge is drawn; the edge into train names the file it carries.
    steps = page.get_by_test_id("dag-step")
    expect(steps).to_have_count(4)
    for name in ("prepare", "train", "aggregate", "report"):
        expect(page.locator(f"[data-testid=dag-step][data-step={name}]")).to_be_visible()
    edges = page.get_by_test_id("dag-edge")
    expect(edges).to_have_count(3)
    drawn = {(e.get_attribute("data-from"), e.get_attribute("data-to")) for e in edges.all()}
    assert drawn == {("prepare", "train"), ("train", "aggregate"), ("train", "report")}
    into_train = page.locator("[data-testid=dag-edge][data-from=prepare][data-to=train]")
    expect(into_train.locator("text")).to_have_text("data.csv")
    expect(page.locator("[data-testid=dag-edge][data-to=report] text")).to_have_text("on failure")
    # Boxes left to right by depth.
    xs = {
        n: page.locator(f"[data-testid=dag-step][data-step={n}]").bounding_box()["x"]
        for n in ("prepare", "train", "aggregate")
    }
    assert xs["prepare"] < xs["train"] < xs["aggregate"], xs
    # Colour is not the only cue: a legend, and each box says its state in words.
    expect(page.get_by_role("list", name="Step states")).to_contain_text("skipped")

    # Live: the train points start running once prepare's file is there.
    train = page.locator("[data-testid=dag-step][data-step=train]")
    expect(train).to_have_attribute("data-state", "running", timeout=180_000)
    expect(train.get_by_test_id("dag-step-state")).to_have_text("running")
    expect(page.locator("[data-testid=dag-step][data-step=prepare]")).to_have_attribute(
        "data-state", "succeeded"
    )
    running = _wait(
        ui_server,
        pid,
        lambda p: (
            [pt["task_state"] for pt in _steps(p)["train"]["points"]] == ["failed", "running"]
        ),
        "had one train point failed and the other running",
    )
    expect(train.locator(".dag-points li").first).to_have_attribute(
        "title", "lr=1 · failed", timeout=20_000
    )
    shot(page, "pipeline-running")

    # The last train task cancelled behind the page's back: the step fails, its on_failure step
    # runs, the rest is skipped, and the page shows each change without being reloaded.
    point_task = _steps(running)["train"]["points"][1]["task_id"]
    assert ui_server.api.post(f"/api/tasks/{point_task}/cancel").status_code == 200
    final = _wait(ui_server, pid, lambda p: p["state"] == "failed", "failed")
    for name, step in _steps(final).items():
        expect(page.locator(f"[data-testid=dag-step][data-step={name}]")).to_have_attribute(
            "data-state", step["state"], timeout=20_000
        )
    assert {n: s["state"] for n, s in _steps(final).items()} == {
        "prepare": "succeeded",
        "train": "failed",
        "aggregate": "skipped",
        "report": "succeeded",
    }
    expect(page.locator("#step-train").get_by_test_id("step-reason")).to_contain_text(
        "2 of 2 tasks did not succeed: 1 failed, 1 cancelled"
    )
    expect(page.get_by_role("heading", level=1)).to_contain_text(final["state"])
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
    shot(page, "pipeline-failed")
    # The trace: the pipeline's events in order, the failure among them.
    trace = page.get_by_test_id("pipeline-trace")
    trace.locator("summary").click()
    expect(trace.locator("[data-kind='step.failed']")).to_have_count(1)
    expect(trace.locator("[data-kind='pipeline.failed']")).to_have_count(1)
    kinds = trace.locator("[data-kind]").evaluate_all("els => els.map(e => e.dataset.kind)")
    assert kinds[0] == "pipeline.submitted" and kinds[-1] == "pipeline.failed", kinds

    # The admin may retry the failed step and rerun; a member who does not own it may not.
    expect(page.get_by_role("button", name="Retry train")).to_be_visible()
    expect(page.get_by_role("button", name="Rerun…")).to_be_visible()
    r = ui_server.api.post(
        "/api/users",
        json={"username": "pipe-member", "password": "member-password-1", "role": "member"},
    )
    assert r.status_code in (201, 409), r.text
    ctx = new_context(browser, ui_server.url)
    try:
        member = ctx.new_page()
        login_ui(member, "pipe-member", "member-password-1")
        member.goto(f"/pipelines/{pid}")
        expect(member.get_by_test_id("dag-step")).to_have_count(4)
        expect(member.get_by_role("button", name="Retry train")).to_have_count(0)
        expect(member.get_by_role("button", name="Rerun…")).to_have_count(0)
    finally:
        ctx.close()

    # A step is a link to its task page, reached from the keyboard.
    prepare_task = _steps(final)["prepare"]["points"][0]["task_id"]
    link = page.locator("[data-testid=dag-step][data-step=prepare]").get_by_test_id("dag-step-link")
    link.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{ui_server.url}/tasks/{prepare_task}")
    # The task page links back to its pipeline and step (the unidesk_task_links hook).
    back = page.get_by_test_id("task-links").get_by_role(
        "link", name="Pipeline ui-dag · step prepare"
    )
    back.click()
    expect(page).to_have_url(f"{ui_server.url}/pipelines/{pid}")
    # A matrix point links to its own task, which names its step.
    point = page.locator("[data-testid=dag-step][data-step=train] .dag-points a").nth(1)
    point.click()
    expect(page).to_have_url(f"{ui_server.url}/tasks/{point_task}")
    expect(page.get_by_test_id("task-links")).to_have_text("Pipeline ui-dag · step train")

    # Retry the failed step from the page: it runs again while prepare keeps its task and file,
    # and the step it had skipped waits again. Then cancel the pipeline from the page.
    page.go_back()
    page.get_by_role("button", name="Retry train").click()
    page.get_by_role("button", name="Run it again").click()
    retried = _wait(
        ui_server,
        pid,
        lambda p: p["state"] == "running" and _steps(p)["train"]["state"] == "running",
        "resumed",
    )
    assert _steps(retried)["prepare"]["points"][0]["task_id"] == prepare_task
    expect(train).to_have_attribute("data-state", "running", timeout=20_000)
    expect(page.locator("[data-testid=dag-step][data-step=aggregate]")).to_have_attribute(
        "data-state", "waiting", timeout=20_000
    )
    page.get_by_role("button", name="Cancel pipeline").click()
    page.get_by_role("button", name="Yes, cancel it").click()
    cancelled = _wait(ui_server, pid, lambda p: p["state"] == "cancelled", "cancelled")
    expect(page.get_by_role("heading", level=1)).to_contain_text("cancelled", timeout=20_000)
    for name, step in _steps(cancelled).items():
        expect(page.locator(f"[data-testid=dag-step][data-step={name}]")).to_have_attribute(
            "data-state", step["state"], timeout=20_000
        )

    # Rerun: a new pipeline from the same spec, opened at once.
    page.get_by_role("button", name="Rerun…").click()
    page.get_by_role("button", name="Rerun pipeline").click()
    expect(page).not_to_have_url(re.compile(pid))
    new_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    expect(page.get_by_role("heading", level=1)).to_contain_text("ui-dag")
    expect(page.get_by_test_id("dag-step")).to_have_count(4)
    assert ui_server.api.post(f"/api/pipelines/{new_id}/cancel").status_code == 200


def test_dag_scrolls_inside_its_card_at_phone_width(page_factory, ui_server: UiServer) -> None:
    spec = _spec(ui_server, "ui-dag-phone")
    for step in spec["steps"]:
        step["task"]["command"] = "true"
    spec["steps"][0]["task"].pop("outputs")
    spec["steps"][1]["task"].pop("inputs")
    r = ui_server.api.post("/api/pipelines", json=spec)
    assert r.status_code == 201, r.text
    page = page_factory(ui_server.url, width=390, height=844)
    page.goto(f"/pipelines/{r.json()['id']}")
    expect(page.get_by_test_id("dag-step")).to_have_count(4)
    page.wait_for_timeout(300)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"the pipeline page scrolls sideways by {overflow}px at phone width"
    scroller = page.get_by_test_id("pipeline-dag")
    assert scroller.evaluate("e => e.scrollWidth > e.clientWidth"), "the DAG should scroll"
    last = page.locator("[data-testid=dag-step][data-step=aggregate]").get_by_test_id(
        "dag-step-link"
    )
    last.focus()  # focusing a box off to the right scrolls it into view
    expect(last).to_be_in_viewport()
    shot(page, "pipeline-phone")
