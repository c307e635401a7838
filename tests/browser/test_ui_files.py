"""Files in the browser against the real /api/files (local backend): hashed, chunked, resumed
uploads with progress; search and pages; download by short-lived URL; delete; a task's input and
output artifacts; the dashboard's backup card fed by real `unidesk-server backup` runs."""

from __future__ import annotations

import hashlib
import os
import re
import struct
import subprocess
import sys
import zlib
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.browser import ISO_RE, shot, visible_text
from tests.browser.conftest import UiServer

pytestmark = [pytest.mark.browser, pytest.mark.docker]
MiB = 1024 * 1024
CHUNK = 8 * MiB  # web/src/api/upload.ts CHUNK_BYTES

# Records every state an upload row passes through (name|phase|progress value), so a fast phase is
# not missed.
RECORD_UPLOADS = """() => {
  window.__uploads = [];
  const seen = () => document.querySelectorAll('[data-upload-name]').forEach((li) => {
    const p = li.querySelector('progress');
    const entry = `${li.dataset.uploadName}|${li.dataset.phase}|${p ? p.value : ''}`;
    if (!window.__uploads.includes(entry)) window.__uploads.push(entry);
  });
  new MutationObserver(seen).observe(document.body, {
    subtree: true, childList: true, attributes: true, characterData: true,
  });
}"""


