"""The fleet's store and writer on a real PostgreSQL server and a real SQLite file."""

from __future__ import annotations

import json
import threading

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from lqos.telemetry.fleet import FleetStore, FleetUnavailable, FleetWriter, open_and_migrate, redacted
from lqos.telemetry.payloads import FLEET
from lqos.telemetry.pgschema import PG_SCHEMA_STEPS
from lqos.telemetry.store import SQLiteResultStore


def make_record(number: int, server_id: str = "pop-1", client_ip: str = "192.0.2.10",
                created_at: str | None = None) -> dict:
    return {
        "test_id": f"test-{server_id}-{number:05d}",
        "server_id": server_id,
        "share_id": f"share-{server_id}-{number:05d}",
        "created_at": created_at or f"2026-12-01T00:{number // 60 % 60:02d}:{number % 60:02d}+00:00",
        "client_ip": client_ip,
        "user_agent": "Mozilla/5.0 (fleet test)",
        "mode": "single_user",
        "duration_seconds": 15,
        "server_counters": {"download_bytes": 1000, "upload_bytes": 10},
        "result": {"overall": {"grade": "B"}},
    }


@pytest.fixture
def fleet(fleet_database):
    stores = []

    def opener(**options) -> FleetStore:
        store = FleetStore(fleet_database, reactor, options.get("max_tests", 1000), options.get("max_age_days", 0))
        stores.append(store)
        return store

    yield opener
    for store in stores:
        store.close()


def test_servers_starting_together_migrate_a_new_database_once(fleet_database, postgres):
    versions, errors = [], []

    def start():
        try:
            versions.append(open_and_migrate(fleet_database))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    servers = [threading.Thread(target=start) for _ in range(4)]
    for server in servers:
        server.start()
    for server in servers:
        server.join()
    assert errors == [] and versions == [len(PG_SCHEMA_STEPS)] * 4
    database = fleet_database.rsplit("/", 1)[1]
    assert postgres.execute("SELECT version FROM version", database) == [(len(PG_SCHEMA_STEPS),)]


@pytest_twisted.ensureDeferred
async def test_a_test_written_twice_is_stored_once_and_answers_name_their_server(fleet):
    store = fleet()
    await store.migrate()
    north = [json.dumps(make_record(n, "north", client_ip="198.51.100.7")) for n in range(3)]
    south = [json.dumps(make_record(n, "south", client_ip="::ffff:198.51.100.7")) for n in range(2)]
    assert await store.write(north) == 3
    assert await store.write(south + north[:2]) == 2  # a retried batch: its first write committed
    tests = await store.for_client("198.51.100.7")
    assert [(t["server_id"], t["test_id"]) for t in tests] == [
        ("north", "test-north-00002"), ("south", "test-south-00001"), ("north", "test-north-00001"),
        ("south", "test-south-00000"), ("north", "test-north-00000")]
    assert (await store.by_test_id("test-south-00001"))["server_id"] == "south"
    assert (await store.by_share_id("share-north-00000"))["test_id"] == "test-north-00000"
    stats = await store.stats()
    assert stats["count"] == 5 and stats["servers"] == {"north": 3, "south": 2}
    assert stats["grades"]["B"] == 5


@pytest_twisted.ensureDeferred
async def test_retention_is_fleet_wide_by_count_and_by_age(fleet):
    store = fleet(max_tests=4, max_age_days=30)
    await store.migrate()
    old = make_record(0, "north", created_at="2000-01-01T00:00:00+00:00")
    await store.write([json.dumps(old)] + [json.dumps(make_record(n, server)) for n in range(1, 4)
                                           for server in ("north", "south")])
    assert await store.trim() == 3  # the one older than 30 days, then the oldest two beyond 4
    kept = await store.recent(100)
    assert len(kept) == 4 and old["test_id"] not in {t["test_id"] for t in kept}


@pytest_twisted.ensureDeferred
async def test_a_database_a_newer_release_migrated_is_refused_saying_so(fleet, postgres):
    store = fleet()
    await store.migrate()
    postgres.execute("UPDATE version SET version = 99", store.url.rsplit("/", 1)[1])
    with pytest.raises(FleetUnavailable, match="schema version 99 is newer than this program knows"):
        await store.migrate()


@pytest_twisted.ensureDeferred
async def test_an_unreachable_database_is_a_clear_error_without_its_password(postgres):
    url = postgres.url("nowhere", password="s3cret-password")
    store = FleetStore(url.replace(str(postgres.port), "1"), reactor, 10, 0)
    try:
        with pytest.raises(FleetUnavailable, match="fleet database is unreachable") as raised:
            await store.recent(10)
        assert "s3cret" not in str(raised.value)
    finally:
        store.close()
    assert "s3cret" not in redacted(url) and redacted(url).startswith("postgresql://lqos:***@127.0.0.1")


