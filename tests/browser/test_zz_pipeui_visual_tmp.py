"""TEMPORARY visual check with mocked pipeline routes (not committed)."""
import json
from pathlib import Path

from playwright.sync_api import Route

from tests.browser.browser import new_context
from tests.browser.conftest import ensure_ui_built, login_ui

T = "11111111-1111-1111-1111-11111111111{}"


def pipeline():
    def st(name, state, deps=(), when="on_success", matrix=None, points=None, inputs=()):
        return {"name": name, "state": state, "depends_on": list(deps), "when": when, "matrix": matrix,
                "points": points or [{"index": 0, "params": {}, "task_id": T.format(len(name) % 10), "task_state": state if state != "waiting" else None}],
                "inputs": [{"from_step": f, "path": p, "artifact_ids": []} for f, p in inputs], "outputs": []}
    steps = [
        st("prepare", "succeeded"),
        st("train", "running", ["prepare"], matrix={"lr": [0.1, 0.01]}, points=[
            {"index": 0, "params": {"lr": 0.1}, "task_id": T.format(1), "task_state": "running"},
            {"index": 1, "params": {"lr": 0.01}, "task_id": T.format(2), "task_state": "succeeded"}],
           inputs=[("prepare", "data.csv")]),
        st("aggregate", "waiting", ["train"], inputs=[("train", "model.pt")]),
        st("report-failure", "waiting", ["train"], when="on_failure"),
        st("lint", "failed"),
        st("publish", "skipped", ["aggregate", "lint", "prepare"]),
    ]
    return {"id": "p1", "name": "exp-1", "state": "running", "owner_id": None, "owner": "admin",
            "created_at": "2026-11-30T10:00:00Z", "finished_at": None,
            "step_counts": {"succeeded": 1, "running": 1, "waiting": 2, "failed": 1, "skipped": 1},
            "allowed_actions": ["cancel", "retry", "rerun"], "steps": steps, "spec": {}}


def test_visual(browser, live_server):
    ensure_ui_built()
    ctx = new_context(browser, live_server.url)
    page = ctx.new_page()

    def plugins(route: Route):
        resp = route.fetch()
        body = resp.json()
        body["items"].append({"name": "pipelines", "version": "0", "source": "x", "hooks": [], "ui": [
            {"id": "pipelines", "label": "Pipelines", "path": "/pipelines", "page": "pipelines.list", "plugin": "pipelines", "icon": "", "order": 30, "script": None}]})
        route.fulfill(response=resp, json=body)

    page.route("**/api/plugins", plugins)
    page.route("**/api/pipelines/p1", lambda r: r.fulfill(json=pipeline()))
    page.route("**/api/pipelines?*", lambda r: r.fulfill(json={"items": [pipeline()], "next_cursor": None}))
    login_ui(page)
    page.goto("/pipelines")
    page.get_by_test_id("pipelines-table").wait_for()
    out = Path("/tmp/pipeui-shots"); out.mkdir(exist_ok=True)
    page.screenshot(path=str(out / "list.png"), full_page=True)
    page.goto("/pipelines/p1")
    page.get_by_test_id("pipeline-dag").wait_for()
    page.screenshot(path=str(out / "page.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(out / "page390.png"), full_page=True)
    ctx.close()
