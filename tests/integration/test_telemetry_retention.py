"""1500 results into the real database file: exactly the newest 1000 remain, and the daemon says so."""

from __future__ import annotations

import json
import sqlite3

import pytest_twisted
from twisted.internet import reactor

from daemon import SINGLE_USER_ONLY, start_daemon
from lqos.telemetry.store import DATABASE_FILE, SQLiteResultStore

KEY = "retention-test-key-0123456789"
STORED = 1500
KEPT = 1000


def numbered_record(number: int) -> dict:
    return {
        "test_id": f"bulk-{number:05d}", "share_id": f"share-{number:05d}",
        "created_at": f"2025-01-01T{number // 3600:02d}:{number // 60 % 60:02d}:{number % 60:02d}+00:00",
        "client_ip": f"198.51.100.{number % 250}", "user_agent": "bulk-loader", "mode": "single_user",
        "schedule": "short", "duration_seconds": 15, "streams": {"download": 1, "upload": 1},
        "server_counters": {"download_bytes": number, "upload_bytes": number},
        "result": {"overall": {"grade": "A" if number % 2 else "C"}},
    }


@pytest_twisted.ensureDeferred
async def test_only_the_newest_thousand_of_fifteen_hundred_remain(tmp_path):
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    store = SQLiteResultStore.open(str(data_dir), reactor, max_tests=KEPT)
    try:
        for number in range(STORED):
            await store.save(numbered_record(number))
    finally:
        store.close()
    with sqlite3.connect(data_dir / DATABASE_FILE) as connection:
        assert connection.execute("SELECT MIN(test_id), MAX(test_id), COUNT(*) FROM tests").fetchone() == (
            f"bulk-{STORED - KEPT:05d}", f"bulk-{STORED - 1:05d}", KEPT)

    daemon = start_daemon(tmp_path, config_text=f"telemetry_api_key={KEY}\n{SINGLE_USER_ONLY}")
    try:
        auth = {"Authorization": f"Bearer {KEY}"}
        stats = json.loads(daemon.request("GET", "/api/telemetry/stats", headers=auth)[2])
        assert stats["count"] == KEPT and stats["max_kept"] == KEPT
        assert stats["oldest"] == numbered_record(STORED - KEPT)["created_at"]
        assert stats["newest"] == numbered_record(STORED - 1)["created_at"]
        assert stats["grades"]["A"] == stats["grades"]["C"] == KEPT // 2
        recent = json.loads(daemon.request("GET", "/api/telemetry/recent?limit=1000", headers=auth)[2])
        assert [t["test_id"] for t in recent["tests"]] == [f"bulk-{n:05d}" for n in range(STORED - 1, STORED - KEPT - 1, -1)]
    finally:
        daemon.stop()
