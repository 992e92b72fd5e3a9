"""Screenshots of the page at phone and desktop size: start, running, result, error.

    .venv/bin/python tests/browser/screenshots.py [OUTPUT_DIR]

Starts its own daemon; writes test-output/screenshots/{phone,desktop}-{screen}.png.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from daemon import REPO, start_daemon  # noqa: E402
from harness import launch, throttle, wait_for_screen  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1440, "height": 900}}
CONFIG = "sponsor_name=Example Fibre\nsponsor_url=https://fibre.example/\nsponsor_city=Springfield, IL\n"


def main(output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        daemon = start_daemon(Path(tmp), config_text=CONFIG)
        try:
            with sync_playwright() as playwright:
                browser = launch(playwright)
                for name, viewport in VIEWPORTS.items():
                    page = browser.new_page(viewport=viewport)
                    throttle(page)
                    page.goto(f"{daemon.url}/?schedule=short")
                    page.wait_for_selector("#sponsor:not([hidden])")
                    page.screenshot(path=output / f"{name}-start.png")
                    page.click("#start-button")
                    page.wait_for_selector("#stepper .step[data-phase='upload'][data-state='current']", timeout=30_000)
                    time.sleep(1.5)
                    page.screenshot(path=output / f"{name}-running.png")
                    wait_for_screen(page, "result")
                    page.wait_for_timeout(500)
                    page.screenshot(path=output / f"{name}-result.png")
                    page.screenshot(path=output / f"{name}-result-full.png", full_page=True)
                    page.close()
                page = browser.new_page(viewport=VIEWPORTS["phone"])
                page.route("**/api/tests", lambda route: route.fulfill(
                    status=429, headers={"Retry-After": "42", "Content-Type": "application/json"},
                    body='{"error": "a test from this address is already running"}'))
                page.goto(f"{daemon.url}/?schedule=short")
                page.click("#start-button")
                wait_for_screen(page, "error", timeout=10_000)
                page.screenshot(path=output / "phone-error-busy.png")
                page.close()
                browser.close()
        finally:
            daemon.stop()
        lost_connection(output, Path(tmp) / "killed")
    print(f"screenshots in {output}")


def lost_connection(output: Path, tmp: Path) -> None:
    """The error screen after the daemon dies mid-test."""
    tmp.mkdir()
    daemon = start_daemon(tmp)
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page(viewport=VIEWPORTS["phone"])
            throttle(page)
            page.goto(f"{daemon.url}/?schedule=short")
            page.click("#start-button")
            page.wait_for_selector("#stepper .step[data-phase='download'][data-state='current']", timeout=20_000)
            daemon.stop()
            wait_for_screen(page, "error", timeout=15_000)
            page.screenshot(path=output / "phone-error-lost.png")
            browser.close()
    finally:
        daemon.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "test-output" / "screenshots")
