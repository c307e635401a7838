"""Secrets in the browser: set one on the Secrets page (the value is never shown again), use it
from the submit form, see its name (not its value) on the task page and *** in the live log."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.browser import visible_text
from tests.browser.conftest import UiServer

pytestmark = [pytest.mark.browser, pytest.mark.docker]

VALUE = "ui-secret-v4lue-93kd"


def test_secrets_page_submit_form_and_task_page(page: Page, ui_server: UiServer) -> None:
    page.get_by_role("link", name="Secrets").click()
    expect(page.get_by_role("heading", name="Secrets", level=1)).to_be_visible()
    form = page.get_by_role("form", name="Set a secret")
    form.get_by_label("Name").fill("bad name")
    expect(form.locator(".field-error")).to_contain_text("Letters, digits")
    form.get_by_label("Name").fill("uitoken")
    form.get_by_label("Value").fill(VALUE)
    form.get_by_role("button", name="Save secret").click()
    expect(page.get_by_test_id("secret-saved")).to_contain_text("uitoken")
    table = page.get_by_test_id("secrets-table")
    expect(table).to_contain_text("uitoken")
    expect(table).to_contain_text("admin")
    expect(form.get_by_label("Value")).to_have_value("")
    page.reload()
    expect(page.get_by_test_id("secrets-table")).to_contain_text("uitoken")
    assert VALUE not in page.content()

    page.get_by_role("link", name="Submit task").click()
    submit = page.get_by_role("form", name="Submit a task")
    page.fill("#f-name", "ui-secret")
    page.fill("#f-code_repo_url", ui_server.code.url)
    page.fill("#f-code_commit_id", ui_server.code_sha)
    page.fill("#f-env_repo_url", ui_server.env.url)
    page.fill("#f-env_commit_id", ui_server.env_sha)
    page.fill("#f-dockerfile_path", "docker/Dockerfile")
    page.fill("#f-command", 'echo "token=$TOK"')
    page.fill("#f-cpus", "0.5")
    page.fill("#f-memory_mb", "128")
    page.fill("#f-secrets", "TOK=not a ref!")
    submit.get_by_role("button", name="Submit task").click()
    expect(page.locator("#e-secrets")).to_contain_text("secret name")
    page.fill("#f-secrets", "TOK=uitoken")
    submit.get_by_role("button", name="Submit task").click()
    expect(page).to_have_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
    task_id = page.url.rsplit("/", 1)[1]
    assert ui_server.task(task_id)["secrets"] == {"TOK": "uitoken"}

    used = page.get_by_test_id("task-secrets")
    expect(used).to_contain_text("TOK")
    expect(used).to_contain_text("secret uitoken")
    lines = page.get_by_test_id("log-line")
    expect(lines.filter(has_text="token=***")).to_be_visible(timeout=180_000)
    expect(page.get_by_test_id("task-state")).to_contain_text("succeeded", timeout=60_000)
    assert VALUE not in page.content() and VALUE not in visible_text(page)

    # Delete it from the Secrets page.
    page.get_by_role("link", name="Secrets").click()
    row = page.get_by_test_id("secrets-table").locator("tr", has_text="uitoken")
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Yes, delete").click()
    expect(page.get_by_text("No secrets yet.")).to_be_visible()
