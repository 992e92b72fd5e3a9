"""The telemetry database's schema, as numbered steps applied at start.

Like magic-wormhole's mailbox server, a one-row ``version`` table says which
steps a file has had.  Step *n* takes the database from version *n - 1* to
*n*; each step runs in one transaction together with the version bump, so a
crash during a migration leaves the file at the old version, not half-way.
Never edit a step that has shipped: append a new one.

Migration runs synchronously with a plain ``sqlite3`` connection before the
``adbapi`` pool opens, so a database the daemon cannot use stops start-up
with a clear message instead of failing the first customer's submission.
"""

from __future__ import annotations

import sqlite3
from typing import Sequence

from lqos.measure.units import SECONDS

BUSY_TIMEOUT_MS = 5000

# Per-connection settings.  WAL lets support queries read while a result is
# written; synchronous=FULL syncs the WAL at every commit, so a result that
# was answered with 200 survives a power cut or kill -9.
CONNECTION_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys=ON",
)

STEP_1_TESTS_AND_OUTBOX = """
CREATE TABLE tests (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order: newest = largest
    test_id          TEXT    NOT NULL UNIQUE,
    share_id         TEXT    NOT NULL UNIQUE,
    created_at       TEXT    NOT NULL,  -- ISO 8601 in UTC, e.g. 2025-05-01T12:00:00+00:00
    client_ip        TEXT    NOT NULL,  -- normalised by ipaddress (IPv4-mapped IPv6 as IPv4)
    user_agent       TEXT    NOT NULL,
    mode             TEXT    NOT NULL,
    duration_seconds REAL    NOT NULL,
    grade            TEXT,              -- overall grade; NULL when the test was unreliable
    download_bytes   INTEGER NOT NULL,  -- server counters at submission
    upload_bytes     INTEGER NOT NULL,
    record           TEXT    NOT NULL   -- the full result as JSON: every metric and grade
);
CREATE INDEX tests_by_client_ip ON tests (client_ip, id);
CREATE INDEX tests_by_created_at ON tests (created_at);
CREATE INDEX tests_by_grade ON tests (grade);

-- Deliveries waiting to be made.  No foreign key to tests on purpose: trimming
-- old tests must never cancel a delivery that is still owed.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    target          TEXT    NOT NULL,   -- 'webhook' or 'central'
    test_id         TEXT    NOT NULL,   -- also the idempotency key (X-LQoS-Delivery)
    body            BLOB    NOT NULL,   -- the exact JSON bytes to POST
    created_at      REAL    NOT NULL,   -- unix seconds
    expires_at      REAL    NOT NULL,   -- unix seconds; dropped unsent after this
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL    NOT NULL,   -- unix seconds
    last_error      TEXT,
    UNIQUE (target, test_id)
);
CREATE INDEX outbox_by_next_attempt ON outbox (next_attempt_at);
"""

# A fleet (lqos/telemetry/fleet.py): which server ran each test.  Tests stored
# before this step ran on this server; the daemon names it at start
# (SQLiteResultStore.claim_unnamed_tests).
STEP_2_SERVER_ID = """
ALTER TABLE tests ADD COLUMN server_id TEXT NOT NULL DEFAULT '';
CREATE INDEX tests_by_server ON tests (server_id);
"""

# Step n is SCHEMA_STEPS[n - 1].
SCHEMA_STEPS: tuple[str, ...] = (STEP_1_TESTS_AND_OUTBOX, STEP_2_SERVER_ID)


class SchemaError(RuntimeError):
    """The database cannot be used by this version of the program."""


def configure_connection(connection: sqlite3.Connection) -> None:
    """Apply CONNECTION_PRAGMAS; adbapi calls this for each connection it opens."""
    for pragma in CONNECTION_PRAGMAS:
        connection.execute(pragma)


def schema_version(connection: sqlite3.Connection) -> int:
    """The number of steps applied to this database; 0 for a new file."""
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'version'").fetchone()
    if not exists:
        return 0
    row = connection.execute("SELECT version FROM version").fetchone()
    return row[0] if row else 0


def migrate(connection: sqlite3.Connection, steps: Sequence[str] = SCHEMA_STEPS) -> int:
    """Apply the steps this database has not had yet; return the version it is at."""
    connection.isolation_level = None  # transactions are spelled out below
    current = schema_version(connection)
    if current > len(steps):
        raise SchemaError(f"database schema version {current} is newer than this program "
                          f"knows ({len(steps)}); upgrade lqos-bufferbloat")
    if current == 0:
        connection.execute("CREATE TABLE IF NOT EXISTS version (version INTEGER NOT NULL)")
        connection.execute("INSERT INTO version (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM version)")
    for number in range(current + 1, len(steps) + 1):
        _apply_step(connection, number, steps[number - 1])
    return len(steps)


def _apply_step(connection: sqlite3.Connection, number: int, sql: str) -> None:
    try:
        connection.executescript(f"BEGIN IMMEDIATE;\n{sql}\nUPDATE version SET version = {number};\nCOMMIT;")
    except sqlite3.Error as error:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise SchemaError(f"schema step {number} failed: {error}") from error


def open_and_migrate(path: str) -> int:
    """Create or migrate the database file at *path*; return its schema version."""
    try:
        connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000 * SECONDS)
    except sqlite3.Error as error:
        raise SchemaError(f"cannot open {path}: {error}") from error
    try:
        configure_connection(connection)
        return migrate(connection)
    except sqlite3.DatabaseError as error:
        raise SchemaError(f"{path} is not a usable SQLite database: {error}") from error
    finally:
        connection.close()