@pytest_twisted.ensureDeferred
async def test_the_writer_moves_the_local_backlog_in_order_and_forgets_only_what_committed(tmp_path, fleet, postgres):
    local = SQLiteResultStore.open(str(tmp_path), reactor, targets=(FLEET,))
    store = fleet()
    clock = task.Clock()
    writer = FleetWriter(local, store, clock, batch=7)
    try:
        for number in range(30):
            await local.save(make_record(number, "north"))
        writer.startService()  # the first drain runs at once
        await _drained(writer)
        assert writer.backlog == 0 and writer.last_error is None
        database = store.url.rsplit("/", 1)[1]
        ids = postgres.execute("SELECT test_id FROM tests ORDER BY id", database)
        assert [row[0] for row in ids] == [f"test-north-{n:05d}" for n in range(30)]  # in order, once each

        postgres.stop()
        await local.save(make_record(30, "north"))
        writer.wake()
        await _drained(writer)
        assert writer.backlog == 1 and "unreachable" in writer.last_error
        postgres.start()
        # The first drain after the restart can still fail: in one make test the backlog stayed
        # at 1 after it (not reproduced since, alone or beside busy loops; a pooled connection the
        # restart ended fails once before it is replaced).  What must hold is that the writer's
        # own retries, each waiting on its clock, empty the backlog.
        for _ in range(6):
            clock.advance(5)  # past any retry delay (1, 2, 4, then 5 s)
            writer.wake()
            await _drained(writer)
            if writer.backlog == 0:
                break
        assert writer.backlog == 0 and writer.last_error is None
        assert postgres.execute("SELECT count(*) FROM tests", database) == [(31,)]
    finally:
        await writer.stopService()
        local.close()


async def _drained(writer: FleetWriter) -> None:
    """Until the drain in progress (if any) has finished: the writer's own clock is fake, the database real."""
    while writer._busy is not None:
        await task.deferLater(reactor, 0.02, lambda: None)


def test_importing_a_servers_file_twice_adds_its_tests_once(tmp_path, postgres, fleet_database, capsys):
    """A file from before tests named their server (schema 1) and a current one, imported twice each."""
    import sqlite3

    from lqos.telemetry import fleet_import
    from lqos.telemetry.queries import INSERT_TEST, TEST_COLUMNS, test_row
    from lqos.telemetry.schema import SCHEMA_STEPS, migrate

    old = tmp_path / "old.sqlite3"
    with sqlite3.connect(old) as connection:
        migrate(connection, SCHEMA_STEPS[:1])
        record = make_record(1, "unused")
        del record["server_id"]
        row = dict(zip(TEST_COLUMNS, test_row(record)))
        del row["server_id"]  # no such column before schema step 2
        connection.execute(f"INSERT INTO tests ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                           tuple(row.values()))
    current = tmp_path / "var"
    current.mkdir()
    store = SQLiteResultStore.open(str(current), reactor)
    store.close()
    with sqlite3.connect(current / "telemetry.sqlite3") as connection:
        for number in range(1200):  # more than one batch
            connection.execute(INSERT_TEST, test_row(make_record(number, "south")))

    def run(path) -> str:
        assert fleet_import.main([str(path), fleet_database, "--server-id", "north"]) == 0
        return capsys.readouterr().out

    assert "imported 1 tests" in run(old)
    assert "imported 1200 tests" in run(current / "telemetry.sqlite3")
    assert "imported 0 tests" in run(current / "telemetry.sqlite3")
    assert "imported 0 tests from" in run(old)
    database = fleet_database.rsplit("/", 1)[1]
    assert postgres.execute("SELECT server_id, count(*) FROM tests GROUP BY server_id ORDER BY 1", database) == [
        ("north", 1), ("south", 1200)]
    (record,) = postgres.execute("SELECT record FROM tests WHERE server_id = 'north'", database)[0]
    assert json.loads(record)["server_id"] == "north"


def test_the_import_refuses_what_it_cannot_read_with_a_clear_message(tmp_path, fleet_database):
    import subprocess
    import sys

    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("not a database")
    for argv, message in (([str(not_sqlite), fleet_database], "is not an lqos-bufferbloat telemetry file"),
                          ([str(tmp_path / "missing.sqlite3"), fleet_database], "no such file"),
                          ([str(not_sqlite), "mysql://x/y"], "must be a postgresql:// URL"),
                          ([str(not_sqlite), fleet_database, "--server-id", "a b"], "must be 1 to 64")):
        done = subprocess.run([sys.executable, "-m", "lqos.telemetry.fleet_import", *argv],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and message in done.stderr, done.stderr
