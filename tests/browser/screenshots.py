"""Screenshots of the page at phone and desktop size: start, running, result, error.

    .venv/bin/python tests/browser/screenshots.py [OUTPUT_DIR] [--household-only | --firefox-only | --single-user-server
                                                     | --fleet]

Starts its own daemon; writes test-output/screenshots/{phone,desktop}-{screen}.png
and, for the virtual household, {phone,desktop}-household-{screen}.png; in
Firefox, firefox-{phone,desktop}-{screen}.png, among them a result whose
phases this device could not fill (the page starved of CPU), with its caveat,
and the same in bare Chromium as chromium-{phone,desktop}-{screen}.png;
the start screen of a server without the household (``virtual_household=off``)
as {chromium,firefox}-{phone,desktop}-start-single-user-server.png; and the
start screen of a fleet's server after the page chose the nearest of two, and
that server's result, as
{chromium,firefox}-{phone,desktop}-{start,result}-fleet.png.
"""

from __future__ import annotations

import base64
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from bare_chromium import BareChromium  # noqa: E402
from bare_firefox import BareFirefox  # noqa: E402
from daemon import REPO, SINGLE_USER_ONLY, start_daemon  # noqa: E402
from fleet_pair import start_fleet_pair  # noqa: E402
from harness import launch, throttle, wait_for_screen  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1440, "height": 900}}
CONFIG = ("sponsor_name=Example Fibre\nsponsor_url=https://fibre.example/\nsponsor_city=Springfield, IL\n"
          "max_concurrent_tests_per_ip=10\nmax_tests_per_hour_per_ip=1000\n")


def household(daemon, output: Path) -> None:
    """Start, running and result screens of the virtual household, and its image card.

    Driven over bare DevTools (bare_chromium.py), not Playwright: Playwright gets
    every bulk WebSocket frame reported, and under that load it would see the
    running screen only after the test had ended. The standard schedule, so that
    the running screen is caught while the household is busy.
    """
    for name, viewport in VIEWPORTS.items():
        page = BareChromium(viewport["width"], viewport["height"])
        try:
            page.goto(f"{daemon.url}/?mode=household")
            page.wait_for("!document.getElementById('sponsor').hidden && document.querySelector('#start-members .persona-card')")
            page.screenshot(output / f"{name}-household-start.png")
            page.screenshot(output / f"{name}-household-start-full.png", full_page=True)
            page.evaluate("document.getElementById('start-button').click()")
            page.wait_for("document.querySelector(\"#household-live .persona-live[data-state='loaded']\")", timeout=30)
            time.sleep(6)  # a few seconds of sparklines and rates
            page.screenshot(output / f"{name}-household-running.png")
            page.screenshot(output / f"{name}-household-running-full.png", full_page=True)
            page.wait_for("document.body.dataset.screen === 'result'", timeout=120)
            time.sleep(0.5)
            page.screenshot(output / f"{name}-household-result.png")
            page.screenshot(output / f"{name}-household-result-full.png", full_page=True)
            if name == "phone":
                card = page.evaluate("""(async () => {
                    const { drawHouseholdCard } = await import("/household-card.js");
                    const record = await (await fetch(location.pathname, { headers: { Accept: "application/json" } })).json();
                    return drawHouseholdCard(record, { shareUrl: location.href, sponsor: "Sponsor: Example Fibre" })
                        .toDataURL("image/png").split(",")[1];
                })()""")
                (output / "household-card.png").write_bytes(base64.b64decode(card))
        finally:
            page.close()


# Takes 120 ms of every 150 ms from the page's main thread, as a slow device would.
STARVE_PAGE = "window.starve = setInterval(() => { const until = performance.now() + 120; while (performance.now() < until); }, 150)"


