"""The browser UI end to end: real Chromium (New York time zone) against a real server, agent and
Docker."""

from __future__ import annotations

import itertools
import math
import re
import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.browser import ISO_RE, beijing, new_context, parse_beijing, shot, visible_text
from tests.browser.conftest import UiServer, login_ui
from unidesk.core.shutdown import SHUTDOWN_BOUND_S

pytestmark = [pytest.mark.browser, pytest.mark.docker]
BEIJING_TZ = timezone(timedelta(hours=8))


def _utc(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def assert_no_raw_iso(page: Page) -> None:
    text = visible_text(page)
    found = ISO_RE.findall(text)
    assert not found, f"raw ISO timestamps visible outside the raw-JSON view: {found[:5]}"


def test_browser_really_runs_in_new_york(page: Page) -> None:
    tz = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    offset = page.evaluate("new Date(Date.UTC(2026, 0, 15)).getTimezoneOffset()")
    assert (tz, offset) == ("America/New_York", 300)


def test_login_page_and_bad_password_show_the_server_detail(context) -> None:
    p = context.new_page()
    p.goto("/tasks")
    expect(p).to_have_url(re.compile(r"/login\?next=%2Ftasks"))
    shot(p, "01-login")
    p.fill("input[name=username]", "admin")
    p.fill("input[name=password]", "wrong-password")
    p.get_by_role("button", name="Sign in").click()
    alert = p.get_by_role("alert")
    # A sentence first; the status and the server's words one click away.
    expect(alert.get_by_test_id("error-sentence")).to_have_text("Wrong user name or password.")
    expect(alert.get_by_test_id("error-technical")).to_be_hidden()
    alert.get_by_text("Details").click()
    expect(alert.get_by_test_id("error-technical")).to_contain_text("401")


def test_local_node_is_online_with_a_beijing_time_heartbeat(
    page: Page, ui_server: UiServer
) -> None:
    node = ui_server.local_node()
    page.get_by_role("link", name="Nodes").click()
    row = page.locator(f"tr[data-node-name='{node['name']}']")
    expect(row.locator("[data-state=online]")).to_be_visible()
    shown = row.get_by_test_id("heartbeat").locator("time").first.inner_text()
    api_hb = _utc(ui_server.api.get(f"/api/nodes/{node['id']}").json()["last_heartbeat_at"])
    # Shown as Beijing wall-clock time: within a few heartbeats of the API's instant, never New
    # York's clock.
    assert abs((parse_beijing(shown) - api_hb).total_seconds()) < 60, (shown, api_hb)
    expect(page.get_by_text("Beijing time (UTC+8)").first).to_be_visible()
    assert_no_raw_iso(page)
    shot(page, "03-nodes")

    row.get_by_role("link", name=node["name"]).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(node["name"])
    expect(page.locator("figure.chart").first).to_be_visible()
    expect(page.get_by_text("CPU utilisation")).to_be_visible()
    # Charts label their axes with Beijing clock times (HH:MM), not New York's.
    labels = page.locator(".chart-xlabel").all_text_contents()
    assert labels and all(re.fullmatch(r"\d{2}:\d{2}|\d{2}-\d{2}", t) for t in labels), labels
    now_bj = beijing(datetime.now().astimezone().isoformat())[11:13]
    assert any(t.startswith((now_bj, f"{(int(now_bj) - 1) % 24:02d}")) for t in labels), (
        labels,
        now_bj,
    )
    # The "Since" field takes a Beijing time typed as YYYY-MM-DD HH:MM although the browser is in
    # New York (a native datetime-local input would show and want the US format).
    since_bj = (datetime.now(BEIJING_TZ) - timedelta(minutes=30)).replace(second=0, microsecond=0)
    since = page.get_by_role("textbox", name="Since")
    expect(since).to_have_attribute("placeholder", "YYYY-MM-DD HH:MM")
    with page.expect_request(lambda r: "/samples?" in r.url) as req:
        since.fill(since_bj.strftime("%Y-%m-%d %H:%M"))
    sent = parse_qs(urlsplit(req.value.url).query)["since"][0]
    assert _utc(sent) == since_bj, (sent, since_bj)
    page.get_by_role("button", name="Show raw json").click()
    raw = page.locator("[data-raw-json]").inner_text()
    assert '"last_heartbeat_at"' in raw and ISO_RE.search(raw)
    shot(page, "04-node-detail")


def test_submit_from_the_form_and_watch_it_succeed_with_live_logs(
    page: Page, ui_server: UiServer
) -> None:
    page.get_by_role("link", name="Submit task").click()
    form = page.get_by_role("form", name="Submit a task")
    # Client-side validation mirrors the API: a short commit and a '..' path are refused before
    # sending.
    page.fill("#f-code_commit_id", "abc..123")
    page.fill("#f-dockerfile_path", "../Dockerfile")
    form.get_by_role("button", name="Submit task").click()
    expect(page.locator("#e-code_commit_id")).to_contain_text("40 or 64 hex")
    expect(page.locator("#e-dockerfile_path")).to_contain_text("'..'")
    expect(page).to_have_url(re.compile(r"/tasks/new$"))

    page.fill("#f-name", "ui-count")
    page.fill("#f-code_repo_url", ui_server.code.url)
    page.fill("#f-code_commit_id", ui_server.code_sha)
    page.fill("#f-env_repo_url", ui_server.env.url)
    page.fill("#f-env_commit_id", ui_server.env_sha)
    page.fill("#f-dockerfile_path", "docker/Dockerfile")
    page.fill("#f-command", "sh /workspace/count.sh")
    page.fill("#f-env", "N=8")
    page.fill("#f-cpus", "0.5")
    page.fill("#f-memory_mb", "128")
    shot(page, "05-submit-form")
    form.get_by_role("button", name="Submit task").click()
    expect(page).to_have_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
    task_id = page.url.rsplit("/", 1)[1]
    task = ui_server.task(task_id)
    assert (
        task["name"] == "ui-count"
        and task["env"] == {"N": "8"}
        and task["code_commit_id"] == ui_server.code_sha
    )

    # The five pins, each with a copy button; times in Beijing.
    meta = page.get_by_test_id("task-meta")
    for value in (
        ui_server.code.url,
        ui_server.code_sha,
        ui_server.env.url,
        ui_server.env_sha,
        "docker/Dockerfile",
    ):
        expect(meta).to_contain_text(value)
    expect(meta.get_by_role("button", name=re.compile("^Copy"))).to_have_count(5)
    expect(page.locator(".kv-row", has_text="Created").locator("time")).to_have_text(
        beijing(task["created_at"])
    )

    # Log lines arrive while the task runs, without the log box moving.
    lines = page.get_by_test_id("log-line")
    expect(lines.filter(has_text="line-1")).to_be_visible(timeout=180_000)
    counted = lines.locator(".log-text").filter(has_text=re.compile(r"^line-\d+$"))
    first_count = counted.count()
    box_before = page.get_by_test_id("logs-view").bounding_box()
    expect(page.get_by_test_id("logs-status")).to_have_text("Following live")
    shot(page, "06-task-running-logs")
    try:
        expect(lines.filter(has_text="line-8")).to_be_visible(timeout=60_000)
    except AssertionError:
        attempts = [
            {k: a[k] for k in ("state", "reason", "message", "exit_code")}
            for a in ui_server.task(task_id)["attempts"]
        ]
        raise AssertionError(f"the task stopped before line-8; its attempts: {attempts}") from None
    assert first_count < 8, f"all lines arrived at once ({first_count}); nothing was followed live"
    assert counted.count() == 8
    expect(page.get_by_test_id("task-state")).to_contain_text("succeeded", timeout=60_000)
    assert page.get_by_test_id("logs-view").bounding_box() == box_before
    expect(page.get_by_test_id("logs-status")).to_have_text("Attempt finished")
    assert_no_raw_iso(page)
    shot(page, "07-task-succeeded")

    page.get_by_role("searchbox", name="Search logs").fill("line-3")
    expect(page.get_by_test_id("logs-count")).to_contain_text("1 of")
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download").click()
    download = dl.value
    assert re.fullmatch(r"ui-count-attempt1-\d{8}-\d{4}\.log", download.suggested_filename)
    stamp = download.suggested_filename.split("-attempt1-")[1][:13]
    assert (
        abs(
            (
                datetime.strptime(stamp, "%Y%m%d-%H%M").replace(
                    tzinfo=parse_beijing("2026-01-01 00:00:00").tzinfo
                )
                - datetime.now().astimezone()
            ).total_seconds()
        )
        < 180
    ), stamp
    content = Path(download.path()).read_text(encoding="utf-8")
    assert all(f"line-{i}" in content for i in range(1, 9))


FOCUSED = """() => {
  const e = document.activeElement;
  if (!e) return null;
  const label = e.id ? document.querySelector(`label[for="${e.id}"]`) : null;
  return {
    id: e.id, tag: e.tagName, type: e.type || "",
    name: e.getAttribute("aria-label") || (label ? label.textContent : "") || e.textContent || "",
  };
}"""


def _tab_to(page: Page, field_id: str, limit: int = 80) -> list[str]:
    """Presses Tab until the element with ``field_id`` has the focus; returns the stops passed."""
    stops = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        here = page.evaluate(FOCUSED)
        assert here is not None, stops
        stops.append(f"{here['tag']}#{here['id']}")
        if here["id"] == field_id:
            return stops
    raise AssertionError(f"Tab never reached #{field_id}; stops: {stops}")


def test_submit_form_from_the_keyboard_only(page: Page, ui_server: UiServer) -> None:
    """The submit form with Tab, typing and Enter only (no click anywhere): the first error takes
    the focus, fields are reached in reading order, Enter submits, and the task runs."""
    page.goto("/tasks/new")
    page.get_by_role("heading", name="Submit a task").wait_for()
    page.locator("#main").focus()  # where "Skip to content" lands: the page's own start
    _tab_to(page, "f-name")
    page.keyboard.type("keyboard-only")
    page.keyboard.press("Enter")  # nothing else filled: refused, focus on the first bad field
    focused = page.evaluate(FOCUSED)
    assert focused["id"] == "f-code_repo_url", focused
    expect(page.locator("#e-code_repo_url")).to_be_visible()
    page.keyboard.type(ui_server.code.url)
    order = ["f-code_commit_id", "f-env_repo_url", "f-env_commit_id", "f-dockerfile_path"]
    values = [ui_server.code_sha, ui_server.env.url, ui_server.env_sha, "docker/Dockerfile"]
    for field_id, value in zip(order, values, strict=True):
        _tab_to(page, field_id, limit=4)  # the next field, or a hint/button between at most
        page.keyboard.type(value)
    _tab_to(page, "f-command")
    page.keyboard.type("echo typed-by-keyboard")
    _tab_to(page, "f-memory_mb")
    page.keyboard.press("Control+A")
    page.keyboard.type("128")
    page.keyboard.press("Enter")  # implicit submission from a text field
    expect(page).to_have_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
    task_id = page.url.rsplit("/", 1)[1]
    task = ui_server.wait_task(task_id, {"succeeded", "failed", "cancelled"})
    assert task["state"] == "succeeded" and task["name"] == "keyboard-only", task
    assert "typed-by-keyboard" in task["command"][-1], task["command"]


def test_trace_timeline_and_raw_json(page: Page, ui_server: UiServer) -> None:
    task = ui_server.submit("echo traced", "ui-trace")
    ui_server.wait_task(task["id"], {"succeeded"})
    page.goto(f"/tasks/{task['id']}")
    page.get_by_role("tab", name="Trace").click()
    trace = page.get_by_test_id("trace")
    expect(trace.locator("[data-kind='task.succeeded']")).to_be_visible()
    kinds = trace.locator("li").evaluate_all("els => els.map(e => e.dataset.kind)")
    events = ui_server.api.get(f"/api/tasks/{task['id']}/trace").json()["items"]
    assert kinds == [e["kind"] for e in events]
    assert kinds[0] == "task.submitted" and kinds[-1] == "task.succeeded"
    first_time = trace.locator(".trace-time").first.inner_text()
    assert first_time == beijing(events[0]["ts"])[11:], (first_time, events[0]["ts"])
    assert_no_raw_iso(page)
    shot(page, "08-task-trace")

    page.get_by_role("tab", name="Raw JSON").click()
    page.get_by_role("button", name="Show raw json").click()
    raw = page.locator("[data-raw-json]")
    expect(raw).to_contain_text(task["created_at"])
    shot(page, "09-task-raw-json")


def test_cancel_a_long_task(page: Page, ui_server: UiServer) -> None:
    task = ui_server.submit("echo started; sleep 300", "ui-long")
    page.goto(f"/tasks/{task['id']}")
    expect(page.get_by_test_id("task-state")).to_contain_text("running", timeout=120_000)
    expect(page.get_by_test_id("log-line").filter(has_text="started")).to_be_visible()
    # Logs first: on a 1440x900 laptop a running task's log is on screen without scrolling.
    assert page.viewport_size == {"width": 1440, "height": 900}
    expect(page.get_by_test_id("log-line").filter(has_text="started")).to_be_in_viewport()
    page.get_by_role("button", name="Cancel task").click()
    page.get_by_role("button", name="Yes, cancel it").click()
    expect(page.get_by_test_id("task-state")).to_contain_text("cancelled", timeout=60_000)
    assert ui_server.task(task["id"])["state"] == "cancelled"
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    shot(page, "10-task-cancelled")


def test_tasks_list_filters_and_updates_live(page: Page, ui_server: UiServer) -> None:
    page.get_by_role("link", name="Tasks", exact=True).click()
    page.locator(
        "[data-testid=tasks-table], .empty"
    ).first.wait_for()  # loaded (a list, or none yet)
    page.wait_for_timeout(500)
    task = ui_server.submit("echo from-api", "ui-live-row")
    # Appears without a reload, carried by the event stream.
    row = page.locator(f"tr[data-task-id='{task['id']}']")
    expect(row).to_be_visible(timeout=15_000)
    expect(row.locator("[data-state=succeeded]")).to_be_visible(timeout=120_000)
    with page.expect_response(lambda r: "/api/tasks?" in r.url and "state=succeeded" in r.url):
        page.get_by_role("button", name="succeeded", exact=True).click()
    expect(page).to_have_url(re.compile(r"state=succeeded"))
    expect(row.locator("[data-state=succeeded]")).to_be_visible()
    states = page.locator("tbody td:nth-child(2) [data-state]").evaluate_all(
        "els => els.map(e => e.dataset.state)"
    )
    assert states and set(states) == {"succeeded"}, states
    assert_no_raw_iso(page)
    shot(page, "11-tasks")
    page.get_by_role("link", name="Dashboard").click()
    succeeded = ui_server.api.get("/api/stats").json()["tasks"]["succeeded"]
    assert succeeded >= 1
    expect(page.get_by_test_id("stat-succeeded").locator(".stat-value")).to_have_text(
        str(succeeded)
    )
    expect(page.get_by_text("Tasks finished per hour")).to_be_visible()
    assert_no_raw_iso(page)
    shot(page, "02-dashboard")


def test_admin_issues_a_node_token_shown_once_with_the_agent_command(
    page: Page, ui_server: UiServer
) -> None:
    page.get_by_role("link", name="Admin").click()
    page.get_by_label("Node token name").fill("gpu-box-ui")
    page.get_by_role("button", name="Issue node token").click()
    secret = page.get_by_test_id("secret").last.inner_text()
    assert secret.startswith("udn_")
    command = page.get_by_test_id("agent-command").inner_text()
    # The secret goes to a 0600 file, never onto the agent's command line (visible in ps).
    token_file = "~/.unidesk-node-token"
    assert command == (
        f"(umask 077 && printf '%s\\n' '{secret}' > {token_file}) && "
        f"unidesk-agent --server {ui_server.url} --token-file {token_file}"
    )
    assert "--token " not in command
    assert_no_raw_iso(page)
    shot(page, "13-admin-node-token")
    page.reload()
    expect(page.get_by_role("cell", name="gpu-box-ui")).to_be_visible()
    assert secret not in page.content()


def test_phone_width_has_no_sideways_scroll(page_factory, ui_server: UiServer) -> None:
    task = ui_server.submit("echo phone", "ui-phone")
    ui_server.wait_task(task["id"], {"succeeded"})
    page = page_factory(ui_server.url, width=390, height=844)
    for path, name in (
        (f"/tasks/{task['id']}", "14-phone-task"),
        ("/nodes", "15-phone-nodes"),
        ("/", "16-phone-dashboard"),
        ("/tasks", "25-phone-tasks"),
    ):
        page.goto(path)
        page.get_by_role("heading", level=1).wait_for()
        page.wait_for_timeout(300)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{path} scrolls sideways by {overflow}px at phone width"
        shot(page, name)
    # Below 640 px each task is a card: its state and duration are on screen, labelled, and the
    # Beijing-time note stays.
    row = page.locator(f"tr[data-task-id='{task['id']}']")
    expect(row.locator("[data-state=succeeded]")).to_be_in_viewport()
    expect(row.get_by_test_id("task-timing")).to_be_in_viewport()
    assert (
        row.get_by_test_id("task-timing").evaluate("e => getComputedStyle(e, '::before').content")
        == '"Duration"'
    )
    expect(page.locator(".tz-note")).to_be_visible()
    # Nodes too: each node a labelled card, its heartbeat on screen without scrolling the table.
    page.goto("/nodes")
    beat = page.locator("tr[data-node-name]").first.get_by_test_id("heartbeat")
    expect(beat).to_be_in_viewport()
    assert beat.evaluate("e => getComputedStyle(e, '::before').content") == '"Last heartbeat"'
    # The top bar's second row holds Live, the time zone, the user and "Sign out" on one line,
    # none of them wrapped (Sign out had a row of its own).
    boxes = [
        page.get_by_test_id(t).first.bounding_box()
        for t in ("live-indicator", "current-user", "tz-note")
    ] + [page.get_by_role("button", name="Sign out").bounding_box()]
    assert all(b is not None for b in boxes)
    middles = [b["y"] + b["height"] / 2 for b in boxes if b]
    assert max(middles) - min(middles) < 4, boxes
    assert all(b["height"] < 30 for b in boxes if b), boxes
    page.get_by_role("button", name="Menu").click()
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Tasks", exact=True)
    ).to_be_visible()


