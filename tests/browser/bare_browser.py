"""What the two bare drivers share: a browser process with a throw-away profile, and waiting on the page."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time


class BareBrowser:
    """Subclasses start ``process`` with ``profile`` and define ``evaluate``; ``stack`` holds their socket."""

    process: subprocess.Popen
    profile: str
    stack: contextlib.ExitStack | None = None

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
