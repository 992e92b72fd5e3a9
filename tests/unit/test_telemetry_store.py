"""SQLiteResultStore on a real file: schema steps, saving, trimming, the outbox."""

from __future__ import annotations

import json
import sqlite3

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from lqos.telemetry.payloads import CENTRAL, WEBHOOK
from lqos.telemetry.schema import SCHEMA_STEPS, SchemaError, migrate, open_and_migrate, schema_version
from lqos.telemetry.store import DATABASE_FILE, DELIVERY_EXPIRES_AFTER, SQLiteResultStore


def make_record(number: int, client_ip: str = "192.0.2.10", grade: str | None = "B") -> dict:
    """A record shaped as MainApp._record builds it, numbered so order is visible."""
    return {
        "test_id": f"test-{number:05d}",
        "share_id": f"share-{number:05d}",
        "created_at": f"2025-01-01T00:{number // 60 % 60:02d}:{number % 60:02d}+00:00",
        "client_ip": client_ip,
        "user_agent": "Mozilla/5.0 (unit test)",
        "mode": "single_user",
        "schedule": "short",
        "duration_seconds": 15,
        "streams": {"download": 4, "upload": 3},
        "server_counters": {"download_bytes": 1000 * number, "upload_bytes": 10 * number},
        "result": {"overall": {"grade": grade, "phase": "download"}, "baseline": {"median_ms": 10.0}},
    }


@pytest.fixture
def open_store(tmp_path):
    """Opens stores on tmp_path and closes every one at the end (their pools own threads)."""
    stores = []

    def opener(**options) -> SQLiteResultStore:
        store = SQLiteResultStore.open(str(tmp_path), reactor, **options)
        stores.append(store)
        return store

    yield opener
    for store in stores:
        store.close()


def rows(tmp_path, sql: str) -> list[tuple]:
    with sqlite3.connect(tmp_path / DATABASE_FILE) as connection:
        return connection.execute(sql).fetchall()


# --- schema ---


def test_new_database_gets_every_step_and_wal(tmp_path):
    path = str(tmp_path / DATABASE_FILE)
    assert open_and_migrate(path) == len(SCHEMA_STEPS)
    assert open_and_migrate(path) == len(SCHEMA_STEPS)  # idempotent at start
    assert rows(tmp_path, "SELECT version FROM version") == [(len(SCHEMA_STEPS),)]
    assert rows(tmp_path, "PRAGMA journal_mode") == [("wal",)]


def test_migration_applies_only_the_missing_steps(tmp_path):
    connection = sqlite3.connect(tmp_path / "m.sqlite3")
    step_one = "CREATE TABLE a (x INTEGER);"
    step_two = "ALTER TABLE a ADD COLUMN y TEXT; INSERT INTO a (x, y) VALUES (1, 'migrated');"
    assert migrate(connection, (step_one,)) == 1
    assert migrate(connection, (step_one, step_two)) == 2
    assert migrate(connection, (step_one, step_two)) == 2
    assert connection.execute("SELECT x, y FROM a").fetchall() == [(1, "migrated")]


def test_failed_step_leaves_the_previous_version(tmp_path):
    connection = sqlite3.connect(tmp_path / "m.sqlite3")
    migrate(connection, ("CREATE TABLE a (x INTEGER);",))
    with pytest.raises(SchemaError, match="schema step 2 failed"):
        migrate(connection, ("CREATE TABLE a (x INTEGER);", "CREATE TABLE b (y); NOT SQL;"))
    assert schema_version(connection) == 1
    assert connection.execute("SELECT name FROM sqlite_master WHERE name = 'b'").fetchall() == []


def test_database_from_a_newer_program_is_refused(tmp_path):
    connection = sqlite3.connect(tmp_path / "m.sqlite3")
    migrate(connection, ("CREATE TABLE a (x);", "CREATE TABLE b (y);"))
    with pytest.raises(SchemaError, match="newer than this program"):
        migrate(connection, ("CREATE TABLE a (x);",))


def test_a_file_that_is_not_sqlite_is_a_schema_error(tmp_path):
    (tmp_path / DATABASE_FILE).write_bytes(b"this is not a database" * 100)
    with pytest.raises(SchemaError, match="not a usable SQLite database"):
        open_and_migrate(str(tmp_path / DATABASE_FILE))


# --- saving and reading ---


@pytest_twisted.ensureDeferred
async def test_saved_records_are_found_by_share_id_client_and_recency(open_store):
    store = open_store()
    await store.save(make_record(1, "192.0.2.10"))
    await store.save(make_record(2, "2001:DB8:0:0::7"))
    await store.save(make_record(3, "::ffff:192.0.2.10", grade=None))
    assert (await store.by_share_id("share-00002"))["client_ip"] == "2001:DB8:0:0::7"
    assert await store.by_share_id("nothing") is None
    assert [r["test_id"] for r in await store.recent(2)] == ["test-00003", "test-00002"]
    assert [r["test_id"] for r in await store.for_client("192.0.2.10")] == ["test-00003", "test-00001"]
    assert [r["test_id"] for r in await store.for_client("2001:db8::7")] == ["test-00002"]
    stats = await store.stats()
    assert stats["count"] == 3 and stats["max_kept"] == 1000
    assert stats["grades"]["B"] == 2 and stats["grades"]["ungraded"] == 1
    assert stats["oldest"] == "2025-01-01T00:00:01+00:00" and stats["newest"] == "2025-01-01T00:00:03+00:00"


