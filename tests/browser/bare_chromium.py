"""Chromium over a bare DevTools connection that enables no domain.

Playwright enables the Network domain, so Chromium reports every WebSocket
frame to it, base64-encoded: with the household's unthrottled bulk download on
loopback that is hundreds of Mbit/s of events, which starves the machine and
makes whatever Playwright sees of the page seconds late.  This driver only
navigates, evaluates scripts and takes screenshots, as a customer's browser
would run the page.  Used by bench/household_browser_rtt.py and screenshots.py.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from bare_browser import BareBrowser
from harness import CHROMIUM, CHROMIUM_ARGS


class BareChromium(BareBrowser):
    def __init__(self, width: int = 1280, height: int = 800):
        from websockets.sync.client import connect
        self.profile = tempfile.mkdtemp(prefix="bare-chromium-")
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", *CHROMIUM_ARGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             "--hide-scrollbars", "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
            target = next(t for t in json.load(response) if t["type"] == "page")
        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=10))
        self.viewport(width, height)

    def error_of(self, message: dict) -> str | None:
        return str(message["error"]) if "error" in message else None

    def viewport(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def goto(self, url: str, timeout: float = 15) -> None:
        self.call("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete' && location.href === " + json.dumps(url), timeout)

    def evaluate(self, script: str, argument=None):
        expression = script if argument is None else f"({script})({json.dumps(argument)})"
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(details.get("exception", {}).get("description", details.get("text", "error")))
        return result["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = False) -> None:
        params: dict = {"format": "png"}
        if full_page:
            height = self.evaluate("Math.ceil(document.documentElement.scrollHeight)")
            params |= {"captureBeyondViewport": True,
                       "clip": {"x": 0, "y": 0, "width": self.width, "height": max(height, self.height), "scale": 1}}
        Path(path).write_bytes(base64.b64decode(self.call("Page.captureScreenshot", params)["data"]))

