"""Debian's Firefox ESR over WebDriver BiDi, subscribed to no events.

The Firefox twin of bare_chromium.py, with the same methods (goto, evaluate,
wait_for, screenshot, viewport, close), so a test or a benchmark can take
either browser.  It speaks BiDi itself over one WebSocket: a session, one
browsing context, ``script.evaluate`` and ``browsingContext.captureScreenshot``.
It subscribes to nothing per request or per frame (only, when asked, to
console entries), so Firefox runs the page as a customer's Firefox would.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import tempfile
import time
from pathlib import Path

from bare_browser import BareBrowser

FIREFOX = "/usr/bin/firefox-esr"
# Preferences for a quiet, closed-network, automated Firefox: no first-run
# pages, no update or telemetry traffic to hosts this machine cannot reach.
PREFERENCES = {
    "app.update.disabledForTesting": True,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "extensions.update.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "services.settings.server": "http://127.0.0.1:9/",
    "browser.region.network.url": "",
    "dom.disable_open_during_load": False,
}


class BareFirefox(BareBrowser):

    def __init__(self, width: int = 1280, height: int = 800, executable: str = FIREFOX):
        from websockets.sync.client import connect
        self.profile = tempfile.mkdtemp(prefix="bare-firefox-")
        Path(self.profile, "user.js").write_text(
            "".join(f"user_pref({json.dumps(key)}, {json.dumps(value)});\n" for key, value in PREFERENCES.items()))
        self.process = subprocess.Popen(
            [executable, "--headless", "--no-remote", "--profile", self.profile, "--remote-debugging-port=0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server_file = Path(self.profile) / "WebDriverBiDiServer.json"
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError, ValueError):
                port = json.loads(server_file.read_text())["ws_port"]
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("Firefox did not open its WebDriver BiDi port")
            time.sleep(0.05)
        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(connect(f"ws://127.0.0.1:{port}/session", max_size=None, open_timeout=10))
        self.console: list[dict] = []
        self.call("session.new", {"capabilities": {"alwaysMatch": {"acceptInsecureCerts": True}}})
        contexts = self.call("browsingContext.getTree", {"maxDepth": 0})["contexts"]
        self.context = contexts[0]["context"]
        self.viewport(width, height)

    def error_of(self, message: dict) -> str | None:
        return f"{message.get('error')}: {message.get('message')}" if message.get("type") == "error" else None

    def on_event(self, message: dict) -> None:
        if message.get("method") == "log.entryAdded":
            self.console.append(message["params"])

    def watch_console(self) -> None:
        """Collect console messages and uncaught errors into ``console`` from now on."""
        self.call("session.subscribe", {"events": ["log.entryAdded"], "contexts": [self.context]})

    def console_errors(self) -> list[str]:
        self.evaluate("0")  # a round trip, so entries logged before now have arrived
        return [entry.get("text") or "" for entry in self.console if entry.get("level") == "error"]

    def viewport(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.call("browsingContext.setViewport",
                  {"context": self.context, "viewport": {"width": width, "height": height}})

    def goto(self, url: str, timeout: float = 15) -> None:
        self.call("browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"},
                  timeout=timeout)

    def evaluate(self, script: str, argument=None):
        expression = script if argument is None else f"({script})({json.dumps(argument)})"
        result = self.call("script.evaluate", {
            "expression": expression, "awaitPromise": True, "resultOwnership": "none",
            "target": {"context": self.context}, "serializationOptions": {"maxObjectDepth": 20}})
        if result.get("type") == "exception":
            details = result["exceptionDetails"]
            raise RuntimeError(details.get("text", "error"))
        return _value(result["result"])

    def screenshot(self, path: Path, full_page: bool = False) -> None:
        params: dict = {"context": self.context}
        if full_page:
            params["origin"] = "document"
            height = self.evaluate("Math.ceil(document.documentElement.scrollHeight)")
            params["clip"] = {"type": "box", "x": 0, "y": 0, "width": self.width, "height": max(height, self.height)}
        Path(path).write_bytes(base64.b64decode(self.call("browsingContext.captureScreenshot", params)["data"]))

    def close(self) -> None:
        if self.stack is not None:
            with contextlib.suppress(Exception):
                self.call("session.end", timeout=5)
        super().close()


def _value(remote: dict):
    """A BiDi RemoteValue as plain Python (what ``returnByValue`` gives over DevTools)."""
    kind = remote.get("type")
    if kind in ("undefined", "null"):
        return None
    if kind in ("string", "boolean"):
        return remote["value"]
    if kind == "number":
        value = remote["value"]
        if isinstance(value, str):  # NaN, -0, Infinity
            return {"NaN": float("nan"), "-0": -0.0, "Infinity": float("inf"), "-Infinity": float("-inf")}[value]
        return value
    if kind == "bigint":
        return int(remote["value"])
    if kind == "array":
        return [_value(item) for item in remote.get("value", [])]
    if kind == "object":
        return {(key if isinstance(key, str) else str(_value(key))): _value(item)
                for key, item in remote.get("value", [])}
    if kind == "date":
        return remote["value"]
    return remote.get("value")
