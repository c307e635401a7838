"""Every page of the UI photographed for a reviewer, at a 1440x900 laptop and a 390x844 phone, with
real data made through the API (tasks running, failed with logs and waiting with a reason, files,
secrets, a project with a Gantt, an experiment with metrics, a pipeline): full-page PNGs
``test-artifacts/screenshots/<page>-1440.png`` and ``<page>-390.png``. At neither size may a page
scroll sideways (wide tables and charts scroll inside their own box), and at 1440 px every table
shows all its columns."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.browser import new_context, shot
from tests.browser.conftest import UiServer, login_ui
from tests.browser.test_plugins_ui import SWEEP_COMMAND
from tests.browser.test_ui_files import api_upload

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.plugins]

SIZES = [(1440, 900), (390, 844)]
BEIJING = timezone(timedelta(hours=8))
FAILING = (
    "echo 'loading data.csv'; echo 'epoch 1: loss 0.93'; "
    "echo 'Traceback (most recent call last):' >&2; "
    "echo '  File \"train.py\", line 42, in <module>' >&2; "
    "echo 'ValueError: column \"label\" not found in data.csv' >&2; exit 3"
)


def _day(offset: int) -> str:
    return (datetime.now(BEIJING) + timedelta(days=offset)).strftime("%Y-%m-%d")


def _ok(r: Any) -> dict[str, Any]:
    assert r.status_code in (200, 201), r.text
    return r.json()


def _until(what: str, ok: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := ok()):
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.5)
    return got


def _make_data(ui: UiServer) -> dict[str, str]:
    """What a lab's server holds after a day: returns the ids the pages are opened with."""
    api = ui.api
    node = ui.local_node()
    ids: dict[str, str] = {"node": node["id"], "node_name": node["name"]}
    _ok(
        api.post(
            "/api/users", json={"username": "mia", "password": "member-pass-1", "role": "member"}
        )
    )
    for name in ("prep-data", "eval-baseline", "export-report"):
        ui.submit(f"echo {name} done", name)
    ids["failed"] = ui.submit(FAILING, "train-resnet-lr0.1")["id"]
    ids["running"] = ui.submit(
        'i=1; while [ $i -le 400 ]; do echo "step $i: loss 0.$((500 - i))"; i=$((i+1)); '
        "sleep 1; done",
        "train-resnet-lr0.01",
    )["id"]
    waiting = ui.task_body("echo never", "needs-a100")
    waiting["resources"] = {"cpus": 0.5, "memory_mb": 128, "labels": {"gpu": "a100"}}
    ids["pending"] = _ok(api.post("/api/tasks", json=waiting))["id"]

    for name, data in [
        ("datasets/cifar10/train.csv", b"label,x\n1,0.5\n" * 200),
        ("datasets/cifar10/test.csv", b"label,x\n0,0.1\n" * 50),
        ("notes.txt", b"lab notes\n"),
    ]:
        api_upload(api, name, data)
    _ok(api.put("/api/secrets/user/HF_TOKEN", json={"value": "hf_example_value"}))
    _ok(api.put("/api/secrets/global/WANDB_KEY", json={"value": "wandb_example_value"}))

    project = _ok(api.post("/api/projects", json={"name": "Vision paper", "description": "CVPR"}))
    ids["project"] = project["id"]
    previous: list[str] = []
    for title, start, due, milestone in [
        ("Collect data", 0, 3, False),
        ("Train baselines", 4, 9, False),
        ("Ablations", 8, 14, False),
        ("Submission", None, 15, True),
    ]:
        body: dict[str, Any] = {"title": title, "due_date": _day(due), "milestone": milestone}
        if start is not None:
            body["start_date"] = _day(start)
        if previous:
            body["depends_on"] = previous[-1:]
        item = _ok(api.post(f"/api/projects/{project['id']}/items", json=body))
        previous.append(item["id"])
    ids["item"] = previous[1]
    run = {**ui.task_body("echo baseline", "baseline-run")}
    run["extensions"] = {"projects": {"work_item_id": ids["item"]}}
    _ok(api.post("/api/tasks", json=run))

    experiment = _ok(api.post("/api/research/experiments", json={"name": "lr sweep"}))
    ids["experiment"] = experiment["id"]
    sweep = _ok(
        api.post(
            f"/api/research/experiments/{experiment['id']}/sweeps",
            json={
                "task": {**ui.task_body(SWEEP_COMMAND, "sweep"), "max_attempts": 1},
                "grid": {"lr": [1, 2]},
            },
        )
    )

    defaults = {k: v for k, v in ui.task_body("true", "x").items() if k not in ("name", "command")}
    pipeline = _ok(
        api.post(
            "/api/pipelines",
            json={
                "name": "nightly-train",
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
                            "command": "cat /inputs/prepare/0/data.csv",
                            "inputs": [{"from": "prepare/data.csv"}],
                        },
                    },
                    {"name": "aggregate", "depends_on": ["train"], "task": {"command": "true"}},
                ],
            },
        )
    )
    ids["pipeline"] = pipeline["id"]

    ui.wait_task(ids["failed"], {"failed"})
    ui.wait_task(ids["running"], {"running"})
    for task_id in sweep["task_ids"]:
        ui.wait_task(task_id, {"succeeded", "failed"})
    _until(
        "the pipeline finished",
        lambda: (
            api.get(f"/api/pipelines/{ids['pipeline']}").json()["state"] in ("succeeded", "failed")
        ),
        timeout=180,
    )
    _until(
        "the running task logged",
        lambda: api.get(f"/api/tasks/{ids['running']}/logs").json()["items"],
    )
    return ids