def test_member_with_a_long_name_on_a_phone_and_a_task_that_does_not_exist(
    browser: Browser, ui_server: UiServer
) -> None:
    """A long user name gives way in the phone's top bar (ellipsis; the page never scrolls
    sideways, it did by 7 px for "newbie · member"); a task that does not exist says so as a
    sentence with no Retry (asking again cannot help), not "Not found: Not Found."."""
    name, password = "member-with-a-rather-long-name", "long-name-pw-1"
    r = ui_server.api.post(
        "/api/users", json={"username": name, "password": password, "role": "member"}
    )
    assert r.status_code in (201, 409), r.text
    ctx = new_context(browser, ui_server.url, width=390, height=844)
    try:
        page = ctx.new_page()
        login_ui(page, name, password)
        page.goto("/tasks")
        page.get_by_role("heading", name="Tasks", level=1).wait_for()
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"the page scrolls sideways by {overflow}px"
        expect(page.get_by_role("button", name="Sign out")).to_be_in_viewport(ratio=1)
        chip = page.get_by_test_id("current-user")
        assert chip.evaluate("e => e.scrollWidth > e.clientWidth")  # cut with an ellipsis
        expect(chip).to_have_attribute("title", f"{name} · member")

        for path in ("/tasks/00000000-0000-4000-8000-000000000000", "/tasks/not-a-task"):
            page.goto(path)
            alert = page.get_by_role("alert")
            expect(alert.get_by_test_id("error-sentence")).to_have_text(
                re.compile(r"^This (task )?does not exist: it may have been deleted")
            )
            expect(alert.get_by_role("button", name="Retry")).to_have_count(0)
    finally:
        ctx.close()