def api_upload(api: httpx.Client, name: str, data: bytes) -> dict[str, Any]:
    """The API's own upload flow: declare, PUT the bytes to the presigned URL, complete."""
    r = api.post(
        "/api/files",
        json={"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
    )
    assert r.status_code == 201, r.text
    plan = r.json()["upload"]
    put = httpx.put(plan["url"], content=data, headers=plan["headers"])
    assert put.status_code == 201, put.text
    r = api.post(f"/api/files/{r.json()['artifact']['id']}/complete", json={})
    assert r.status_code == 200, r.text
    return r.json()


def downloaded(page: Page, row: Any) -> bytes:
    with page.expect_download() as dl:
        row.get_by_role("button", name=re.compile("^Download")).click()
    with open(dl.value.path(), "rb") as f:
        return f.read()


def test_upload_with_progress_survives_a_dropped_chunk_then_download_and_delete(
    page: Page, ui_server: UiServer, tmp_path
) -> None:
    big = tmp_path / "big-ui.bin"
    big.write_bytes(os.urandom(72 * MiB + 12345))  # over 64 MiB: hashed in the Worker; 10 chunks
    small = tmp_path / "hello-ui.txt"
    small.write_bytes(
        b"hello from the browser test\n" * 1000
    )  # hashed with crypto.subtle, one chunk
    page.get_by_role("link", name="Files").click()
    expect(page.get_by_role("heading", name="Files")).to_be_visible()
    page.evaluate(RECORD_UPLOADS)

    # The connection drops while the second chunk of the big file is on its way: the UI must
    # resume, not restart.
    puts: list[str] = []

    def drop_second_chunk_once(route: Any) -> None:
        cr = route.request.headers.get("content-range", "")
        puts.append(cr)
        if cr.startswith(f"bytes {CHUNK}-") and puts.count(cr) == 1:
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/api/files/signed/**", drop_second_chunk_once)
    page.get_by_test_id("file-input").set_input_files([str(big), str(small)])
    big_row = page.locator("tr[data-file-name='big-ui.bin']")
    small_row = page.locator("tr[data-file-name='hello-ui.txt']")
    expect(big_row.locator("[data-state=ready]")).to_be_visible(timeout=120_000)
    expect(small_row.locator("[data-state=ready]")).to_be_visible()
    # Row buttons side by side (one line per file), not stacked.
    download = small_row.get_by_role("button", name="Download").bounding_box()
    delete = small_row.get_by_role("button", name="Delete").bounding_box()
    assert download and delete and abs(download["y"] - delete["y"]) < 2, (download, delete)
    expect(page.locator("[data-upload-name]")).to_have_count(
        0
    )  # finished uploads leave the progress list
    page.unroute("**/api/files/signed/**")

    size = big.stat().st_size
    big_puts = [p for p in puts if p.endswith(f"/{size}")]
    starts = [int(p.split()[1].split("-")[0]) for p in big_puts]
    assert starts == [0, CHUNK, CHUNK] + [CHUNK * i for i in range(2, 10)], (
        big_puts
    )  # chunk 2 resent once, none restarted
    states = page.evaluate("window.__uploads")
    big_states = [s.split("|")[1:] for s in states if s.startswith("big-ui.bin|")]
    phases = [p for p, _ in big_states]
    assert {"hashing", "uploading", "retrying", "completing"} <= set(phases), states
    assert any(p == "uploading" and 0 < float(v) < 100 for p, v in big_states), big_states
    assert (
        phases.index("hashing")
        < phases.index("uploading")
        < phases.index("retrying")
        < phases.index("completing")
    )

    for path in (big, small):
        meta = ui_server.api.get(f"/api/files/by-name/{path.name}").json()
        assert (
            meta["state"] == "ready"
            and meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        ), meta
        assert meta["owner"] == "admin" and meta["size"] == path.stat().st_size
    expect(small_row).to_contain_text(hashlib.sha256(small.read_bytes()).hexdigest()[:12])
    shot(page, "12-files")

    assert downloaded(page, small_row) == small.read_bytes()
    assert downloaded(page, big_row) == big.read_bytes()

    # Picking a name that exists is refused with the server's problem detail as a sentence (not
    # "409: …"), shown on the upload row.
    page.get_by_test_id("file-input").set_input_files(str(small))
    failed = page.locator("[data-upload-name='hello-ui.txt'][data-phase=failed]")
    expect(failed.get_by_role("alert")).to_have_text(
        re.compile(r"^An artifact named 'hello-ui.txt' exists")
    )
    failed.get_by_role("button", name="Dismiss").click()

    for row, name in ((small_row, small.name), (big_row, big.name)):
        row.get_by_role("button", name="Delete").click()
        row.get_by_role("button", name="Yes, delete").click()
        expect(row).to_have_count(0)
        assert ui_server.api.get(f"/api/files/by-name/{name}").status_code == 404


def test_choosing_the_same_file_again_resumes_its_unfinished_upload(
    page: Page, ui_server: UiServer, tmp_path
) -> None:
    """As after a closed tab: the server holds the first chunk of an upload this user declared;
    picking the same file (same name, size and SHA-256) sends only the rest."""
    src = tmp_path / "resume-ui.bin"
    data = os.urandom(2 * CHUNK + 4321)
    src.write_bytes(data)
    r = ui_server.api.post(
        "/api/files",
        json={"name": src.name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
    )
    assert r.status_code == 201, r.text
    plan = r.json()["upload"]
    first = httpx.put(
        plan["url"],
        content=data[:CHUNK],
        headers={"Content-Range": f"bytes 0-{CHUNK - 1}/{len(data)}"},
    )
    assert first.status_code == 308 and first.headers["range"] == f"bytes=0-{CHUNK - 1}", first.text

    page.goto("/files")
    row = page.locator(f"tr[data-file-name='{src.name}']")
    expect(row.locator("[data-state=uploading]")).to_be_visible()
    expect(row.get_by_role("button", name=re.compile("^Download"))).to_be_disabled()
    sent: list[str] = []
    page.route(
        "**/api/files/signed/**",
        lambda route: (
            sent.append(route.request.headers.get("content-range", "")),
            route.continue_(),
        ),
    )
    page.get_by_test_id("file-input").set_input_files(str(src))
    expect(row.locator("[data-state=ready]")).to_be_visible(timeout=60_000)
    assert sent == [
        f"bytes {CHUNK}-{2 * CHUNK - 1}/{len(data)}",
        f"bytes {2 * CHUNK}-{len(data) - 1}/{len(data)}",
    ], sent
    assert downloaded(page, row) == data


def test_search_and_pages(page: Page, ui_server: UiServer) -> None:
    for i in range(30):
        api_upload(ui_server.api, f"pages/item-{i:02d}.txt", f"item {i}\n".encode())
    page.goto("/files")
    page.get_by_role("searchbox", name="Search files").fill("pages/item-")
    expect(page).to_have_url(re.compile(r"q=pages%2Fitem-"))
    rows = page.locator("tbody tr[data-file-name]")
    expect(rows).to_have_count(25)
    assert rows.first.get_attribute("data-file-name") == "pages/item-29.txt"  # newest first
    page.get_by_role("button", name="Older").click()
    expect(rows).to_have_count(5)
    expect(page.get_by_test_id("files-page")).to_have_text("Page 2")
    assert rows.last.get_attribute("data-file-name") == "pages/item-00.txt"
    expect(page.get_by_role("button", name="Older")).to_be_disabled()
    page.get_by_role("button", name="Newer").click()
    expect(rows).to_have_count(25)
    page.get_by_role("searchbox", name="Search files").fill("item-07")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-file-name", "pages/item-07.txt")
    page.get_by_role("button", name="uploading", exact=True).click()
    expect(page.get_by_text("No files match.")).to_be_visible()


def test_task_reads_an_input_and_its_output_artifact_is_downloadable(
    page: Page, ui_server: UiServer
) -> None:
    api_upload(ui_server.api, "ui-inputs/greeting.txt", b"hello input artifact\n")
    page.get_by_role("link", name="Submit task").click()
    form = page.get_by_role("form", name="Submit a task")
    page.fill("#f-name", "ui-artifacts")
    page.fill("#f-code_repo_url", ui_server.code.url)
    page.fill("#f-code_commit_id", ui_server.code_sha)
    page.fill("#f-env_repo_url", ui_server.env.url)
    page.fill("#f-env_commit_id", ui_server.env_sha)
    page.fill("#f-dockerfile_path", "docker/Dockerfile")
    page.fill(
        "#f-command",
        "tr a-z A-Z < /inputs/greeting.txt > /workspace/outputs/result.txt && echo wrote-result",
    )
    page.fill("#f-cpus", "0.5")
    page.fill("#f-memory_mb", "128")
    # Validation mirrors the API: an input mounted outside /workspace or /inputs and an output
    # escaping the outputs dir.
    page.fill("#f-inputs", "ui-inputs/greeting.txt -> /etc/greeting.txt")
    page.fill("#f-outputs", "../result.txt")
    form.get_by_role("button", name="Submit task").click()
    expect(page.locator("#e-inputs")).to_contain_text("under /workspace or /inputs")
    expect(page.locator("#e-outputs")).to_contain_text("without '..'")
    page.fill("#f-inputs", "ui-inputs/greeting.txt")
    page.fill("#f-outputs", "result.txt")
    form.get_by_role("button", name="Submit task").click()
    expect(page).to_have_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
    task_id = page.url.rsplit("/", 1)[1]
    task = ui_server.task(task_id)
    assert (
        task["extra"]["outputs"] == ["result.txt"]
        and task["extra"]["inputs"][0]["path"] == "/inputs/greeting.txt"
    )

    artifacts = page.get_by_test_id("task-artifacts")
    expect(artifacts.locator("[data-input-name='ui-inputs/greeting.txt']")).to_contain_text(
        "/inputs/greeting.txt"
    )
    output = artifacts.locator(f"[data-output-name='tasks/{task_id}/1/result.txt']")
    expect(output).to_be_visible(timeout=180_000)
    expect(page.get_by_test_id("task-state")).to_contain_text("succeeded", timeout=60_000)
    expect(output).to_contain_text("result.txt")
    assert downloaded(page, output) == b"HELLO INPUT ARTIFACT\n"
    assert (
        downloaded(page, artifacts.locator("[data-input-name='ui-inputs/greeting.txt']"))
        == b"hello input artifact\n"
    )
    assert not ISO_RE.search(visible_text(page))
    shot(page, "18-task-artifacts")

    # The Files page links the output back to its task.
    page.goto(f"/files?q=tasks/{task_id}")
    row = page.locator(f"tr[data-file-name='tasks/{task_id}/1/result.txt']")
    expect(row.get_by_role("link", name=re.compile(r"^task "))).to_have_attribute(
        "href", f"/tasks/{task_id}"
    )


def _backup(ui_server: UiServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unidesk.core.cli", "backup", *args],
        env=ui_server.server.env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_dashboard_backup_card_shows_the_last_backup_and_a_failure_with_its_reason(
    page: Page, ui_server: UiServer, tmp_path
) -> None:
    page.goto("/")
    card = page.get_by_test_id("backup-card")
    expect(card).to_have_attribute("data-backup", "no backup yet")
    expect(card).to_have_class(re.compile(r"tone-warn"))  # never green without a backup
    expect(card).to_contain_text("No backup has been taken yet and none is scheduled")
    # /health itself says so: a warning (amber, a sentence), not "ok" and not a failure.
    backup_check = page.get_by_test_id("health-card").locator("[data-check=backup]")
    expect(backup_check).to_have_class("check-warn")
    expect(backup_check).to_contain_text("Warning: no backup exists and none is scheduled")
    expect(page.get_by_test_id("degraded-banner")).to_have_count(0)

    done = _backup(ui_server)
    assert done.returncode == 0, done.stderr
    page.reload()
    expect(card).to_have_attribute("data-backup", "ok")
    expect(card).to_contain_text(re.compile(r"Last backup \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"))
    expect(page.get_by_test_id("health-card").locator("[data-check=backup]")).to_contain_text("ok")

    missing = tmp_path / "no-such-mount"
    failed = _backup(ui_server, "--dir", str(missing))
    assert failed.returncode != 0
    page.reload()
    expect(card).to_have_attribute("data-backup", "failing", timeout=20_000)
    expect(card.get_by_test_id("backup-reason")).to_contain_text("last backup failed")
    expect(card.get_by_test_id("backup-reason")).to_contain_text("does not exist")
    # The degraded reason reads as a sentence, the server's words in brackets.
    expect(page.get_by_test_id("degraded-banner")).to_contain_text(
        "Backups are not healthy (last backup failed"
    )
    # The server's reason carries a UTC ISO instant; people read it as Beijing time.
    expect(card.get_by_test_id("backup-reason")).to_contain_text(
        re.compile(r"failed at \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC\+8")
    )
    assert not ISO_RE.search(visible_text(page)), visible_text(page)
    shot(page, "19-dashboard-backup-failed")

    assert _backup(ui_server).returncode == 0  # leave the server healthy for whatever runs next
    page.reload()
    expect(card).to_have_attribute("data-backup", "ok")


def _png(width: int = 3, height: int = 2) -> bytes:
    """A real (red) PNG, built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


LONG_NAME = "training-log-of-the-second-learning-rate-sweep-with-warmup-and-cosine-decay.txt"


def test_folders_compact_rows_and_previews(page: Page, ui_server: UiServer) -> None:
    """Names with "/" browse as folders; one compact row per file whose long name ends in an
    ellipsis (full name in its title); text previews as text (first 64 KiB, markup not rendered),
    PNGs as images, SVGs not at all; at 390 px too."""
    text = "<b>not bold</b> <script>window.__ran = 1</script>\n" + "x" * (70 * 1024)
    api_upload(ui_server.api, f"fold/a/{LONG_NAME}", text.encode())
    api_upload(ui_server.api, "fold/a/plot.png", _png())
    api_upload(ui_server.api, "fold/a/drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>')
    api_upload(ui_server.api, "fold/b/x.txt", b"x\n")
    api_upload(ui_server.api, "fold/top.txt", b"top\n")

    page.goto("/files")
    page.locator("tr[data-folder='fold/']").get_by_role("button").click()
    expect(page).to_have_url(re.compile(r"dir=fold%2F"))
    crumbs = page.get_by_role("navigation", name="Folder")
    expect(crumbs).to_contain_text("All files / fold")
    expect(page.locator("tbody tr[data-file-name]")).to_have_count(1)
    expect(page.locator("tr[data-file-name='fold/top.txt']")).to_contain_text("top.txt")
    expect(page.locator("tr[data-folder]")).to_have_count(2)
    page.get_by_role("button", name="Folder a/").click()
    expect(page.locator("tbody tr[data-file-name]")).to_have_count(3)
    expect(crumbs).to_contain_text("All files / fold / a")

    row = page.locator(f"tr[data-file-name='fold/a/{LONG_NAME}']")
    name = row.locator(".file-name-text")
    expect(name).to_have_attribute("title", f"fold/a/{LONG_NAME}")
    expect(name).to_have_text(LONG_NAME)  # shown relative to the folder
    clipped = name.evaluate(
        "e => ({cut: e.scrollWidth > e.clientWidth, wrap: getComputedStyle(e).whiteSpace,"
        " overflow: getComputedStyle(e).textOverflow})"
    )
    assert clipped == {"cut": True, "wrap": "nowrap", "overflow": "ellipsis"}, clipped
    # the row's actions sit side by side on one line, and the row stays one line high
    tops = {
        round(b.bounding_box()["y"])  # type: ignore[index]
        for b in row.locator(".row-actions button").all()
    }
    assert len(tops) == 1, tops
    assert row.bounding_box()["height"] < 56  # type: ignore[index]
    expect(
        page.locator("tr[data-file-name='fold/a/drawing.svg']").get_by_role(
            "button", name=re.compile("^Preview")
        )
    ).to_have_count(0)

    row.get_by_role("button", name=re.compile("^Preview")).click()
    preview = page.get_by_test_id("file-preview")
    expect(preview).to_be_focused()
    expect(preview.get_by_test_id("preview-text")).to_contain_text("<b>not bold</b> <script>")
    expect(preview.locator("b, script")).to_have_count(0)
    assert page.evaluate("window.__ran") is None
    expect(preview.get_by_test_id("preview-cut")).to_contain_text("The first 64 KiB")
    shown = preview.get_by_test_id("preview-text").evaluate("e => e.textContent.length")
    assert shown <= 64 * 1024, shown
    shot(page, "20-files-folder-text-preview")
    page.keyboard.press("Escape")
    expect(preview).to_have_count(0)

    page.locator("tr[data-file-name='fold/a/plot.png']").get_by_role(
        "button", name=re.compile("^Preview")
    ).click()
    img = page.get_by_test_id("preview-image")
    expect(img).to_be_visible()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=preview-image]').naturalWidth === 3"
    )
    page.set_viewport_size({"width": 390, "height": 844})
    expect(img).to_be_visible()
    # At phone width each file is a labelled card: nothing scrolls sideways, actions stay in view.
    wrap = page.locator(".table-wrap").first
    assert wrap.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), wrap.evaluate(
        "e => [e.scrollWidth, e.clientWidth]"
    )
    delete = row.get_by_role("button", name="Delete")
    box = delete.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390, box
    shot(page, "21-files-folder-image-preview-390")