Ready = Callable[[Page], None]


def _see(test_id: str) -> Ready:
    return lambda page: expect(page.get_by_test_id(test_id).first).to_be_visible()


def _text(text: str) -> Ready:
    return lambda page: expect(page.get_by_text(text).first).to_be_visible()


def _pages(ids: dict[str, str]) -> list[tuple[str, str, Ready]]:
    """(file name, path, what shows once the page has its data)."""
    return [
        ("dashboard", "/", _text("train-resnet-lr0.1")),
        ("tasks", "/tasks", _text("train-resnet-lr0.01")),
        ("task-running", f"/tasks/{ids['running']}", _see("log-line")),
        ("task-failed", f"/tasks/{ids['failed']}", _see("log-line")),
        ("task-pending", f"/tasks/{ids['pending']}", _see("pending-reason")),
        ("submit", "/tasks/new", _text("Submit a task")),
        ("nodes", "/nodes", _text(ids["node_name"])),
        ("node", f"/nodes/{ids['node']}", _text(ids["node_name"])),
        ("files", "/files", _text("notes.txt")),
        ("secrets", "/secrets", _text("HF_TOKEN")),
        ("admin", "/admin", _text("mia")),
        ("projects", "/projects", _text("Vision paper")),
        (
            "project-gantt",
            f"/projects/{ids['project']}?view=gantt",
            lambda p: expect(p.locator("svg[aria-label='Gantt chart']")).to_be_visible(),
        ),
        ("work-item", f"/projects/items/{ids['item']}", _text("baseline-run")),
        ("experiments", "/experiments", _text("lr sweep")),
        ("experiment", f"/experiments/{ids['experiment']}", _see("metric-chart")),
        ("pipelines", "/pipelines", _text("nightly-train")),
        ("pipeline", f"/pipelines/{ids['pipeline']}", _see("dag-step")),
    ]


def _settle(page: Page) -> None:
    """No spinner left and web fonts/layout done, so the picture is of the loaded page."""
    expect(page.locator(".loading")).to_have_count(0, timeout=20_000)
    page.evaluate("document.fonts.ready.then(() => new Promise(r => requestAnimationFrame(r)))")


def _sideways(page: Page) -> str | None:
    """None when the page fits the screen's width; else by how much not, and the outermost
    elements that stick out (tag.class, their right edge)."""
    return page.evaluate(
        """() => {
          const extra = document.documentElement.scrollWidth - window.innerWidth;
          if (extra <= 0) return null;
          // Sticking out and not clipped by a scrolling box it is laid out in (an absolutely
          // positioned element escapes a box that is not its containing block).
          const clipped = e => {
            const abs = ['absolute', 'fixed'].includes(getComputedStyle(e).position);
            for (let a = e.parentElement; a; a = a.parentElement) {
              const st = getComputedStyle(a);
              if (abs && st.position === 'static') continue;
              if (st.overflowX !== 'visible') return true;
              if (abs) return false;
            }
            return false;
          };
          const out = [...document.querySelectorAll('body *')].filter(e => {
            const r = e.getBoundingClientRect();
            return r.width > 0 && r.right > window.innerWidth + 1 && !clipped(e);
          });
          const name = e => e.tagName.toLowerCase() + (e.className && typeof e.className
            === 'string' ? '.' + e.className.trim().split(/\\s+/).join('.') : '');
          return `${extra}px too wide: ` + out.slice(0, 5).map(e =>
            `${name(e)} (right edge ${Math.round(e.getBoundingClientRect().right)})`).join(', ');
        }"""
    )


def _tables_scrolled(page: Page) -> str | None:
    """On a laptop every table shows all its columns (no scrolling inside its box)."""
    return page.evaluate(
        """() => {
          const cut = [...document.querySelectorAll('.table-wrap')]
            .filter(w => w.scrollWidth > w.clientWidth + 1)
            .map(w => `a table ${w.scrollWidth - w.clientWidth}px wider than its box`);
          return cut.length ? cut.join(', ') : null;
        }"""
    )


def test_every_page_at_laptop_and_phone_width(browser: Browser, ui_server: UiServer) -> None:
    ids = _make_data(ui_server)
    overflow: list[str] = []
    for width, height in SIZES:
        ctx = new_context(browser, ui_server.url, width=width, height=height)
        try:
            page = ctx.new_page()
            page.goto("/login")
            page.locator("input[name=username]").wait_for()
            shot(page, f"login-{width}")
            login_ui(page)
            for name, path, ready in _pages(ids):
                page.goto(path)
                ready(page)
                _settle(page)
                shot(page, f"{name}-{width}")
                if extra := _sideways(page):
                    overflow.append(f"{name} ({path}) at {width}px: {extra}")
                if width >= 1440 and (cut := _tables_scrolled(page)):
                    overflow.append(f"{name} ({path}) at {width}px: {cut}")
        finally:
            ctx.close()
    assert not overflow, "\n".join(overflow)