@pytest_twisted.ensureDeferred
async def test_indexed_columns_hold_normalised_ip_grade_and_counters(open_store, tmp_path):
    store = open_store()
    await store.save(make_record(7, "::ffff:198.51.100.4"))
    assert rows(tmp_path, "SELECT client_ip, grade, download_bytes, upload_bytes, user_agent FROM tests") == [
        ("198.51.100.4", "B", 7000, 70, "Mozilla/5.0 (unit test)")]
    stored = json.loads(rows(tmp_path, "SELECT record FROM tests")[0][0])
    assert stored["result"]["baseline"]["median_ms"] == 10.0


@pytest_twisted.ensureDeferred
async def test_only_the_newest_max_tests_are_kept(open_store):
    store = open_store(max_tests=10)
    for number in range(25):
        await store.save(make_record(number))
    kept = await store.recent(1000)
    assert [r["test_id"] for r in kept] == [f"test-{n:05d}" for n in range(24, 14, -1)]
    assert (await store.stats())["count"] == 10


@pytest_twisted.ensureDeferred
async def test_each_save_queues_one_row_per_target_with_its_body(open_store, tmp_path):
    saved = []
    store = open_store(targets=(WEBHOOK, CENTRAL), on_saved=lambda: saved.append(True))
    await store.save(make_record(1, "203.0.113.9"))
    assert saved == [True]
    queued = {target: bytes(body) for target, body in rows(tmp_path, "SELECT target, body FROM outbox")}
    assert json.loads(queued[WEBHOOK])["client_ip"] == "203.0.113.9"
    assert b"203.0.113.9" not in queued[CENTRAL] and b"Mozilla" not in queued[CENTRAL]
    assert (await store.stats())["outbox"] == {WEBHOOK: 1, CENTRAL: 1}


@pytest_twisted.ensureDeferred
async def test_no_target_configured_queues_nothing(open_store, tmp_path):
    store = open_store()
    await store.save(make_record(1))
    assert rows(tmp_path, "SELECT COUNT(*) FROM outbox") == [(0,)]


@pytest_twisted.ensureDeferred
async def test_a_failed_insert_queues_no_delivery(open_store, tmp_path):
    """The outbox row and the test row commit together or not at all."""
    store = open_store(targets=(WEBHOOK,))
    await store.save(make_record(1))
    duplicate = make_record(1)
    duplicate["share_id"] = "another-share"
    with pytest.raises(sqlite3.IntegrityError):
        await store.save(duplicate)
    assert rows(tmp_path, "SELECT COUNT(*) FROM outbox") == [(1,)]
    assert rows(tmp_path, "SELECT COUNT(*) FROM tests") == [(1,)]


@pytest_twisted.ensureDeferred
async def test_trimming_tests_keeps_deliveries_still_owed(open_store, tmp_path):
    store = open_store(max_tests=2, targets=(WEBHOOK,))
    for number in range(5):
        await store.save(make_record(number))
    assert rows(tmp_path, "SELECT COUNT(*) FROM tests") == [(2,)]
    assert rows(tmp_path, "SELECT COUNT(*) FROM outbox") == [(5,)]


@pytest_twisted.ensureDeferred
async def test_outbox_tick_hands_out_due_rows_and_drops_expired_ones(open_store):
    store = open_store(targets=(WEBHOOK,))
    for number in range(3):
        await store.save(make_record(number))
    tick = await store.outbox_tick((WEBHOOK,), limit=2, skip=())
    assert [row.test_id for row in tick.due] == ["test-00000", "test-00001"]
    first = tick.due[0]
    await store.retry_later(first.id, 1, reactor.seconds() + 3600, "HTTP 503")
    await store.delivered(tick.due[1].id)
    tick = await store.outbox_tick((WEBHOOK,), limit=4, skip=())
    assert [row.test_id for row in tick.due] == ["test-00002"]
    tick = await store.outbox_tick((WEBHOOK,), limit=4, skip=(tick.due[0].id,))
    assert tick.due == () and tick.depth[WEBHOOK] == 2
    assert (await store.outbox_tick((CENTRAL,), limit=4, skip=())).due == ()


@pytest_twisted.ensureDeferred
async def test_deliveries_expire_a_day_after_the_result(tmp_path):
    clock = Clock()
    store = SQLiteResultStore.open(str(tmp_path), clock, targets=(WEBHOOK,))
    try:
        await store.save(make_record(1))
        clock.advance(DELIVERY_EXPIRES_AFTER - 1)
        assert (await store.outbox_tick((WEBHOOK,), 4, ())).expired == 0
        clock.advance(1)
        tick = await store.outbox_tick((WEBHOOK,), 4, ())
        assert tick.expired == 1 and tick.due == () and tick.depth[WEBHOOK] == 0
    finally:
        store.close()
