"""kill -9 during a burst of submissions: every result answered 200 is in the database afterwards."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

from daemon import SINGLE_USER_ONLY, start_daemon
from lqos.telemetry.store import DATABASE_FILE
from wire import complete_test

KEY = "durability-test-key-0123456789"
CONFIG = f"telemetry_api_key={KEY}\nmax_concurrent_tests_per_ip=1000\nmax_tests_per_hour_per_ip=100000\n{SINGLE_USER_ONLY}"
CLIENTS = 3
ANSWERED_BEFORE_KILL = 40
BURST_TIMEOUT_SECONDS = 20.0


def submit_until_refused(daemon, answered: list[str], lock: threading.Lock) -> None:
    """One client submitting as fast as it can, until the daemon is gone."""
    while True:
        try:
            status, result = complete_test(daemon)
        except (OSError, ValueError, AssertionError):
            return
        if status == 200:
            with lock:
                answered.append(result["test_id"])


def test_every_answered_result_survives_kill_9_during_a_burst(tmp_path):
    daemon = start_daemon(tmp_path, config_text=CONFIG)
    answered: list[str] = []
    lock = threading.Lock()
    clients = [threading.Thread(target=submit_until_refused, args=(daemon, answered, lock)) for _ in range(CLIENTS)]
    try:
        for client in clients:
            client.start()
        deadline = time.monotonic() + BURST_TIMEOUT_SECONDS
        while len(answered) < ANSWERED_BEFORE_KILL and time.monotonic() < deadline:
            time.sleep(0.01)
        daemon.process.kill()  # mid-burst: requests are in flight
        daemon.process.wait()
    finally:
        daemon.stop()
        for client in clients:
            client.join(timeout=15)
    assert len(answered) >= ANSWERED_BEFORE_KILL

    daemon = start_daemon(tmp_path, config_text=CONFIG)
    try:
        status, _, body = daemon.request("GET", "/api/telemetry/recent?limit=1000",
                                         headers={"Authorization": f"Bearer {KEY}"})
        stored = {test["test_id"] for test in json.loads(body)["tests"]}
        assert status == 200 and set(answered) <= stored
    finally:
        daemon.stop()
    with sqlite3.connect(daemon.data_dir / DATABASE_FILE) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        in_file = {row[0] for row in connection.execute("SELECT test_id FROM tests")}
    assert set(answered) <= in_file
