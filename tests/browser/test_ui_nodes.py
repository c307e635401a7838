"""Node health and host.ssh maintenance in the browser: a second real agent whose Docker socket
does not exist reports itself unhealthy (shown with its reason), and offers host.ssh against a
real sshd on loopback; only admins see the maintenance panel, whose probe runs as a task linked
from the panel."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.browser import new_context, shot
from tests.browser.conftest import UiServer, login_ui
from tests.integration.conftest import AgentProcess, node_token, wait_for
from tests.integration.test_hostssh import Sshd

pytestmark = [pytest.mark.browser, pytest.mark.docker]


@pytest.fixture
def sick_node(ui_server: UiServer, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """An agent (Docker runner) pointed at a Docker socket that does not exist, with host.ssh to a
    real sshd."""
    (tmp_path / "sshd").mkdir()
    sshd = Sshd(tmp_path / "sshd")
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[docker]\ndocker_url = "unix:///nonexistent/unidesk-ui-test/docker.sock"\n')
    agent = AgentProcess(
        ui_server.url, node_token(ui_server.api, "ui-sick")["secret"], "ui-sick", tmp_path / "agent"
    )
    agent.env.update(sshd.env())
    agent.env.update(UNIDESK_AGENT_RUNNER="docker", UNIDESK_AGENT_CONFIG=str(cfg))
    agent.start()
    try:

        def unhealthy() -> dict[str, Any] | None:
            for n in ui_server.api.get("/api/nodes").json()["items"]:
                if n["name"] == "ui-sick" and n["state"] == "online" and n["unhealthy_reason"]:
                    return n
            return None

        yield wait_for(
            unhealthy, timeout=60, what=f"ui-sick unhealthy; agent log:\n{agent.log()[-2000:]}"
        )
    finally:
        agent.stop()
        sshd.stop()


def test_maintenance_panel_only_for_admins(
    browser: Browser, page: Page, ui_server: UiServer
) -> None:
    node = ui_server.local_node()

    def caches_reported() -> (
        bool
    ):  # cache sizes come with a heartbeat, which the page does not await
        got = ui_server.api.get(f"/api/nodes/{node['id']}").json()
        return bool((got.get("usage") or {}).get("caches"))

    wait_for(caches_reported, timeout=60, what="the local node's cache sizes in a heartbeat")
    page.goto(f"/nodes/{node['id']}")
    panel = page.get_by_test_id("maintenance-panel")
    expect(panel).to_be_visible()
    # The local agent has no host.ssh: the panel says how to enable it and does not offer to run.
    expect(panel.get_by_test_id("maintenance-unavailable")).to_contain_text("ssh_host")
    expect(panel.get_by_role("button", name="Run probe")).to_be_disabled()
    # The Docker agent reports its caches (size against cap); an admin may clear them.
    caches = page.get_by_test_id("node-caches")
    for name in ("git", "inputs", "images"):
        expect(caches.locator(f"tr[data-cache={name}]")).to_be_visible()
    caches.get_by_role("button", name="Clear caches").click()
    caches.get_by_role("button", name="Yes, clear caches").click()
    expect(caches.get_by_role("status")).to_contain_text("Asked the node to clear its caches")

    r = ui_server.api.post(
        "/api/users",
        json={"username": "ui-member", "password": "member-password-1", "role": "member"},
    )
    assert r.status_code in (201, 409), r.text
    ctx = new_context(browser, ui_server.url)
    try:
        member = ctx.new_page()
        login_ui(member, "ui-member", "member-password-1")
        member.goto(f"/nodes/{node['id']}")
        expect(member.get_by_role("heading", level=1)).to_contain_text(node["name"])
        expect(member.get_by_text("CPU utilisation")).to_be_visible()
        expect(member.get_by_test_id("maintenance-panel")).to_have_count(0)
        expect(member.get_by_test_id("node-caches")).to_be_visible()
        expect(member.get_by_role("button", name="Clear caches")).to_have_count(0)
    finally:
        ctx.close()


def test_unhealthy_reason_runtimes_and_maintenance_probe(
    page: Page, ui_server: UiServer, sick_node: dict[str, Any]
) -> None:
    reason = sick_node["unhealthy_reason"]
    assert "docker unreachable" in reason
    page.get_by_role("link", name="Nodes").click()
    row = page.locator("tr[data-node-name='ui-sick']")
    expect(row.locator("[data-state=unhealthy]")).to_be_visible()
    expect(row.get_by_test_id("unhealthy-reason")).to_have_text(reason)
    expect(row.get_by_test_id("runtimes")).to_have_text(re.compile(r"docker\s*host\.ssh"))
    page.get_by_role("button", name="unhealthy", exact=True).click()
    expect(page.locator("tbody tr")).to_have_count(1)
    shot(page, "20-nodes-unhealthy")

    row.get_by_role("link", name="ui-sick").click()
    alert = page.get_by_test_id("unhealthy-reason")
    expect(alert).to_contain_text("Unhealthy:")
    expect(alert).to_contain_text(reason)
    panel = page.get_by_test_id("maintenance-panel")
    expect(panel).to_be_visible()
    # Validation mirrors the API before anything is sent.
    panel.get_by_label("Run a command").check()
    panel.get_by_label("Timeout (s)").fill("99999")
    panel.get_by_role("button", name="Run command").click()
    expect(panel.get_by_text("Give the command to run.")).to_be_visible()
    expect(panel.get_by_text("Whole seconds, 1 to 3600.")).to_be_visible()
    panel.get_by_label("Probe").check()
    panel.get_by_label("Timeout (s)").fill("30")
    expect(panel.get_by_text("Whole seconds, 1 to 3600.")).to_have_count(
        0
    )  # the message follows the field
    shot(page, "21-node-unhealthy-maintenance")
    with page.expect_response(
        lambda r: r.url.endswith("/maintenance") and r.request.method == "POST"
    ) as resp:
        panel.get_by_role("button", name="Run probe").click()
    assert resp.value.status == 201
    task_id = resp.value.json()["id"]
    link = panel.get_by_test_id("maintenance-started").get_by_role(
        "link", name=re.compile(r"^host\.ssh probe on ui-sick")
    )
    expect(link).to_have_attribute("href", f"/tasks/{task_id}")
    link.click()
    expect(page.get_by_test_id("task-state")).to_contain_text("succeeded", timeout=60_000)
    expect(page.locator(".kv-row", has_text="Operation")).to_contain_text("probe")
    expect(page.get_by_test_id("log-line").filter(has_text='"probe"').first).to_be_visible()
    events = ui_server.api.get(
        "/api/events", params={"kind": "node.maintenance_requested", "subject_id": sick_node["id"]}
    ).json()
    assert [e["payload"]["op"] for e in events["items"]] == ["probe"]
