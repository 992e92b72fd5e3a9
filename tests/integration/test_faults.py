"""Faults injected into a real daemon: a child killed or frozen, the disk gone bad.

(A hanging webhook receiver is covered by test_telemetry_webhook.py.)
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.task import deferLater
from twisted.logger import formatEvent, globalLogPublisher
from websockets.sync.client import connect

from daemon import SINGLE_USER_ONLY, start_daemon, wait_until
from lqos.client.http import ClientError
from lqos.client.prober import ChildProber
from wire import complete_test

CLI = Path(sys.executable).parent / "lqos-bufferbloat-test"
HIGH_LIMITS = "max_concurrent_tests_per_ip=1000\nmax_tests_per_hour_per_ip=100000\n" + SINGLE_USER_ONLY


def closed_port() -> int:
    """A loopback port nothing listens on (bound, never listened, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sessions_opened(daemon) -> float:
    """``lqos_tests_started_total`` from /metrics: how many sessions the daemon has opened."""
    status, _, body = daemon.get("/metrics")
    assert status == 200
    (line,) = [line for line in body.decode().splitlines() if line.startswith("lqos_tests_started_total ")]
    return float(line.split()[1])


def cli_into_the_upload_phase(daemon) -> subprocess.Popen:
    """A CLI test, 4 s after its session opened: the upload phase of the short schedule (4 to 7 s).

    Counted from the session, not from the CLI's launch: on a busy machine the
    interpreter alone can take seconds to start.  Not the quick schedule: its
    test clock starts once the CLI's prober has connected, which on a busy
    machine was more than its 1.5 s baseline after the session opened, and a
    kill meant for the upload then fell into the baseline.
    """
    before = sessions_opened(daemon)
    cli = subprocess.Popen([str(CLI), daemon.url, "--short", "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    assert wait_until(lambda: sessions_opened(daemon) > before, timeout=20)
    time.sleep(4.0)
    return cli


@pytest.fixture(scope="module")
def fault_daemon(tmp_path_factory):
    """One single-user daemon for the tests that kill a child: its supervisor restarts the
    child, so each test counts restarts from where the last one left them."""
    running = start_daemon(tmp_path_factory.mktemp("faults"), config_text=HIGH_LIMITS)
    yield running
    running.stop()


def children(daemon) -> dict[str, dict]:
    status, body = daemon.health()
    return {child["role"]: child for child in body["children"]}


def load_moves(daemon) -> bool:
    """A new test's load URLs serve a download and take an upload of 1 MB each."""
    status, started = daemon.post_json("/api/tests", {"schedule": "short"})
    assert status == 201
    with urllib.request.urlopen(started["download_url"] + "&bytes=1000000", timeout=10) as response:
        downloaded = len(response.read())
    upload = urllib.request.Request(started["upload_url"], data=b"\x5a" * 1_000_000, method="POST")
    with urllib.request.urlopen(upload, timeout=10) as response:
        uploaded = response.status
    return downloaded == 1_000_000 and uploaded == 200


def test_probe_killed_mid_test_fails_that_test_cleanly_and_the_next_completes(fault_daemon):
    daemon = fault_daemon
    old_pid, restarts = daemon.child_pids()["probe"], children(daemon)["probe"]["restarts"]
    cli = cli_into_the_upload_phase(daemon)
    os.kill(old_pid, signal.SIGKILL)
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 1 and out == ""
    assert err.startswith("lqos-bufferbloat-test: error: ") and err.count("\n") == 1, err
    assert wait_until(lambda: daemon.health()[0] == 200, timeout=10)
    assert children(daemon)["probe"]["pid"] != old_pid and children(daemon)["probe"]["restarts"] == restarts + 1
    # The next test has a probe to talk to, and its result is graded and stored.
    with connect(daemon.child_url("probe", "/ws/probe", websocket=True), open_timeout=5) as ws:
        ws.send(json.dumps({"seq": 1, "t": 1.0}))
        assert json.loads(ws.recv(timeout=5)) == {"seq": 1, "t": 1.0}
    status, result = complete_test(daemon)
    assert status == 200 and result["result"]["overall"]["grade"] and result.get("stored", True)


@pytest_twisted.ensureDeferred
async def test_a_probe_that_cannot_connect_fails_once_with_nothing_left_unhandled():
    """The CLI says what broke in one line; an unhandled Deferred error used to follow it."""
    from twisted.internet import reactor

    logged: list[dict] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        prober = ChildProber(reactor)
        with pytest.raises(ClientError, match="refused"):
            await prober.connect(f"ws://127.0.0.1:{closed_port()}/ws/probe")
        for _ in range(100):  # until the child has exited and its end is handled
            if prober.transport.pid is None:
                break
            await deferLater(reactor, 0.05)
        exited = prober.transport.pid is None
        del prober  # a Deferred that failed unseen says so when it is collected
        gc.collect()
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert exited
    assert [formatEvent(event) for event in logged if event.get("log_failure")] == []


def test_frozen_persona_is_reported_and_single_user_tests_go_on(daemon):
    pids = daemon.child_pids()
    os.kill(pids["streaming"], signal.SIGSTOP)
    try:
        cli = subprocess.Popen([str(CLI), daemon.url, "--schedule", "quick", "--json"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        started = time.monotonic()
        honest = wait_until(lambda: daemon.health()[0] == 503, timeout=8)
        assert honest and time.monotonic() - started < 8
        assert children(daemon)["streaming"]["state"] == "unresponsive"
        assert children(daemon)["probe"]["state"] == "running"
        assert complete_test(daemon)[0] == 200
        out, err = cli.communicate(timeout=60)  # the whole test ran beside the frozen persona
    finally:
        os.kill(pids["streaming"], signal.SIGCONT)
    assert wait_until(lambda: daemon.health()[0] == 200, timeout=5)
    assert cli.returncode == 0, err
    assert json.loads(out)["result"]["overall"]["grade"]
    assert daemon.child_pids() == pids  # frozen is not dead: nothing was restarted


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MiB tmpfs as the data directory of a daemon in tmp_path/"daemon" (needs root)."""
    mount_point = tmp_path / "daemon" / "var"  # where start_daemon puts the data; its log stays outside
    mount_point.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> Path:
    """Write until the disk is full (root ignores file modes, so chmod 0444 would prove nothing)."""
    filler = directory / "filler"
    try:
        with open(filler, "wb", buffering=0) as handle:
            while True:
                handle.write(b"\0" * 65536)
    except OSError:
        pass
    return filler


def test_full_disk_still_answers_the_result_and_is_logged(tmp_path, tiny_disk):
    daemon = start_daemon(tiny_disk.parent, config_text=HIGH_LIMITS)
    try:
        assert complete_test(daemon)[0] == 200  # the database works, and holds a WAL
        filler = fill(tiny_disk)
        status, result = complete_test(daemon)
        assert status == 200
        assert result["result"]["overall"]["grade"] and result["stored"] is False
        assert "storing the result of test" in daemon.log()
        assert daemon.health()[0] == 200
        filler.unlink()
        status, result = complete_test(daemon)  # space again: results are stored again
        assert status == 200 and "stored" not in result
        assert daemon.get_json_accepting(f"/r/{result['share_id']}")[0] == 200
    finally:
        daemon.stop()


def test_load_workers_killed_mid_test_fail_that_test_cleanly_and_come_back(fault_daemon):
    daemon = fault_daemon
    old_pids = {role: pid for role, pid in daemon.child_pids().items() if role.startswith("load-")}
    assert len(old_pids) >= 1
    restarts = {role: children(daemon)[role]["restarts"] for role in old_pids}
    cli = cli_into_the_upload_phase(daemon)
    for pid in old_pids.values():
        os.kill(pid, signal.SIGKILL)
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 1 and out == ""
    assert err.startswith("lqos-bufferbloat-test: error: ") and err.count("\n") == 1, err
    assert wait_until(lambda: daemon.health()[0] == 200, timeout=10)
    now = children(daemon)
    assert all(now[role]["pid"] != pid and now[role]["restarts"] == restarts[role] + 1
               for role, pid in old_pids.items())
    assert load_moves(daemon)  # the next test has its load