@pytest.mark.parametrize(
    ("path", "api_path", "ready"),
    [
        ("/", "/api/stats", "Tasks by state"),
        ("/nodes", "/api/nodes", "Nodes"),
        ("/files", "/api/files", "Files"),
        ("/nodes/{node}", "/api/nodes/{node}", None),
        ("/pipelines", "/api/pipelines", "Pipelines"),
    ],
)
def test_live_pages_fetch_their_data_once_per_load(
    page: Page, ui_server: UiServer, path: str, api_path: str, ready: str | None
) -> None:
    """A fresh load fetches the page's data once: after the live stream opens, not once before
    it and again when it opens (they did twice; the task list and task page already once)."""
    node = ui_server.local_node()
    path, api_path = path.format(node=node["id"]), api_path.format(node=node["id"])
    calls: list[str] = []
    page.on(
        "request",
        lambda req: (
            calls.append(req.url)
            if req.method == "GET" and urlsplit(req.url).path.rstrip("/") == api_path
            else None
        ),
    )
    page.goto(path)
    expect(page.get_by_test_id("live-indicator").first).to_have_attribute(
        "aria-label", "Live updates: Live"
    )
    if ready:
        expect(page.get_by_role("heading", name=ready, exact=True).first).to_be_visible()
    else:
        expect(page.locator("h1", has_text=node["name"])).to_be_visible()
    expect(page.locator(".loading")).to_have_count(0)
    page.wait_for_timeout(500)  # a second fetch would start as the stream opens, before this
    assert len(calls) == 1, calls