def bare(daemon, output: Path, browser=BareFirefox, prefix: str = "firefox") -> None:
    """Start, running, result, a starved result with its caveat, and the household, in a bare browser."""
    for name, viewport in VIEWPORTS.items():
        page = browser(viewport["width"], viewport["height"])
        try:
            page.goto(f"{daemon.url}/?schedule=short")
            page.wait_for("!document.getElementById('sponsor').hidden")
            page.screenshot(output / f"{prefix}-{name}-start.png")
            page.evaluate("document.getElementById('start-button').click()")
            page.wait_for("document.querySelector(\"#stepper .step[data-phase='upload'][data-state='current']\")")
            time.sleep(1.5)
            page.screenshot(output / f"{prefix}-{name}-running.png")
            page.wait_for("document.body.dataset.screen === 'result'", timeout=90)
            time.sleep(0.5)
            page.screenshot(output / f"{prefix}-{name}-result-full.png", full_page=True)
            page.goto(f"{daemon.url}/?schedule=short")
            page.evaluate(STARVE_PAGE)
            page.evaluate("document.getElementById('start-button').click()")
            page.wait_for("document.body.dataset.screen === 'result'", timeout=90)
            page.evaluate("clearInterval(window.starve)")
            time.sleep(0.5)
            page.screenshot(output / f"{prefix}-{name}-result-caveat.png")
            page.screenshot(output / f"{prefix}-{name}-result-caveat-full.png", full_page=True)
            page.goto(f"{daemon.url}/?mode=household&schedule=short")
            page.wait_for("document.querySelector('#start-members .persona-card')")
            page.evaluate("document.getElementById('start-button').click()")
            page.wait_for("document.body.dataset.screen === 'result'", timeout=90)
            time.sleep(0.5)
            page.screenshot(output / f"{prefix}-{name}-household-result.png")
        finally:
            page.close()


def bare_pages():
    """(browser name, viewport name, page) for Chromium and Firefox driven bare, at each viewport;
    each page is closed when the loop moves on."""
    for prefix, browser in (("chromium", BareChromium), ("firefox", BareFirefox)):
        for name, viewport in VIEWPORTS.items():
            page = browser(viewport["width"], viewport["height"])
            try:
                yield prefix, name, page
            finally:
                page.close()


def single_user_server(output: Path) -> None:
    """The start screen of a server that does not run the household: no choice of mode."""
    with tempfile.TemporaryDirectory() as tmp:
        daemon = start_daemon(Path(tmp), config_text=CONFIG + SINGLE_USER_ONLY)
        try:
            for prefix, name, page in bare_pages():
                page.goto(f"{daemon.url}/")
                page.wait_for("!document.getElementById('sponsor').hidden"
                              " && document.querySelector('.mode-switch').hidden")
                page.screenshot(output / f"{prefix}-{name}-start-single-user-server.png")
        finally:
            daemon.stop()


def fleet(output: Path) -> None:
    """A fleet of two: the page opened on the far server moves to the near one; then a quick test there."""
    with tempfile.TemporaryDirectory() as tmp:
        pair = start_fleet_pair(Path(tmp), CONFIG + SINGLE_USER_ONLY)
        try:
            for prefix, name, page in bare_pages():
                page.goto(f"{pair.far.url}/?schedule=quick")
                page.wait_for("location.port === '%d' && document.getElementById('server-status')?"
                              ".textContent.startsWith('Testing with')" % pair.near.port, timeout=20)
                page.screenshot(output / f"{prefix}-{name}-start-fleet.png")
                page.evaluate("document.getElementById('start-button').click()")
                page.wait_for("document.body.dataset.screen === 'result'", timeout=60)
                time.sleep(0.5)
                page.screenshot(output / f"{prefix}-{name}-result-fleet.png", full_page=True)
        finally:
            pair.stop()


def main(output: Path, household_only: bool = False, firefox_only: bool = False,
         single_user_server_only: bool = False, fleet_only: bool = False) -> None:
    output.mkdir(parents=True, exist_ok=True)
    fleet(output)
    if fleet_only:
        return
    single_user_server(output)
    if single_user_server_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        daemon = start_daemon(Path(tmp), config_text=CONFIG)
        try:
            if firefox_only:
                bare(daemon, output)
                return
            household(daemon, output)
            if household_only:
                return
            bare(daemon, output)
            bare(daemon, output, BareChromium, "chromium")
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
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(Path(arguments[0]) if arguments else REPO / "test-output" / "screenshots",
         household_only="--household-only" in sys.argv, firefox_only="--firefox-only" in sys.argv,
         single_user_server_only="--single-user-server" in sys.argv, fleet_only="--fleet" in sys.argv)
