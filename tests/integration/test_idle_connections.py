"""A thousand idle connections to the main port do not stop a customer's test.

Each idle connection costs the server a descriptor and a little memory and
nothing else: the event loop does no work for a socket that sends nothing.
The test holds 1000 of them open (spread over ten loopback addresses, 100
each, under the default per-address limit of 128) while a quick test runs
from 127.0.0.1 with the CLI client, and checks that the test completes with
a grade and that the server really held every idle connection throughout.
The request-head deadline is raised to 120 s for this daemon so that its
usual 20 s cut does not empty the idle pool before the test is over; what
that deadline does to idle connections is checked in
tests/unit/test_request_deadlines.py and measured by bench/idle_connections.py.
(bench/idle_connections.py holds them for 60 s with the default deadline.)
"""

from __future__ import annotations

import json
import resource
import selectors
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from daemon import SINGLE_USER_ONLY, start_daemon

CLI = Path(sys.executable).parent / "lqos-bufferbloat-test"
IDLE_CONNECTIONS = 1000
PER_ADDRESS = 100


@pytest.fixture
def enough_descriptors():
    """This process holds a descriptor per idle connection: raise the soft limit if it is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = IDLE_CONNECTIONS + 512
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def patient_daemon(tmp_path):
    running = start_daemon(tmp_path, config_text="http_request_head_seconds=120\n"
                                                 "max_concurrent_tests_per_ip=1000\n"
                                                 "max_tests_per_hour_per_ip=100000\n" + SINGLE_USER_ONLY)
    yield running
    running.stop()


def open_idle_connections(port: int) -> list[socket.socket]:
    sockets = []
    for index in range(IDLE_CONNECTIONS):
        source = f"127.0.0.{2 + index // PER_ADDRESS}"
        sockets.append(socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)))
    return sockets


def still_open(sockets: list[socket.socket]) -> int:
    """How many the server has neither closed nor answered (a 503 would be an answer)."""
    selector = selectors.DefaultSelector()
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
    readable = len(selector.select(timeout=0.5))
    selector.close()
    return len(sockets) - readable


def test_a_test_completes_while_1000_idle_connections_are_held(patient_daemon, enough_descriptors):
    pids = patient_daemon.child_pids()
    idle = open_idle_connections(patient_daemon.port)
    try:
        assert still_open(idle) == IDLE_CONNECTIONS, "every idle connection was accepted, none refused"
        done = subprocess.run([str(CLI), patient_daemon.url, "--schedule", "quick", "--json"],
                              capture_output=True, text=True, timeout=150)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["result"]["overall"]["grade"]
        assert still_open(idle) == IDLE_CONNECTIONS, "the idle connections were held, not shed, during the test"
        assert patient_daemon.health()[0] == 200
        assert patient_daemon.child_pids() == pids
    finally:
        for sock in idle:
            sock.close()
