"""A fleet of test servers sharing one PostgreSQL database of tests.

Each server still stores a finished test in its own SQLite file first, in
the transaction that answers the customer, together with an outbox row
owed to the fleet (``store.py``).  :class:`FleetWriter` then moves those
rows into PostgreSQL, oldest first, in batches: a batch is deleted locally
only after PostgreSQL has committed it, and a test written twice (the
daemon died between the two) is a no-op there (``ON CONFLICT (test_id) DO
NOTHING``).  So every test arrives, in order, exactly once, however long
PostgreSQL is away, and no customer ever waits for it.

:class:`FleetStore` answers the support API for the whole fleet: every
server's tests, by customer, newest, and by share link.  Retention there is
fleet-wide: the newest ``fleet_max_tests``, none older than
``fleet_max_age_days``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Sequence
from urllib.parse import urlsplit, urlunsplit

from twisted.application.service import Service
from twisted.enterprise import adbapi
from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from lqos.measure.units import MINUTES, SECONDS
from lqos.telemetry.pgschema import PgSchemaError, migrate
from lqos.telemetry.queries import (BY_SERVER, INSERT_TEST, OLDER_THAN, TestQueries, for_paramstyle, keep_newest,
                                    test_row)

log = Logger()

# Connections to PostgreSQL: support queries and the writer run side by side.
POOL_SIZE = 4
# libpq settings a fleet server needs and an operator's URL may leave out (the
# URL's own win): give up on a connection attempt after 5 s, and on a
# connection whose sent data has gone unacknowledged for 20 s (a server behind a
# dead route), so the writer retries instead of waiting on TCP for minutes.
CONNECTION_DEFAULTS = {"connect_timeout": "5", "tcp_user_timeout": "20000", "application_name": "lqos-bufferbloat"}
# Tests per PostgreSQL transaction: a backlog of thousands drains in seconds.
BATCH = 200
# The writer looks at the outbox at least this often (a save also wakes it) ...
POLL_INTERVAL = 1 * SECONDS
# ... and after a failed write waits 1, 2, 4, then 5 s between attempts: a
# database that comes back has the backlog within seconds.
MAX_RETRY_DELAY = 5 * SECONDS
# Retention deletes at most this often: it scans an index of up to
# fleet_max_tests entries.
RETENTION_INTERVAL = 1 * MINUTES


class FleetUnavailable(RuntimeError):
    """The fleet's database could not answer; the message says why (no password in it)."""


def redacted(url: str) -> str:
    """*url* without its password, for logs and /api/health."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def connection_options(url: str) -> dict[str, str]:
    """Keyword arguments for ``psycopg.connect(url, **options)``: CONNECTION_DEFAULTS the URL does not set."""
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(url)
    return {key: value for key, value in CONNECTION_DEFAULTS.items() if key not in given}


def open_and_migrate(url: str) -> int:
    """Connect once, apply the schema steps the database lacks, disconnect; its schema version."""
    import psycopg

    with psycopg.connect(url, autocommit=True, **connection_options(url)) as connection:
        return migrate(connection)


def _unavailable(failure):
    """Driver and pool errors become FleetUnavailable, with the reason in one line."""
    import psycopg

    failure.trap(psycopg.Error, adbapi.ConnectionLost)
    reason = str(failure.value).strip().splitlines()[0] if str(failure.value).strip() else type(failure.value).__name__
    raise FleetUnavailable(f"the fleet database is unreachable: {reason}")


def _newer_schema(failure):
    """A database a newer release migrated is as unusable as an unreachable one, and says why."""
    failure.trap(PgSchemaError)
    raise FleetUnavailable(str(failure.value))


class _Connection(adbapi.Connection):
    """adbapi's connection wrapper, without two tracebacks in the log for every connection the
    database ends (a restart, a failover): one that cannot roll back is dropped, and the error
    that ended the interaction is what its caller sees."""

    def rollback(self):
        import psycopg

        try:
            self._connection.rollback()
        except psycopg.OperationalError:
            self._pool.disconnect(self._connection)  # the next interaction opens a new one


class FleetStore:
    """The fleet's tests in PostgreSQL: written by :class:`FleetWriter`, read by the support API."""

    def __init__(self, url: str, clock: IReactorTime, max_tests: int, max_age_days: int):
        self.url = url
        self._clock = clock
        self.max_tests = max_tests
        self.max_age_days = max_age_days
        self._pool = adbapi.ConnectionPool("psycopg", url, cp_min=1, cp_max=POOL_SIZE, cp_reconnect=True,
                                           cp_noisy=False, **connection_options(url))
        self._pool.connectionFactory = _Connection  # this pool's, not adbapi's class attribute
        self._sql = lambda statement: for_paramstyle(statement, "format")
        self._queries = TestQueries(self._pool, self._sql)

    def close(self) -> None:
        self._pool.close()

    def migrate(self) -> defer.Deferred:
        """Bring the schema up to date (in a thread); fires with its version."""
        d = threads.deferToThread(open_and_migrate, self.url)
        return d.addErrback(_unavailable).addErrback(_newer_schema)

    # --- writing ---

    def write(self, bodies: Sequence[str]) -> defer.Deferred:
        """Insert the records (JSON texts, as stored locally) in one transaction; fires with how many were new."""
        return self._pool.runInteraction(self._write, tuple(bodies)).addErrback(_unavailable)

    def _write(self, txn, bodies: tuple[str, ...]) -> int:
        new = 0
        statement = self._sql(INSERT_TEST)
        for body in bodies:
            txn.execute(statement, test_row(json.loads(body), body))
            new += max(0, txn.rowcount)
        return new

    def trim(self) -> defer.Deferred:
        """Apply the fleet's retention; fires with how many tests it deleted."""
        cutoff = None
        if self.max_age_days:
            oldest = datetime.fromtimestamp(self._clock.seconds(), timezone.utc) - timedelta(days=self.max_age_days)
            cutoff = oldest.isoformat(timespec="seconds")
        return self._pool.runInteraction(self._trim, cutoff).addErrback(_unavailable)

    def _trim(self, txn, cutoff: str | None) -> int:
        deleted = 0
        if cutoff is not None:
            txn.execute(self._sql(OLDER_THAN), (cutoff,))
            deleted += max(0, txn.rowcount)
        txn.execute(self._sql(keep_newest("tests")), (self.max_tests,))
        return deleted + max(0, txn.rowcount)

    # --- the support API's queries, for every server of the fleet ---

    def by_share_id(self, share_id: str) -> defer.Deferred:
        return self._queries.by_share_id(share_id).addErrback(_unavailable)

    def by_test_id(self, test_id: str) -> defer.Deferred:
        return self._queries.by_test_id(test_id).addErrback(_unavailable)

    def recent(self, limit: int) -> defer.Deferred:
        return self._queries.recent(limit).addErrback(_unavailable)

    def for_client(self, client_ip: str) -> defer.Deferred:
        return self._queries.for_client(client_ip).addErrback(_unavailable)

    def stats(self) -> defer.Deferred:
        return self._pool.runInteraction(self._stats).addErrback(_unavailable)

    def _stats(self, txn) -> dict:
        summary = self._queries.summary(txn)
        txn.execute(BY_SERVER)
        return {**summary, "max_kept": self.max_tests, "max_age_days": self.max_age_days,
                "servers": dict(txn.fetchall())}