def test_phone_menu_by_keyboard_escape_closes_and_focus_follows_the_page(
    page_factory, ui_server: UiServer
) -> None:
    """On a phone the menu opens and closes from the keyboard (Escape gives focus back to its
    button), and a page opened from it gets the focus (it fell to the document body when the
    menu closed under the focused link)."""
    page = page_factory(ui_server.url, width=390, height=844)
    menu = page.get_by_role("button", name="Menu")
    nav = page.get_by_role("navigation", name="Main")
    menu.focus()
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(nav.get_by_role("link", name="Nodes")).to_be_hidden()
    assert page.evaluate("document.activeElement.textContent") == "Menu"
    page.keyboard.press("Enter")
    link = nav.get_by_role("link", name="Nodes")
    link.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Nodes", level=1)).to_be_visible()
    expect(link).to_be_hidden()
    assert page.evaluate("document.activeElement.id") == "main"


def test_keyboard_skip_link_reaches_main(page: Page) -> None:
    page.goto("/nodes")
    page.get_by_role("heading", name="Nodes").wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


BANNER_RECORDER = """() => {
  window.__bannerTexts = [];
  new MutationObserver(() => {
    const b = document.querySelector('[data-testid="degraded-banner"]');
    if (b) window.__bannerTexts.push(b.textContent);
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
}"""
"""Records every text the degraded banner shows (a reason may be replaced within a second)."""


