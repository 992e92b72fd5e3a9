"""``SQLiteResultStore``: finished tests and their outbox, in one SQLite file.

Everything goes through one ``adbapi`` connection (``cp_max=1``): SQLite has
one writer anyway, and a single thread keeps every interaction in the order
it was asked for.  A result is answered only when its transaction has
committed, and that same transaction queues its webhook and central
deliveries and trims the table to the newest ``max_tests``: there is no
moment at which a stored result has no delivery queued, or the table holds
more than it should.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable, Sequence

from twisted.enterprise import adbapi
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from lqos.measure.grading import GRADES
from lqos.measure.units import HOURS
from lqos.net.clientip import address_of
from lqos.results import IResultStore
from lqos.telemetry.payloads import BODY_BUILDERS, CENTRAL, WEBHOOK
from lqos.telemetry.schema import configure_connection, open_and_migrate

log = Logger()

DATABASE_FILE = "telemetry.sqlite3"
DELIVERY_EXPIRES_AFTER = 24 * HOURS
MAX_OUTBOX_ROWS = 100_000  # a receiver down for a day must not fill the disk
MAX_ERROR_CHARS = 500
UNGRADED = "ungraded"


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


def normalise_ip(text: str) -> str:
    """The one spelling of an address (IPv4-mapped IPv6 as IPv4); ValueError if it is none."""
    address = address_of(text)
    if address is None:
        raise ValueError(f"{text!r} is not an IP address")
    return str(address)


def _storable_ip(text: str) -> str:
    """Normalised when it is an address; kept as it is otherwise (say, a UNIX socket peer)."""
    try:
        return normalise_ip(text)
    except ValueError:
        return text


def database_path(data_dir: str) -> str:
    return os.path.join(data_dir, DATABASE_FILE)


def open_pool(path: str) -> adbapi.ConnectionPool:
    """Migrate the file, then open the single-connection pool the store runs on."""
    open_and_migrate(path)
    return adbapi.ConnectionPool(
        "sqlite3", path, check_same_thread=False, cp_min=1, cp_max=1,
        cp_openfun=configure_connection,
    )


def _overall_grade(record: dict) -> str | None:
    return ((record.get("result") or {}).get("overall") or {}).get("grade")


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

    @classmethod
    def open(cls, data_dir: str, clock: IReactorTime, **options) -> "SQLiteResultStore":
        return cls(open_pool(database_path(data_dir)), clock, **options)

    def close(self) -> None:
        self._pool.close()

    # --- IResultStore ---

    def save(self, record: dict) -> defer.Deferred:
        """Store *record* and queue its deliveries; fires once both are committed."""
        bodies = [(target, BODY_BUILDERS[target](record)) for target in self._targets]
        d = self._pool.runInteraction(self._insert, record, bodies, self._clock.seconds())
        d.addCallback(self._saved)
        return d

    def by_share_id(self, share_id: str) -> defer.Deferred:
        d = self._pool.runQuery("SELECT record FROM tests WHERE share_id = ?", (share_id,))
        return d.addCallback(lambda rows: json.loads(rows[0][0]) if rows else None)

    # --- support queries ---

    def recent(self, limit: int) -> defer.Deferred:
        """The newest *limit* records, newest first."""
        d = self._pool.runQuery("SELECT record FROM tests ORDER BY id DESC LIMIT ?", (limit,))
        return d.addCallback(_records)

    def for_client(self, client_ip: str) -> defer.Deferred:
        """Every kept record of one client address, newest first."""
        d = self._pool.runQuery("SELECT record FROM tests WHERE client_ip = ? ORDER BY id DESC",
                                (normalise_ip(client_ip),))
        return d.addCallback(_records)

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

    # --- interactions: these run in the pool's one thread ---

    def _insert(self, txn, record: dict, bodies: list[tuple[str, bytes]], now: float) -> int:
        counters = record.get("server_counters") or {}
        txn.execute(
            "INSERT INTO tests (test_id, share_id, created_at, client_ip, user_agent, mode,"
            " duration_seconds, grade, download_bytes, upload_bytes, record)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record["test_id"], record["share_id"], record["created_at"],
             _storable_ip(record["client_ip"]), record.get("user_agent") or "", record["mode"],
             record.get("duration_seconds") or 0, _overall_grade(record),
             int(counters.get("download_bytes") or 0), int(counters.get("upload_bytes") or 0),
             json.dumps(record, separators=(",", ":"))))
        for target, body in bodies:
            txn.execute(
                "INSERT INTO outbox (target, test_id, body, created_at, expires_at, next_attempt_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (target, record["test_id"], body, now, now + DELIVERY_EXPIRES_AFTER, now))
        _keep_newest(txn, "tests", self.max_tests)
        return _keep_newest(txn, "outbox", MAX_OUTBOX_ROWS)

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
        txn.execute("SELECT COUNT(*), MIN(created_at), MAX(created_at) FROM tests")
        count, oldest, newest = txn.fetchone()
        txn.execute("SELECT grade, COUNT(*) FROM tests GROUP BY grade")
        grades = dict.fromkeys((*GRADES, UNGRADED), 0)
        for grade, number in txn.fetchall():
            grades[grade if grade in grades else UNGRADED] += number
        return {"count": count, "max_kept": self.max_tests, "oldest": oldest, "newest": newest,
                "grades": grades, "outbox": _outbox_depth(txn)}

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
        return OutboxTick(tuple(due), expired, _outbox_depth(txn))


def _records(rows) -> list[dict]:
    return [json.loads(row[0]) for row in rows]


def _keep_newest(txn, table: str, keep: int) -> int:
    """Delete every row older than the newest *keep* (ids only grow: AUTOINCREMENT); return how many."""
    txn.execute(f"DELETE FROM {table} WHERE id <= (SELECT id FROM {table} ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (keep,))
    return max(0, txn.rowcount)


def _outbox_depth(txn) -> dict[str, int]:
    txn.execute("SELECT target, COUNT(*) FROM outbox GROUP BY target")
    return {WEBHOOK: 0, CENTRAL: 0, **dict(txn.fetchall())}
