"""The browser page as the accuracy testbed's client: Chromium inside the client namespace.

Playwright drives Chromium over a pipe, so a wrapper that starts Debian's
``/usr/bin/chromium`` under ``ip netns exec`` puts every connection the page
makes (probes, load, submission) through the emulated link.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "browser"))
from harness import CHROMIUM, CHROMIUM_ARGS, TEST_TIMEOUT_MS, wait_for_screen  # noqa: E402

from netlab import Testbed  # noqa: E402


def chromium_in(bed: Testbed, directory: Path) -> Path:
    wrapper = directory / "chromium-in-client-namespace"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {bed.client} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def run_page_test(bed: Testbed, directory: Path, server_url: str, schedule: str) -> tuple[dict, dict]:
    """Run the page's single-user test; the stored result and the test's timeline."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_in(bed, directory)), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{server_url}/?schedule={schedule}")
            page.get_by_role("button", name="Start").click()
            wait_for_screen(page, "result", timeout=TEST_TIMEOUT_MS * (3 if schedule == "standard" else 1))
            started_ms = float(page.evaluate("document.body.dataset.testStartedUnixMs"))
            share_id = page.url.rstrip("/").rsplit("/", 1)[-1]
        finally:
            browser.close()
    record = json.loads(subprocess.run(
        ["ip", "netns", "exec", bed.client, "curl", "-s", "-H", "Accept: application/json",
         f"{server_url}/r/{share_id}"], capture_output=True, text=True, check=True).stdout)
    return record, {"started_unix": started_ms / 1000.0, "phases": record_phases(record, schedule)}


def record_phases(record: dict, schedule: str) -> list[dict]:
    from lqos.sessions import SCHEDULES

    return [{"name": p.name, "seconds": p.seconds} for p in SCHEDULES["single_user"][schedule]]
