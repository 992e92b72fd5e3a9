"""Do many idle connections to the main port stop a customer's test?

    .venv/bin/python bench/idle_connections.py [--connections 1000] [--hold 60] [--no-reopen] [--url URL]

Without --url it starts its own daemon on free loopback ports with the
default configuration (only the tests-per-address limits raised).  It runs a
short single-user test with the CLI client (``lqos-bufferbloat-test URL
--short --json``) once on a quiet server, for reference; then opens
--connections TCP connections to the main port that never send a byte, and
while they are held for --hold seconds runs the same test again.  Prints
whether each test completed, its grade and how long it took, and what
became of the idle connections: how many the server closed (its request-head
deadline, ``http_request_head_seconds``, 20 s by default, is what closes a
connection that never sends a request) and how many were open at the end.

Unless --no-reopen is given, a connection the server closes is opened again
at once, so the server faces --connections idle connections the whole time,
as it would from an attacker who keeps them up.

Source addresses: the main port allows ``max_connections_per_ip`` (128 by
default) connections per client address and answers 503 beyond that.  So
that the bench measures idle connections rather than that limit, they are
spread over as many loopback addresses 127.0.0.2, 127.0.0.3, ... as needed
(Linux routes all of 127/8 to the loopback interface, no set-up needed), at
most 100 per address; the test itself runs from 127.0.0.1.

The process needs a descriptor per connection; the soft open-files limit is
raised to the hard limit when it is too low for --connections.
"""

from __future__ import annotations

import argparse
import json
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from daemon import start_daemon  # noqa: E402  (the test suite's launcher, reused)

CLI = Path(sys.executable).parent / "lqos-bufferbloat-test"
PER_ADDRESS = 100
CONFIG = "max_concurrent_tests_per_ip=1000\nmax_tests_per_hour_per_ip=100000\n"


def raise_open_files_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def source_addresses(count: int) -> list[str]:
    """127.0.0.2, 127.0.0.3, ... each used for at most PER_ADDRESS connections."""
    return [f"127.0.0.{2 + index // PER_ADDRESS}" for index in range(count)]


class IdleConnections:
    """Hold *count* silent connections; note each one the server closes; optionally reopen it."""

    def __init__(self, host: str, port: int, count: int, reopen: bool):
        self.host, self.port, self.reopen = host, port, reopen
        self.selector = selectors.DefaultSelector()
        self.closed_by_server = 0
        self.refused = 0  # an answer (a 503 over a limit) instead of a silent accept
        self.reopened = 0
        self.failed_to_open = 0
        self.first_close_after: float | None = None
        self._opened_at = time.monotonic()
        self._stop = threading.Event()
        for source in source_addresses(count):
            self._open(source)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _open(self, source: str) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=10, source_address=(source, 0))
        except OSError:
            self.failed_to_open += 1
            return
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, source)

    @property
    def open(self) -> int:
        return len(self.selector.get_map())

    def _watch(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.selector.select(timeout=0.2):
                try:
                    data = key.fileobj.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data:
                    self.refused += 1
                else:
                    self.closed_by_server += 1
                    if self.first_close_after is None:
                        self.first_close_after = time.monotonic() - self._opened_at
                self.selector.unregister(key.fileobj)
                key.fileobj.close()
                if self.reopen and not self._stop.is_set():
                    self._open(key.data)
                    self.reopened += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()


def short_test(url: str) -> tuple[bool, float, str]:
    """Run the CLI's short test: (completed, seconds, grade or the error line)."""
    started = time.monotonic()
    done = subprocess.run([str(CLI), url, "--short", "--json"], capture_output=True, text=True, timeout=180)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        return False, seconds, done.stderr.strip() or f"exit {done.returncode}"
    return True, seconds, json.loads(done.stdout)["result"]["overall"]["grade"]


def report_test(label: str, outcome: tuple[bool, float, str]) -> None:
    completed, seconds, detail = outcome
    print(f"{label}: {'completed' if completed else 'FAILED'} in {seconds:.1f} s "
          f"({'grade ' + detail if completed else detail})")


def run(url: str, options, health=None) -> None:
    parts = urlsplit(url)
    limit = raise_open_files_limit(options.connections + 256)
    print(f"{options.connections} idle connections to {parts.hostname}:{parts.port} for {options.hold:g} s, from "
          f"{len(set(source_addresses(options.connections)))} source addresses; open-files limit {limit}; "
          f"{'reopened when closed' if options.reopen else 'not reopened'}")
    report_test("short test on a quiet server", short_test(url))
    started = time.monotonic()
    idle = IdleConnections(parts.hostname, parts.port, options.connections, options.reopen)
    print(f"opened {idle.open} in {time.monotonic() - started:.1f} s ({idle.failed_to_open} failed)")
    try:
        report_test(f"short test with {options.connections} idle connections", short_test(url))
        if health is not None:
            print(f"/api/health during the hold: {health()}")
        time.sleep(max(0.0, options.hold - (time.monotonic() - started)))
        held = time.monotonic() - started
        first = f"{idle.first_close_after:.1f} s" if idle.first_close_after is not None else "never"
        print(f"after {held:.0f} s: {idle.open} open; {idle.closed_by_server} closed by the server without an answer "
              f"(first after {first}), {idle.refused} refused with an answer, {idle.reopened} reopened")
    finally:
        idle.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=60.0)
    parser.add_argument("--no-reopen", dest="reopen", action="store_false")
    parser.add_argument("--url", help="a running server (its per-address limit must allow the test's connections)")
    options = parser.parse_args()
    if options.url:
        run(options.url, options)
        return
    with tempfile.TemporaryDirectory() as scratch:
        daemon = start_daemon(Path(scratch), config_text=CONFIG, as_deployed=True)
        try:
            run(daemon.url, options, health=lambda: (daemon.health() or ("no answer",))[0])
            print(f"daemon: {'alive' if daemon.process.poll() is None else 'DEAD'}, /api/health "
                  f"{(daemon.health() or ('no answer',))[0]}")
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
