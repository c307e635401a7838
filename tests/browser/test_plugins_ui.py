"""The plugins' UI end to end (Chromium in New York time, real server, local agent on real Docker):
a project with dependent work items, a Gantt bar dragged and its dates saved as Beijing days, a
task run linked to a work item, CSV export stamped in Beijing time; a two-point sweep whose
containers append metrics to $UNIDESK_METRICS_FILE, compared in the run table and the chart."""

from __future__ import annotations

import itertools
import math
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.browser import shot
from tests.browser.conftest import UiServer

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.plugins]
BEIJING = timezone(timedelta(hours=8))


def bj_day(offset: int = 0) -> str:
    return (datetime.now(BEIJING) + timedelta(days=offset)).strftime("%Y-%m-%d")


def _item(ui: UiServer, item_id: str) -> dict[str, Any]:
    r = ui.api.get(f"/api/projects/items/{item_id}")
    r.raise_for_status()
    return r.json()


def _drag(page: Page, test_id: str, dx: float) -> None:
    box = page.get_by_test_id(test_id).bounding_box()
    assert box is not None, test_id
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 6):
        page.mouse.move(x + dx * i / 5, y)
    page.mouse.up()


def test_project_gantt_drag_saves_beijing_days_and_links_a_run(
    page: Page, ui_server: UiServer
) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Projects").click()
    page.get_by_placeholder("Name").fill("Rocket")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="Rocket")).to_be_visible()

    form = page.get_by_role("form", name="New work item")
    for title, start, due, deps, milestone in [
        ("Design", 1, 3, [], False),
        ("Build", 4, 8, ["Design"], False),
        ("Launch", None, 9, ["Build"], True),
    ]:
        form.get_by_label("Title").fill(title)
        if start is not None:
            form.get_by_label("Start (Beijing date)").fill(bj_day(start))
        form.get_by_label("Due (Beijing date)").fill(bj_day(due))
        if deps:
            form.get_by_label("Depends on").select_option(label=deps)
        if milestone:
            form.get_by_label("Milestone").check()
        form.get_by_role("button", name="Add item").click()
        expect(page.get_by_role("link", name=re.compile(title))).to_be_visible()

    project_id = page.url.rstrip("/").split("/")[-1].split("?")[0]
    detail = ui_server.api.get(f"/api/projects/{project_id}").json()
    items = {i["title"]: i for i in detail["items"]}
    assert items["Build"]["depends_on"] == [items["Design"]["id"]] and items["Launch"]["milestone"]

    # a cycle is refused with the server's explanation, nothing changes
    r = ui_server.api.post(
        f"/api/projects/items/{items['Design']['id']}/dependencies",
        json={"predecessor_id": items["Launch"]["id"]},
    )
    assert r.status_code == 400 and "cycle" in r.json()["detail"]

    page.get_by_role("tab", name="Gantt").click()
    svg = page.get_by_role("group", name="Gantt chart")
    expect(svg).to_be_visible()
    expect(page.get_by_test_id("gantt-dependency")).to_have_count(2)
    expect(page.get_by_test_id("gantt-today")).to_contain_text(
        f"today {bj_day()}"
    )  # Beijing's date, not New York's
    build = page.get_by_test_id(f"gantt-bar-{items['Build']['id']}")
    expect(build).to_have_attribute("data-start", bj_day(4))
    shot(page, "p1-gantt-before")

    # drag Build two days later (36 px per day at day zoom): saved through the API as Beijing days
    _drag(page, f"gantt-bar-{items['Build']['id']}", 72)
    expect(build).to_have_attribute("data-start", bj_day(6))
    deadline = time.monotonic() + 10
    while (saved := _item(ui_server, items["Build"]["id"])["item"])["start_date"] != bj_day(
        6
    ) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (saved["start_date"], saved["due_date"]) == (bj_day(6), bj_day(10))
    # the dependency arrow into Build is no longer late; resize Design's end by one day
    _drag(page, f"gantt-end-{items['Design']['id']}", 36)
    deadline = time.monotonic() + 10
    while (
        _item(ui_server, items["Design"]["id"])["item"]["due_date"] != bj_day(4)
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert (
        _item(ui_server, items["Design"]["id"])["item"]["start_date"],
        _item(ui_server, items["Design"]["id"])["item"]["due_date"],
    ) == (bj_day(1), bj_day(4))
    shot(page, "p2-gantt-after-drag")
    _gantt_from_the_keyboard(page, ui_server, items)
    for zoom in ("Week", "Month"):
        page.get_by_role("button", name=zoom).click()
        expect(svg).to_have_attribute("data-zoom", zoom.lower())
    expect(page.get_by_test_id("gantt-tick").first).to_be_visible()

    # CSV export: a Beijing-time stamp in the file name
    with page.expect_download() as dl:
        page.get_by_role("button", name="Export CSV").click()
    name = dl.value.suggested_filename
    m = re.fullmatch(r"Rocket-items-(\d{8}-\d{4})\.csv", name)
    assert m, name
    stamp = datetime.strptime(m.group(1), "%Y%m%d-%H%M").replace(tzinfo=BEIJING)
    assert abs((stamp - datetime.now(BEIJING)).total_seconds()) < 180, name

    # a task submitted with the work item shows on it with its live state; another is linked by hand
    body = ui_server.task_body("echo built", "build-run")
    r = ui_server.api.post(
        "/api/tasks",
        json={**body, "extensions": {"projects": {"work_item_id": items["Build"]["id"]}}},
    )
    assert r.status_code == 201, r.text
    run = r.json()
    other = ui_server.submit("echo other", "other-run")
    page.goto(f"/projects/items/{items['Build']['id']}")
    row = page.get_by_test_id(f"run-{run['id']}")
    expect(row).to_contain_text("build-run")
    expect(row.locator("[data-state=succeeded]")).to_be_visible(timeout=120_000)
    page.get_by_label("Task id").fill(other["id"])
    page.get_by_role("button", name="Link task").click()
    expect(page.get_by_test_id(f"run-{other['id']}")).to_contain_text("other-run")
    shot(page, "p3-work-item-runs")
    assert {x["task_id"] for x in _item(ui_server, items["Build"]["id"])["run_list"]} == {
        run["id"],
        other["id"],
    }


def _wait_dates(ui: UiServer, item_id: str, start: str, due: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        saved = _item(ui, item_id)["item"]
        if (saved["start_date"], saved["due_date"]) == (start, due):
            return
        time.sleep(0.2)
    raise AssertionError((saved["start_date"], saved["due_date"], start, due))


def _gantt_from_the_keyboard(page: Page, ui: UiServer, items: dict[str, Any]) -> None:
    """Bars take the focus (Tab goes from one to the next); arrows move a bar a day, Shift+arrows
    its due day, Alt+arrows its start day, each saved and announced with its Beijing dates; Enter
    opens the item. Then the item's date fields show and accept YYYY-MM-DD."""
    design = page.get_by_test_id(f"gantt-bar-{items['Design']['id']}")
    build = page.get_by_test_id(f"gantt-bar-{items['Build']['id']}")
    design.focus()
    expect(design).to_be_focused()
    expect(design).to_have_attribute("aria-label", f"Design: {bj_day(1)} to {bj_day(4)}")
    page.keyboard.press("Tab")
    expect(build).to_be_focused()
    expect(build).to_have_attribute("aria-label", f"Build: {bj_day(6)} to {bj_day(10)}")
    announce = page.get_by_test_id("gantt-announce")
    expect(announce).to_have_attribute("aria-live", "polite")
    page.keyboard.press("ArrowRight")  # move one day later
    expect(announce).to_have_text(f"Build: {bj_day(7)} to {bj_day(11)}.")
    _wait_dates(ui, items["Build"]["id"], bj_day(7), bj_day(11))
    expect(build).to_be_focused()  # the focus stays on the bar after the save
    page.keyboard.press("Shift+ArrowRight")  # due day one later
    expect(announce).to_have_text(f"Build: {bj_day(7)} to {bj_day(12)}.")
    page.keyboard.press("Alt+ArrowLeft")  # start day one earlier
    expect(announce).to_have_text(f"Build: {bj_day(6)} to {bj_day(12)}.")
    _wait_dates(ui, items["Build"]["id"], bj_day(6), bj_day(12))
    expect(build).to_have_attribute("data-start", bj_day(6))
    shot(page, "p2b-gantt-keyboard")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(f"/projects/items/{items['Build']['id']}"))

    # Date fields show the day as YYYY-MM-DD (never the browser's US format) and accept it typed.
    start = page.get_by_role("textbox", name="Start date")
    expect(start).to_have_value(bj_day(6))
    start.fill("2026-13-40")
    expect(page.get_by_text("Type a date as YYYY-MM-DD.")).to_be_visible()
    page.keyboard.press("Tab")
    time.sleep(0.5)
    assert _item(ui, items["Build"]["id"])["item"]["start_date"] == bj_day(6)  # nothing saved
    start.fill(bj_day(5))
    page.keyboard.press("Enter")
    _wait_dates(ui, items["Build"]["id"], bj_day(5), bj_day(12))
    expect(page.get_by_text("Type a date as YYYY-MM-DD.")).to_have_count(0)
    expect(page.get_by_role("button", name="Calendar").first).to_be_visible()
    page.go_back()
    page.get_by_role("tab", name="Gantt").click()


SWEEP_COMMAND = (
    "i=0; while [ $i -lt 20 ]; do "
    'echo "{\\"name\\": \\"loss\\", \\"step\\": $i, \\"value\\": $(( (20 - i) * PARAM_LR ))}" >> '
    '"$UNIDESK_METRICS_FILE"; '
    'echo "{\\"name\\": \\"acc\\", \\"step\\": $i, \\"value\\": $(( i * PARAM_LR ))}" >> '
    '"$UNIDESK_METRICS_FILE"; '
    "i=$((i+1)); done; echo 'acc=0.5 step=20' >> \"$UNIDESK_METRICS_FILE\"; echo reported"
)


def test_two_point_sweep_reports_metrics_compared_in_the_chart(
    page: Page, ui_server: UiServer
) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Experiments").click()
    page.get_by_placeholder("Name").fill("lr sweep")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="lr sweep")).to_be_visible()
    experiment_id = page.url.rstrip("/").split("/")[-1]

    form = page.get_by_role("form", name="Parameter sweep")
    form.get_by_label("Code repo URL").fill(ui_server.code.url)
    form.get_by_label("Code commit").fill(ui_server.code_sha)
    form.get_by_label("Env repo URL").fill(ui_server.env.url)
    form.get_by_label("Env commit").fill(ui_server.env_sha)
    form.get_by_label("Dockerfile path").fill("docker/Dockerfile")
    form.get_by_label("Memory (MB)").fill("128")
    form.get_by_label("Command (run by /bin/sh -c)").fill(SWEEP_COMMAND)
    form.get_by_label("Grid").fill("lr = 1, 2")
    form.get_by_role("button", name="Submit 2 tasks").click()
    expect(page.get_by_role("status").filter(has_text="Submitted 2 tasks")).to_be_visible()

    runs = ui_server.api.get(f"/api/research/experiments/{experiment_id}").json()["runs"]
    assert [r["params"] for r in runs] == [{"lr": 1}, {"lr": 2}]
    for r in runs:
        task = ui_server.wait_task(r["task_id"], {"succeeded", "failed", "cancelled"})
        assert task["state"] == "succeeded", task
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = ui_server.api.get(f"/api/research/experiments/{experiment_id}").json()["runs"]
        if all(
            r["metrics"].get("loss", {}).get("points") == 20
            and r["metrics"].get("acc", {}).get("points") == 20
            and r["skipped_lines"] == 1
            for r in runs
        ):
            break
        time.sleep(0.5)
    assert [(r["metrics"]["loss"]["last"], r["metrics"]["loss"]["max"]) for r in runs] == [
        (1.0, 20.0),
        (2.0, 40.0),
    ]

    page.reload()
    table = page.get_by_test_id("runs-table")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("metric-series")).to_have_count(2)
    for s in page.get_by_test_id("metric-series").all():
        assert s.get_attribute("data-points") == "20"
    # Y ticks are round steps (1, 2, 2.5 or 5 x 10^k), never values like 0.2627.
    ticks = [
        float(v)
        for v in page.get_by_test_id("metric-chart")
        .first.locator("[data-y-tick]")
        .evaluate_all("els => els.map(e => e.getAttribute('data-y-tick'))")
    ]
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1, ticks
    (step,) = steps
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 2.5, 5), ticks
    # sortable comparison: loss last, descending puts lr=2 first
    page.get_by_role("button", name="loss last").click()
    page.get_by_role("button", name=re.compile("loss last")).click()
    expect(table.locator("tbody tr").first).to_have_attribute(
        "data-testid", f"run-row-{runs[1]['task_id']}"
    )
    expect(table.locator("tbody tr").first).to_contain_text("2")
    expect(page.get_by_text("lr=1", exact=False).first).to_be_visible()
    shot(page, "p4-sweep-chart")
    _experiment_chart_controls(page, runs)