class FleetWriter(Service):
    """Works off the outbox's fleet lane into :class:`FleetStore`; see the module docstring."""

    name = "fleet-writer"

    def __init__(self, local, fleet: FleetStore, clock: IReactorTime, batch: int = BATCH):
        self._local = local
        self._fleet = fleet
        self._clock = clock
        self._batch = batch
        self._loop: LoopingCall | None = None
        self._busy: defer.Deferred | None = None  # a drain, or a count of the backlog
        self._wake_again = False
        self._migrated = False
        self._failures = 0
        self._not_before = 0.0
        self._last_trim = float("-inf")
        # What /api/health and /metrics show, refreshed by every drain.
        self.backlog: int | None = None
        self.last_write_at: float | None = None
        self.last_error: str | None = None

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.wake)
        self._loop.clock = self._clock
        self._loop.start(POLL_INTERVAL, now=True)

    def stopService(self) -> defer.Deferred:
        """Stop polling and let a batch in progress finish (what it has not deleted stays owed)."""
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return self._busy if self._busy is not None else defer.succeed(None)

    def wake(self) -> None:
        """Drain now, unless a drain is running (then once more after it) or a retry is not yet due."""
        if not self.running:
            return
        if self._busy is not None:
            self._wake_again = True
            return
        if self._clock.seconds() < self._not_before:
            self._busy = self._count_backlog()  # /api/health stays at most a poll behind
        else:
            self._busy = self._drain()
        self._busy.addBoth(self._done)

    def _done(self, _) -> None:
        self._busy = None
        if self._wake_again:
            self._wake_again = False
            self.wake()

    @defer.inlineCallbacks
    def _drain(self):
        try:
            if not self._migrated:
                yield self._fleet.migrate()
                self._migrated = True
            written = yield self._write_backlog()
            if self._clock.seconds() - self._last_trim >= RETENTION_INTERVAL:
                yield self._fleet.trim()
                self._last_trim = self._clock.seconds()
        except FleetUnavailable as error:
            self._failed(str(error))
        except Exception as error:
            log.failure("writing to the fleet database failed")
            self._failed(f"{type(error).__name__}: {error}")
        else:
            self._succeeded(written)
        yield self._count_backlog()

    @defer.inlineCallbacks
    def _count_backlog(self):
        try:
            self.backlog = yield self._local.fleet_backlog()
        except Exception:
            log.failure("counting the fleet backlog failed")

    @defer.inlineCallbacks
    def _write_backlog(self):
        """Batches until the lane is empty; fires with how many tests were written."""
        written = 0
        while self.running:
            row_ids, bodies = yield self._local.fleet_batch(self._batch)
            if not row_ids:
                break
            yield self._fleet.write(bodies)
            yield self._local.fleet_written(row_ids)
            self.last_write_at = self._clock.seconds()
            written += len(row_ids)
        return written

    def _failed(self, error: str) -> None:
        self._failures += 1
        if self._failures == 1:
            log.warn("{error}; finished tests wait in the local outbox and are retried", error=error)
        self.last_error = error
        self._not_before = self._clock.seconds() + min(MAX_RETRY_DELAY, 2 ** (self._failures - 1))

    def _succeeded(self, written: int) -> None:
        if self._failures:
            log.info("the fleet database is back: wrote {count} waiting tests", count=written)
        self._failures = 0
        self.last_error = None

    def health(self) -> dict:
        """The fleet writer's part of /api/health."""
        return {
            "database": redacted(self._fleet.url),
            "backlog": self.backlog,
            "last_write_at": None if self.last_write_at is None else
            datetime.fromtimestamp(self.last_write_at, timezone.utc).isoformat(timespec="seconds"),
            "error": self.last_error,
        }
