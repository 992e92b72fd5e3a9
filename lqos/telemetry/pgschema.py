"""The fleet's PostgreSQL schema, as numbered steps applied at start.

The same scheme as the SQLite file's (``schema.py``): a one-row ``version``
table, step *n* taking the database from version *n - 1* to *n* in one
transaction with the version bump, and never an edit to a step that has
shipped.  The ``tests`` table has the same columns as SQLite's, so the
statements of ``queries.py`` run on both.

Several servers may start at once against a new database, so each step runs
under a transaction-scoped advisory lock and re-reads the version once it
holds it: one server applies a step, the others find it done.

This runs with a plain psycopg connection before the ``adbapi`` pool opens.
A database that is unreachable at start does not stop the daemon (its tests
wait in the local outbox); the fleet writer migrates when it first connects.
"""

from __future__ import annotations

from typing import Sequence

# Any constant of our own: two servers migrating take the same lock.
MIGRATION_LOCK = 0x6C716F73  # "lqos"

STEP_1_TESTS = """
CREATE TABLE tests (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- arrival order
    test_id          TEXT             NOT NULL UNIQUE,
    share_id         TEXT             NOT NULL UNIQUE,
    server_id        TEXT             NOT NULL,  -- the fleet server that ran the test
    created_at       TEXT             NOT NULL,  -- ISO 8601 in UTC: text order is time order
    client_ip        TEXT             NOT NULL,  -- normalised by ipaddress, as in SQLite
    user_agent       TEXT             NOT NULL,
    mode             TEXT             NOT NULL,
    duration_seconds DOUBLE PRECISION NOT NULL,
    grade            TEXT,
    download_bytes   BIGINT           NOT NULL,
    upload_bytes     BIGINT           NOT NULL,
    record           TEXT             NOT NULL   -- the full result as JSON, byte for byte as stored locally
);
CREATE INDEX tests_newest ON tests (created_at DESC, id DESC);
CREATE INDEX tests_by_client_ip ON tests (client_ip, created_at DESC);
CREATE INDEX tests_by_server ON tests (server_id);
"""

# Step n is PG_SCHEMA_STEPS[n - 1].
PG_SCHEMA_STEPS: tuple[str, ...] = (STEP_1_TESTS,)


class PgSchemaError(RuntimeError):
    """The fleet's database cannot be used by this version of the program."""


def _version(cursor) -> int:
    cursor.execute("SELECT to_regclass('version') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return 0
    cursor.execute("SELECT version FROM version")
    row = cursor.fetchone()
    return row[0] if row else 0


def migrate(connection, steps: Sequence[str] = PG_SCHEMA_STEPS) -> int:
    """Apply the steps this database has not had yet; return the version it is at.

    *connection* is a psycopg connection in autocommit mode: each step is a
    transaction of its own.
    """
    for number in range(1, len(steps) + 1):
        with connection.transaction(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            current = _version(cursor)
            if current > len(steps):
                raise PgSchemaError(f"the fleet database's schema version {current} is newer than this "
                                    f"program knows ({len(steps)}); upgrade lqos-bufferbloat")
            if current >= number:
                continue
            if current == 0:
                cursor.execute("CREATE TABLE IF NOT EXISTS version (version INTEGER NOT NULL)")
                cursor.execute("INSERT INTO version (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM version)")
            cursor.execute(steps[number - 1])
            cursor.execute("UPDATE version SET version = %s", (number,))
    with connection.cursor() as cursor:
        version = _version(cursor)
    if version > len(steps):
        raise PgSchemaError(f"the fleet database's schema version {version} is newer than this "
                            f"program knows ({len(steps)}); upgrade lqos-bufferbloat")
    return version