def test_live_indicator_turns_offline_while_the_server_hangs(live_server, page_factory) -> None:
    """A hung server (SIGSTOP) keeps the page's event stream open: its keepalive comments
    stopping turns the indicator to "Offline" (red, not green) within seconds, before /health's
    own 8 s bound runs out, announced by its status region, on a phone-width screen too; it
    comes back to "Live" when the server does."""
    page = page_factory(live_server.url, width=390, height=844)
    live = page.get_by_test_id("live-indicator").first
    expect(live).to_have_text("Live")
    expect(live).to_have_attribute("aria-live", "polite")
    green = live.evaluate("e => getComputedStyle(e).color")
    page.evaluate(BANNER_RECORDER)
    stopped = time.monotonic()
    live_server.proc.send_signal(signal.SIGSTOP)
    try:
        expect(live).to_have_text("Offline", timeout=30_000)
        print(f"Offline {time.monotonic() - stopped:.1f} s after SIGSTOP")
        # The stream said so first (the keepalives stopped), not the /health poll.
        said = [t for t in page.evaluate("window.__bannerTexts") if "does not answer" in t]
        assert "no keepalive" in said[0], said
        expect(page.get_by_role("status", name="Live updates: Offline").first).to_be_attached()
        assert live.evaluate("e => getComputedStyle(e).color") != green
        expect(page.get_by_test_id("degraded-banner")).to_contain_text("the server does not answer")
        shot(page, "24-live-offline-390")
    finally:
        live_server.proc.send_signal(signal.SIGCONT)
    expect(live).to_have_text("Live", timeout=30_000)
    expect(page.get_by_test_id("degraded-banner")).to_have_count(0, timeout=15_000)


