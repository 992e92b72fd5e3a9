"""``SQLiteResultStore``: finished tests and their outbox, in one SQLite file.

Everything goes through one ``adbapi`` connection (``cp_max=1``): SQLite has
one writer anyway, and a single thread keeps every interaction in the order
it was asked for.  A result is answered only when its transaction has
committed, and that same transaction queues its webhook and central
deliveries and trims the table to the newest ``max_tests``: there is no
moment at which a stored result has no delivery queued, or the table holds
more than it should.

In a fleet, the result owed to the shared PostgreSQL database is one more
outbox row (target ``fleet``, the record's JSON as its body, no expiry),
which ``lqos.telemetry.fleet.FleetWriter`` works off in order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

from twisted.enterprise import adbapi
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from lqos.measure.units import HOURS
from lqos.results import IResultStore
from lqos.telemetry.payloads import BODY_BUILDERS, CENTRAL, FLEET, WEBHOOK
from lqos.telemetry.queries import INSERT_TEST, TestQueries, for_paramstyle, keep_newest, test_row
from lqos.telemetry.schema import configure_connection, open_and_migrate

log = Logger()

DATABASE_FILE = "telemetry.sqlite3"
DELIVERY_EXPIRES_AFTER = 24 * HOURS
# A test owed to the fleet's database waits for it however long it is away:
# the result itself is what is owed, not a notification about it.
FLEET_EXPIRES_AFTER = float("inf")
MAX_OUTBOX_ROWS = 100_000  # a receiver down for a day must not fill the disk
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class OutboxRow:
    """One owed delivery, as the outbox service sees it."""

    id: int
    target: str
    test_id: str
    body: bytes
    attempts: int
    expires_at: float


@dataclass(frozen=True)
class OutboxTick:
    """What one look at the outbox found: rows due, rows expired, depth by target."""

    due: tuple[OutboxRow, ...]
    expired: int
    depth: dict[str, int]


def database_path(data_dir: str) -> str:
    return os.path.join(data_dir, DATABASE_FILE)


def open_pool(path: str) -> adbapi.ConnectionPool:
    """Migrate the file, then open the single-connection pool the store runs on."""
    open_and_migrate(path)
    return adbapi.ConnectionPool(
        "sqlite3", path, check_same_thread=False, cp_min=1, cp_max=1,
        cp_openfun=configure_connection,
    )


@implementer(IResultStore)
class SQLiteResultStore:
    """The daemon's result store; see the module docstring for its guarantees."""

    def __init__(self, pool: adbapi.ConnectionPool, clock: IReactorTime, max_tests: int = 1000,
                 targets: Sequence[str] = (), on_saved: Callable[[], None] = lambda: None):
        self._pool = pool
        self._clock = clock
        self.max_tests = max_tests
        self._targets = tuple(targets)
        self._on_saved = on_saved
        self._queries = TestQueries(pool, lambda statement: for_paramstyle(statement, "qmark"))

    @classmethod
    def open(cls, data_dir: str, clock: IReactorTime, **options) -> "SQLiteResultStore":
        return cls(open_pool(database_path(data_dir)), clock, **options)

    def close(self) -> None:
        self._pool.close()

    def claim_unnamed_tests(self, server_id: str) -> defer.Deferred:
        """Name *server_id* on the tests stored before tests carried their server (schema step 2)."""
        return self._pool.runOperation(
            "UPDATE tests SET server_id = ?, record = json_set(record, '$.server_id', ?) WHERE server_id = ''",
            (server_id, server_id))

    # --- IResultStore ---

    def save(self, record: dict) -> defer.Deferred:
        """Store *record* and queue its deliveries; fires once both are committed."""
        bodies = [(target, BODY_BUILDERS[target](record)) for target in self._targets]
        d = self._pool.runInteraction(self._insert, record, bodies, self._clock.seconds())
        d.addCallback(self._saved)
        return d

    def by_share_id(self, share_id: str) -> defer.Deferred:
        return self._queries.by_share_id(share_id)

    # --- support queries ---

    def by_test_id(self, test_id: str) -> defer.Deferred:
        return self._queries.by_test_id(test_id)

    def recent(self, limit: int) -> defer.Deferred:
        """The newest *limit* records, newest first."""
        return self._queries.recent(limit)

    def for_client(self, client_ip: str) -> defer.Deferred:
        """Every kept record of one client address, newest first."""
        return self._queries.for_client(client_ip)

    def stats(self) -> defer.Deferred:
        return self._pool.runInteraction(self._stats)

    # --- the outbox ---

    def outbox_tick(self, targets: Sequence[str], limit: int, skip: Sequence[int]) -> defer.Deferred:
        """Drop expired deliveries, then fetch up to *limit* due ones (not in *skip*)."""
        return self._pool.runInteraction(self._outbox_tick, tuple(targets), limit, frozenset(skip),
                                         self._clock.seconds())

    def delivered(self, row_id: int) -> defer.Deferred:
        return self._pool.runOperation("DELETE FROM outbox WHERE id = ?", (row_id,))

    def retry_later(self, row_id: int, attempts: int, next_attempt_at: float, error: str) -> defer.Deferred:
        return self._pool.runOperation(
            "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
            (attempts, next_attempt_at, error[:MAX_ERROR_CHARS], row_id))

    # --- the fleet's lane of the outbox: in order, in batches (lqos/telemetry/fleet.py) ---

    def fleet_batch(self, limit: int) -> defer.Deferred:
        """The oldest *limit* tests owed to the fleet's database: (row ids, record JSON texts)."""
        d = self._pool.runQuery("SELECT id, body FROM outbox WHERE target = ? ORDER BY id LIMIT ?", (FLEET, limit))
        return d.addCallback(lambda rows: ([row[0] for row in rows], [bytes(row[1]).decode("utf-8") for row in rows]))

    def fleet_written(self, row_ids: Sequence[int]) -> defer.Deferred:
        """Forget tests the fleet's database has committed."""
        return self._pool.runInteraction(self._delete_rows, tuple(row_ids))

    def fleet_backlog(self) -> defer.Deferred:
        d = self._pool.runQuery("SELECT COUNT(*) FROM outbox WHERE target = ?", (FLEET,))
        return d.addCallback(lambda rows: rows[0][0])

    # --- interactions: these run in the pool's one thread ---

    def _insert(self, txn, record: dict, bodies: list[tuple[str, bytes]], now: float) -> int:
        txn.execute(INSERT_TEST, test_row(record))
        for target, body in bodies:
            lifetime = FLEET_EXPIRES_AFTER if target == FLEET else DELIVERY_EXPIRES_AFTER
            txn.execute(
                "INSERT INTO outbox (target, test_id, body, created_at, expires_at, next_attempt_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (target, record["test_id"], body, now, now + lifetime, now))
        txn.execute(keep_newest("tests"), (self.max_tests,))
        txn.execute(keep_newest("outbox"), (MAX_OUTBOX_ROWS,))
        return max(0, txn.rowcount)

    def _saved(self, dropped_deliveries: int) -> None:
        """The result is durable; nothing here may fail the customer's answer."""
        if dropped_deliveries:
            log.warn("outbox full ({limit} rows): dropped the {count} oldest undelivered reports",
                     limit=MAX_OUTBOX_ROWS, count=dropped_deliveries)
        try:
            self._on_saved()
        except Exception:
            log.failure("waking the outbox failed")

    def _stats(self, txn) -> dict:
        return {**self._queries.summary(txn), "max_kept": self.max_tests, "outbox": self._outbox_depth(txn)}

    @staticmethod
    def _delete_rows(txn, row_ids: tuple[int, ...]) -> None:
        txn.executemany("DELETE FROM outbox WHERE id = ?", [(row_id,) for row_id in row_ids])

    def _outbox_tick(self, txn, targets: tuple[str, ...], limit: int, skip: frozenset, now: float) -> OutboxTick:
        txn.execute("DELETE FROM outbox WHERE expires_at <= ?", (now,))
        expired = max(0, txn.rowcount)
        due: list[OutboxRow] = []
        if targets and limit > 0:
            marks = ",".join("?" * len(targets))
            txn.execute(
                f"SELECT id, target, test_id, body, attempts, expires_at FROM outbox"
                f" WHERE next_attempt_at <= ? AND target IN ({marks}) ORDER BY next_attempt_at, id LIMIT ?",
                (now, *targets, limit + len(skip)))
            due = [OutboxRow(row[0], row[1], row[2], bytes(row[3]), row[4], row[5])
                   for row in txn.fetchall() if row[0] not in skip][:limit]
        return OutboxTick(tuple(due), expired, self._outbox_depth(txn))

    def _outbox_depth(self, txn) -> dict[str, int]:
        """Rows owed per target: webhook and central always, and the fleet's lane where there is one."""
        txn.execute("SELECT target, COUNT(*) FROM outbox GROUP BY target")
        return {WEBHOOK: 0, CENTRAL: 0, **dict.fromkeys(self._targets, 0), **dict(txn.fetchall())}