def _experiment_chart_controls(page: Page, runs: list[dict[str, Any]]) -> None:
    """Best direction per metric (default from the name, switchable, remembered), the line the
    agent skipped as malformed, round step ticks, smoothing, log scale and run selection."""
    table = page.get_by_test_id("runs-table")
    row = table.get_by_test_id(f"run-row-{runs[0]['task_id']}")  # lr=1
    # loss: lowest is best (its last value, 1); acc: highest is best (19), not the lowest (0)
    expect(page.get_by_test_id("goal-loss")).to_have_value("min")
    expect(page.get_by_test_id("goal-acc")).to_have_value("max")
    expect(row.get_by_test_id("best-loss")).to_have_text("1")
    expect(row.get_by_test_id("best-acc")).to_have_text("19")
    page.get_by_label("Best acc is").select_option("min")
    expect(row.get_by_test_id("best-acc")).to_have_text("0")
    page.reload()  # the choice is remembered in this browser
    expect(page.get_by_test_id("goal-acc")).to_have_value("min")
    expect(row.get_by_test_id("best-acc")).to_have_text("0")
    page.get_by_label("Best acc is").select_option("max")
    expect(row.get_by_test_id("best-acc")).to_have_text("19")

    # the line the agent could not read is counted on the experiment and named on the run
    expect(page.get_by_test_id("skipped-lines")).to_contain_text("skipped 2 malformed lines")
    skipped = row.get_by_test_id(f"skipped-{runs[0]['task_id']}")
    expect(skipped).to_contain_text("1 malformed line skipped")
    skipped.locator("summary").click()
    expect(skipped).to_contain_text("line 41: not JSON (Expecting value): acc=0.5 step=20")

    chart = page.get_by_test_id("metric-chart")
    page.get_by_label("Metric", exact=True).select_option("loss")
    expect(chart).to_have_attribute("aria-label", "loss by step")
    x_ticks = chart.locator("[data-x-tick]").evaluate_all(
        "els => els.map(e => Number(e.getAttribute('data-x-tick')))"
    )
    assert x_ticks and all(float(t).is_integer() for t in x_ticks), x_ticks
    assert len({b - a for a, b in itertools.pairwise(x_ticks)}) == 1, x_ticks

    slider = page.get_by_label("Smoothing")
    slider.focus()
    page.keyboard.press("End")
    expect(page.get_by_test_id("metric-smoothed")).to_have_count(2)
    expect(chart).to_have_attribute("aria-label", re.compile(r"smoothed 0\.99"))
    page.keyboard.press("Home")
    expect(page.get_by_test_id("metric-smoothed")).to_have_count(0)

    page.get_by_label("Log scale").check()
    expect(chart).to_have_attribute("data-log", "true")
    y_ticks = chart.locator("[data-y-tick]").evaluate_all(
        "els => els.map(e => Number(e.getAttribute('data-y-tick')))"
    )
    assert all(
        round(math.log10(v) - math.floor(math.log10(v)), 6)
        in (0, round(math.log10(2), 6), round(math.log10(5), 6))
        for v in y_ticks
    ), y_ticks

    page.get_by_test_id(f"show-{runs[1]['task_id']}").uncheck()
    expect(page.get_by_test_id("metric-series")).to_have_count(1)
    expect(page.get_by_test_id("metric-series")).to_have_attribute("data-task", runs[0]["task_id"])
    page.get_by_role("button", name="Hide all").click()
    expect(page.get_by_test_id("metric-chart-empty")).to_contain_text("Every run is hidden")
    page.get_by_role("button", name="Show all").click()
    expect(page.get_by_test_id("metric-series")).to_have_count(2)
    shot(page, "p5-experiment-controls")
    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.get_by_test_id("metric-chart")).to_be_visible()
    shot(page, "p5-experiment-controls-390", full_page=True)