def test_degraded_banner_when_the_server_goes_away(live_server, page_factory) -> None:
    page = page_factory(live_server.url)
    expect(page.get_by_test_id("live-indicator").first).to_have_text("Live")
    expect(page.get_by_test_id("degraded-banner")).to_have_count(0)
    page.evaluate(BANNER_RECORDER)
    # SIGTERM with the page's event stream open: the server ends the stream with a "shutdown"
    # message (the page says so at once) and exits within its bound
    live_server.proc.send_signal(signal.SIGTERM)
    banner = page.get_by_test_id("degraded-banner")
    expect(banner).to_be_visible(timeout=5_000)
    expect(banner).to_contain_text("Live updates are disconnected")
    live_server.proc.wait(SHUTDOWN_BOUND_S)
    seen = page.evaluate("window.__bannerTexts")
    assert any("the server is shutting down" in t for t in seen), seen
    # The stream is down ("Stale"), and once /health cannot be reached either, "Offline".
    expect(page.get_by_test_id("live-indicator").first).to_have_text(re.compile("Stale|Offline"))
    deadline = time.monotonic() + 20
    while "cannot be reached" not in banner.inner_text() and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    expect(banner).to_contain_text("the server cannot be reached")
    expect(page.get_by_test_id("live-indicator").first).to_have_text("Offline")
    # Announced to screen readers, not only coloured.
    expect(page.get_by_role("status", name="Live updates: Offline").first).to_be_attached()
    expect(page.locator("main[data-stale]")).to_have_count(1)
    shot(page, "17-degraded-banner")

    # Back up on the same port: the feed reconnects on its own, the banner goes, and live updates
    # flow again.
    live_server.start()
    deadline = time.monotonic() + 60
    while banner.count() and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    assert banner.count() == 0, banner.inner_text()
    expect(page.get_by_test_id("live-indicator")).to_have_text("Live")
    expect(page.locator("main[data-stale]")).to_have_count(0)
    page.get_by_role("link", name="Tasks", exact=True).click()
    expect(page.get_by_text("No tasks yet.")).to_be_visible()
    with live_server.api() as api:
        r = api.post(
            "/api/tasks",
            json={
                "name": "after-reconnect",
                "code_repo_url": "https://example.com/c.git",
                "code_commit_id": "a" * 40,
                "env_repo_url": "https://example.com/e.git",
                "env_commit_id": "b" * 40,
                "dockerfile_path": "Dockerfile",
                "command": "true",
            },
        )
        assert r.status_code == 201, r.text
    expect(page.get_by_role("link", name="after-reconnect")).to_be_visible(timeout=15_000)


def _member_page(browser: Browser, ui_server: UiServer, name: str) -> tuple[BrowserContext, Page]:
    r = ui_server.api.post(
        "/api/users", json={"username": name, "password": "member-password-1", "role": "member"}
    )
    assert r.status_code in (201, 409), r.text
    ctx = new_context(browser, ui_server.url)
    member = ctx.new_page()
    login_ui(member, name, "member-password-1")
    return ctx, member


