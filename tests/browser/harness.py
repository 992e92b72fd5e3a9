"""What the browser tests and the screenshot script share: Chromium, throttling, waits."""

from __future__ import annotations

import json
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# A home connection, not loopback: the page's streams are throttled by Chromium
# (DevTools network emulation; the probe WebSocket in its worker is not), so the
# test neither eats both cores nor reaches the server's per-test upload cap.
DOWNLOAD_BYTES_PER_SECOND = 100e6 / 8
UPLOAD_BYTES_PER_SECOND = 20e6 / 8
# The short schedule (15 s), the last probes' answers and the submission.
TEST_TIMEOUT_MS = 60_000


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def throttle(page, down=DOWNLOAD_BYTES_PER_SECOND, up=UPLOAD_BYTES_PER_SECOND) -> None:
    """Throttle the page's HTTP traffic (not WebSockets). No Network.enable: it is not
    needed, and its per-chunk events would flood this process and slow the test."""
    session = page.context.new_cdp_session(page)
    session.send("Network.emulateNetworkConditions",
                 {"offline": False, "latency": 0, "downloadThroughput": down, "uploadThroughput": up})


def wait_for_screen(page, screen: str, timeout: float = TEST_TIMEOUT_MS) -> None:
    page.wait_for_selector(f"body[data-screen='{screen}']", timeout=timeout)


def shared_record(daemon, share_id: str) -> dict:
    """The stored result, as ``GET /r/{share_id}`` answers an API client."""
    request = urllib.request.Request(f"{daemon.url}/r/{share_id}", headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)
