"""What the two bare drivers share: a browser process with a throw-away profile, and waiting on the page."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time


class BareBrowser:
    """Subclasses start ``process`` with ``profile``, open ``ws`` (held by ``stack``) and define
    ``evaluate`` and ``error_of``; both protocols are JSON commands answered by ``id``."""

    process: subprocess.Popen
    profile: str
    stack: contextlib.ExitStack | None = None
    next_id = 0

    def call(self, method: str, params: dict | None = None, timeout: float = 120) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params or {}}))
        while True:
            message = json.loads(self.ws.recv(timeout=timeout))
            if message.get("id") != self.next_id:
                self.on_event(message)
                continue
            error = self.error_of(message)
            if error:
                raise RuntimeError(f"{method}: {error}")
            return message["result"]

    def error_of(self, message: dict) -> str | None:
        """The error an answer carries, or None."""
        raise NotImplementedError

    def on_event(self, message: dict) -> None:
        """A message that answers no command: an event, ignored unless a subclass keeps it."""

    def evaluate(self, script: str, argument=None):
        raise NotImplementedError

    def wait_for(self, expression: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"Boolean({expression})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout} s for {expression}")
            time.sleep(0.1)

    def close(self) -> None:
        if self.stack is not None:
            self.stack.close()
            self.stack = None
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
