"""The browser page as the accuracy testbed's client: Chromium or Firefox inside the client namespace.

A browser runs the page as a customer's browser would only when nothing
instruments it: Playwright enables DevTools' Network domain, and Chromium
then reports every received chunk to it, which halved its download at
1 Gbit/s here.  So the testbed drives Chromium over bare DevTools
(``bare_chromium.py``) and Firefox over WebDriver BiDi with no network
subscriptions (``bare_firefox.py``).  Both drivers talk to the browser over a
socket on loopback, and the browser runs inside the client namespace, so the
driver runs there too: this file is also the script ``ip netns exec`` runs.

    python tests/testbed/browser_client.py --browser firefox --url URL --schedule short [--mode household]

prints ``{"share_id": ..., "started_unix_ms": ...}``; with ``--reference down``
(or ``up``, or ``both``) it runs the reference page instead (``reference_page.py``)
and prints ``{"mbps": {"down": ..., "up": ...}}``, with the directions it loaded.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BROWSERS = ("chromium", "firefox")
RESULT_TIMEOUT = {"short": 90, "standard": 180}


def run_page_test(bed, server_url: str, schedule: str, browser: str, mode: str = "single_user") -> tuple[dict, dict]:
    """Run the page's test in *browser* inside the client namespace; the stored result and its timeline."""
    argv = ["ip", "netns", "exec", bed.client, sys.executable, str(Path(__file__).resolve()),
            "--browser", browser, "--url", server_url, "--schedule", schedule, "--mode", mode]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=RESULT_TIMEOUT[schedule] + 60)
    if completed.returncode != 0:
        raise RuntimeError(f"the {browser} page failed: {completed.stderr.strip()[-2000:]}")
    answer = json.loads(completed.stdout)
    record = json.loads(subprocess.run(
        ["ip", "netns", "exec", bed.client, "curl", "-s", "-H", "Accept: application/json",
         f"{server_url}/r/{answer['share_id']}"], capture_output=True, text=True, check=True).stdout)
    return record, {"started_unix": answer["started_unix_ms"] / 1000.0, "phases": record_phases(record)}


def run_reference_page(bed, server_url: str, browser: str, direction: str, seconds: float = 5.0) -> dict[str, float]:
    """Mbit/s per direction of the reference page in *browser* inside the client namespace,
    loading *direction*: ``down``, ``up`` or ``both``."""
    argv = ["ip", "netns", "exec", bed.client, sys.executable, str(Path(__file__).resolve()),
            "--browser", browser, "--url", server_url, "--reference", direction, "--seconds", str(seconds)]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 90)
    if completed.returncode != 0:
        raise RuntimeError(f"the {browser} reference page failed: {completed.stderr.strip()[-2000:]}")
    return json.loads(completed.stdout)["mbps"]


def record_phases(record: dict) -> list[dict]:
    from lqos.sessions import SCHEDULES

    return [{"name": p.name, "seconds": p.seconds} for p in SCHEDULES[record["mode"]][record["schedule"]]]


def open_browser(browser: str):
    sys.path[:0] = [str(HERE.parent / "browser")]
    if browser == "firefox":
        from bare_firefox import BareFirefox as Browser
    else:
        from bare_chromium import BareChromium as Browser
    return Browser()


def drive_reference(browser: str, url: str, direction: str, seconds: float) -> dict:
    page = open_browser(browser)
    try:
        from reference_page import PAGE_STREAMS, REFERENCE_PAGE, reference_mbps

        page.goto(f"{url}/", timeout=30)
        answer = page.evaluate(REFERENCE_PAGE, {"direction": direction, "seconds": seconds, "streams": PAGE_STREAMS})
        return {"mbps": reference_mbps(answer)}
    finally:
        page.close()


def drive(browser: str, url: str, schedule: str, mode: str) -> dict:
    page = open_browser(browser)
    try:
        query = f"?schedule={schedule}" + ("&mode=household" if mode == "virtual_household" else "")
        page.goto(f"{url}/{query}", timeout=30)
        page.wait_for("!document.getElementById('start-button').disabled", timeout=30)
        page.evaluate("document.getElementById('start-button').click()")
        page.wait_for("document.body.dataset.screen === 'result' || document.body.dataset.screen === 'error'",
                      timeout=RESULT_TIMEOUT[schedule])
        if page.evaluate("document.body.dataset.screen") != "result":
            raise RuntimeError("the page ended in an error: " + str(page.evaluate("document.body.innerText"))[:500])
        return {
            "share_id": page.evaluate("document.getElementById('share-link').value").rsplit("/r/", 1)[1],
            "started_unix_ms": float(page.evaluate("document.body.dataset.testStartedUnixMs || 0")),
        }
    finally:
        page.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--browser", choices=BROWSERS, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--schedule", choices=tuple(RESULT_TIMEOUT), default="short")
    parser.add_argument("--mode", choices=("single_user", "virtual_household"), default="single_user")
    parser.add_argument("--reference", choices=("down", "up", "both"),
                        help="run the reference page in this direction")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long the reference page runs")
    options = parser.parse_args()
    if options.reference:
        print(json.dumps(drive_reference(options.browser, options.url, options.reference, options.seconds)))
    else:
        print(json.dumps(drive(options.browser, options.url, options.schedule, options.mode)))


if __name__ == "__main__":
    main()