def test_buttons_follow_the_access_policy(
    browser: Browser, page: Page, ui_server: UiServer
) -> None:
    task = ui_server.submit("echo started; sleep 300", "ui-roles")
    ui_server.wait_task(task["id"], {"running"})
    ctx, member = _member_page(browser, ui_server, "ui-roles-member")
    try:
        # Someone else's task: the member reads it all but is offered no Cancel.
        member.goto(f"/tasks/{task['id']}")
        expect(member.get_by_test_id("task-state")).to_contain_text("running")
        expect(member.get_by_role("button", name="Cancel task")).to_have_count(0)
        node = ui_server.local_node()
        member.goto(f"/nodes/{node['id']}")
        expect(member.get_by_role("heading", level=1)).to_contain_text(node["name"])
        for name in ("Drain", "Undrain", "Delete"):
            expect(member.get_by_role("button", name=name, exact=True)).to_have_count(0)
        member.goto("/admin")
        expect(member.get_by_role("heading", name="API tokens", level=1)).to_be_visible()
        expect(member.get_by_role("heading", name="Node tokens")).to_have_count(0)
    finally:
        ctx.close()
    # The admin gets the buttons the member did not.
    page.goto(f"/nodes/{ui_server.local_node()['id']}")
    expect(page.get_by_role("button", name="Drain", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Delete", exact=True)).to_be_visible()
    page.goto(f"/tasks/{task['id']}")
    page.get_by_role("button", name="Cancel task").click()
    page.get_by_role("button", name="Yes, cancel it").click()
    expect(page.get_by_test_id("task-state")).to_contain_text("cancel", timeout=60_000)


def test_revoking_the_servers_own_node_token_warns_first(page: Page, ui_server: UiServer) -> None:
    local = [t for t in ui_server.api.get("/api/node-tokens").json()["items"] if t["server_local"]]
    assert len(local) == 1 and local[0]["name"].startswith("local:"), local
    page.get_by_role("link", name="Admin").click()
    row = page.get_by_role("row").filter(has_text=local[0]["name"])
    row.get_by_role("button", name="Revoke").click()
    expect(row.get_by_test_id("confirm-warning")).to_contain_text(
        "server's own local node: revoking its token takes this machine offline"
    )
    shot(page, "22-admin-revoke-local-node-token")
    row.get_by_role("button", name="Keep").click()
    tokens = ui_server.api.get("/api/node-tokens").json()["items"]
    assert [t["revoked_at"] for t in tokens if t["server_local"]] == [None]
    # Any other token is revoked after a plain confirmation, without the warning.
    r = ui_server.api.post("/api/node-tokens", json={"name": "ui-plain"})
    assert r.status_code == 201, r.text
    page.reload()
    other = page.get_by_role("row").filter(has_text="ui-plain")
    other.get_by_role("button", name="Revoke").click()
    expect(other.get_by_test_id("confirm-warning")).to_have_count(0)
    other.get_by_role("button", name="Yes, revoke").click()
    expect(other.locator("[data-state=revoked]")).to_be_visible()


def test_weak_password_reads_as_a_sentence(page: Page) -> None:
    page.get_by_role("link", name="Admin").click()
    form = page.get_by_role("form", name="Add a user")
    form.get_by_label("Username").fill("ui-weak")
    form.get_by_label("Password").fill("short")
    form.get_by_role("button", name="Add user").click()
    alert = form.get_by_role("alert")
    expect(alert.get_by_test_id("error-sentence")).to_have_text(
        "Choose a password of at least 8 characters."
    )
    expect(alert.get_by_test_id("error-sentence")).not_to_contain_text("400")
    alert.get_by_text("Details").click()
    expect(alert.get_by_test_id("error-technical")).to_contain_text("length >= 8")


def test_duration_counts_from_the_start_and_waiting_is_labelled(
    page: Page, ui_server: UiServer
) -> None:
    running = ui_server.submit("echo started; sleep 300", "ui-timing-run")
    body = ui_server.task_body("echo never", "ui-timing-wait")
    body["resources"] = {"cpus": 0.5, "memory_mb": 128, "labels": {"ui-never": "1"}}  # it waits
    r = ui_server.api.post("/api/tasks", json=body)
    assert r.status_code == 201, r.text
    waiting = r.json()
    ui_server.wait_task(running["id"], {"running"})
    detail = ui_server.task(running["id"])
    started = detail["attempts"][-1]["started_at"]
    assert started and detail["started_at"] == started
    listed = {t["id"]: t for t in ui_server.api.get("/api/tasks").json()["items"]}
    assert listed[running["id"]]["started_at"] == started
    node_name = detail["attempts"][-1]["node_name"]
    assert listed[running["id"]]["node_name"] == node_name and node_name
    assert listed[waiting["id"]]["started_at"] is None
    try:
        page.goto(f"/tasks/{running['id']}")
        summary = page.locator(".kv-row")
        expect(summary.filter(has_text="Started")).to_contain_text(beijing(started))
        expect(summary.filter(has_text="Duration")).to_be_visible()
        page.goto(f"/tasks/{waiting['id']}")
        expect(page.get_by_test_id("pending-reason")).to_be_visible()
        expect(summary.filter(has_text="Duration")).to_have_count(0)
        expect(page.get_by_test_id("task-timing")).to_have_text(re.compile(r"^waiting \d"))
        page.goto("/tasks")
        wrow = page.locator(f"tr[data-task-id='{waiting['id']}']")
        expect(wrow.get_by_test_id("task-timing")).to_have_text(re.compile(r"^waiting \d"))
        rrow = page.locator(f"tr[data-task-id='{running['id']}']")
        expect(rrow.get_by_test_id("task-timing")).not_to_contain_text("waiting")
        expect(rrow.get_by_test_id("task-node")).to_have_text(node_name)
        expect(wrow.get_by_test_id("task-node")).to_have_text("—")
        # "Running now" lists what holds a node right now, and not what waits.
        page.get_by_role("button", name="Running now").click()
        expect(page).to_have_url(re.compile(r"state=running"))
        expect(rrow).to_be_visible()
        expect(wrow).to_have_count(0)
        expect(page.get_by_role("button", name="Running now")).to_have_attribute(
            "aria-pressed", "true"
        )
        shot(page, "23-tasks-running-now")
    finally:
        for t in (running, waiting):
            ui_server.api.post(f"/api/tasks/{t['id']}/cancel")


def test_dashboard_axis_labels_and_no_backup_warning(page: Page) -> None:
    page.get_by_role("link", name="Dashboard").click()
    card = page.get_by_test_id("backup-card")
    # This server never took a backup: said plainly, in the warning colour, never green.
    expect(card).to_have_attribute("data-backup", "no backup yet")
    expect(card).to_have_class(re.compile(r"tone-warn"))
    expect(card.locator("[data-state=warning]")).to_have_text("no backup yet")
    page.locator("[data-y-tick]").first.wait_for()
    charts = page.locator("svg.chart-svg")
    assert charts.count() >= 1
    for i in range(charts.count()):
        ticks = charts.nth(i).locator("[data-y-tick]")
        pairs = ticks.evaluate_all(
            "els => els.map(e => [e.getAttribute('data-y-tick'), e.textContent])"
        )  # SVG text has no innerText
        values = [float(v) for v, _ in pairs]
        labels = [float(t) for _, t in pairs]
        # Each label names its own gridline (2.5 stays 2.5), and the ticks are evenly spaced.
        assert labels == values, (labels, values)
        steps = {round(b - a, 6) for a, b in itertools.pairwise(values)}
        assert len(steps) == 1 and values[0] == 0, values
        (step,) = steps  # a round step: 1, 2, 2.5 or 5 x 10^k (never 1.25 or 0.625)
        assert round(step / 10 ** math.floor(math.log10(step)), 6) in (1, 2, 2.5, 5), values
        # Every time label is drawn whole inside its chart (the last one was cut to "06:0").
        cut = charts.nth(i).evaluate(
            """svg => { const box = svg.getBoundingClientRect();
              return [...svg.querySelectorAll('.chart-xlabel')].map(t => [t.textContent,
                t.getBoundingClientRect()]).filter(([, r]) => r.left < box.left - 0.5
                || r.right > box.right + 0.5).map(([text]) => text); }"""
        )
        assert cut == [], cut


def test_task_list_counts_sorts_and_exports_csv(page: Page, ui_server: UiServer) -> None:
    for name in ("ui-sort-b", "ui-sort-a", "ui-sort-c"):
        body = ui_server.task_body("echo never", name)
        body["resources"] = {"cpus": 0.5, "memory_mb": 128, "labels": {"ui-never": "1"}}
        r = ui_server.api.post("/api/tasks", json=body)
        assert r.status_code == 201, r.text
    try:
        total = ui_server.api.get("/api/tasks", params={"q": "ui-sort-", "total": "true"}).json()
        assert total["total"] == 3
        page.goto("/tasks?q=ui-sort-")
        expect(page.get_by_test_id("tasks-count")).to_have_text(
            re.compile(r"^3 tasks match these filters · page 1 of 1")
        )
        names = page.locator("tbody tr td:first-child a")
        expect(names).to_have_text(["ui-sort-c", "ui-sort-a", "ui-sort-b"])  # newest first
        page.get_by_role("button", name="Task", exact=True).click()
        expect(names).to_have_text(["ui-sort-a", "ui-sort-b", "ui-sort-c"])
        expect(page.get_by_role("columnheader", name=re.compile("^Task"))).to_have_attribute(
            "aria-sort", "ascending"
        )
        page.get_by_role("button", name=re.compile(r"^Task")).click()
        expect(names).to_have_text(["ui-sort-c", "ui-sort-b", "ui-sort-a"])
        with page.expect_download() as dl:
            page.get_by_role("button", name="Export CSV").click()
        assert re.fullmatch(r"tasks-\d{8}-\d{4}\.csv", dl.value.suggested_filename)
        lines = Path(dl.value.path()).read_text(encoding="utf-8").splitlines()
        header = lines[0].split(",")
        assert header[:3] == ["id", "name", "state"] and "created_beijing" in header
        rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
        assert sorted(r["name"] for r in rows) == ["ui-sort-a", "ui-sort-b", "ui-sort-c"]
        by_name = {t["name"]: t for t in total["items"]}
        for row in rows:
            assert row["created_beijing"] == beijing(by_name[row["name"]]["created_at"])
    finally:
        for t in ui_server.api.get("/api/tasks", params={"q": "ui-sort-"}).json()["items"]:
            ui_server.api.post(f"/api/tasks/{t['id']}/cancel")


def test_failure_banner_shows_the_last_stderr_lines(page: Page, ui_server: UiServer) -> None:
    task = ui_server.submit(
        "echo to-stdout; echo boom-1 >&2; echo boom-2 >&2; exit 3", "ui-fails-stderr"
    )
    ui_server.wait_task(task["id"], {"failed"})
    tail = ui_server.api.get(
        f"/api/tasks/{task['id']}/logs", params={"tail": 5, "stream": "stderr"}
    ).json()
    text = "".join(i["data"] for i in tail["items"])
    assert "boom-2" in text and "to-stdout" not in text, tail
    page.goto(f"/tasks/{task['id']}")
    stderr = page.get_by_test_id("failure-stderr")
    expect(stderr).to_contain_text("boom-1")
    expect(stderr).to_contain_text("boom-2")
    expect(stderr).not_to_contain_text("to-stdout")
    expect(stderr).to_be_in_viewport()
    shot(page, "24-task-failed-stderr")


def test_edit_and_resubmit_starts_from_the_tasks_spec(page: Page, ui_server: UiServer) -> None:
    body = ui_server.task_body("echo resubmitted", "ui-resubmit")
    body["env"] = {"SEED": "7"}
    r = ui_server.api.post("/api/tasks", json=body)
    assert r.status_code == 201, r.text
    old = r.json()
    page.goto(f"/tasks/{old['id']}")
    page.get_by_role("link", name="Edit & resubmit").click()
    form = page.get_by_role("form", name="Submit a task")
    expect(form.locator("#f-code_commit_id")).to_have_value(ui_server.code_sha)
    expect(form.locator("#f-env_commit_id")).to_have_value(ui_server.env_sha)
    expect(form.locator("#f-command")).to_have_value("echo resubmitted")
    form.locator("#f-name").fill("ui-resubmit-2")
    with page.expect_response(
        lambda r: r.url.endswith("/api/tasks") and r.request.method == "POST"
    ) as resp:
        form.get_by_role("button", name="Submit task").click()
    assert resp.value.status == 201, resp.value.text()
    new = resp.value.json()
    expect(page).to_have_url(re.compile(f"/tasks/{new['id']}"))
    assert new["id"] != old["id"] and new["name"] == "ui-resubmit-2"
    for key in ("code_commit_id", "env_commit_id", "command", "env", "dockerfile_path"):
        assert new[key] == old[key], key
    ui_server.api.post(f"/api/tasks/{new['id']}/cancel")
    ui_server.api.post(f"/api/tasks/{old['id']}/cancel")
