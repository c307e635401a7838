"""Debian's Chromium driven by Playwright (never a downloaded browser), in a non-Beijing time
zone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

__all__ = [
    "BROWSER_TZ",
    "CHROMIUM",
    "ISO_RE",
    "SCREENSHOTS",
    "beijing",
    "launch",
    "new_context",
    "parse_beijing",
    "shot",
    "visible_text",
]

CHROMIUM = "/usr/bin/chromium"
BROWSER_TZ = "America/New_York"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ISO_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
BEIJING = timezone(timedelta(hours=8))


def launch() -> Iterator[tuple[Playwright, Browser]]:
    """Chromium with the flags that work on these machines and a fresh profile directory."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium")
    # Playwright gives every launch a fresh temporary profile (it refuses --user-data-dir in args).
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield pw, browser
        finally:
            browser.close()


def new_context(
    browser: Browser, base_url: str, *, width: int = 1440, height: int = 900
) -> BrowserContext:
    ctx = browser.new_context(
        base_url=base_url,
        timezone_id=BROWSER_TZ,
        locale="en-US",
        viewport={"width": width, "height": height},
        accept_downloads=True,
    )
    ctx.set_default_timeout(15_000)
    return ctx


def shot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Saves a PNG a reviewer can look at: test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")  # sticky header: shoot from the top or it lands mid-page
    page.screenshot(path=str(path), full_page=full_page)
    return path


def beijing(iso: str) -> str:
    """The Beijing wall-clock text the UI must show for an API timestamp ("2026-11-27 18:30:05")."""
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return dt.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def parse_beijing(text: str) -> datetime:
    """Reads the UI's "YYYY-MM-DD HH:MM:SS" as Beijing time."""
    return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)


def visible_text(page: Page) -> str:
    """What a person can read on the page, minus an opened raw-JSON view."""
    return page.evaluate(
        """() => { const raws = [...document.querySelectorAll('[data-raw-json]')];
                   raws.forEach(e => { e.style.display = 'none'; });
                   const text = document.body.innerText;
                   raws.forEach(e => { e.style.display = ''; });
                   return text; }"""
    )
