"""``lqos-bufferbloat-fleet-import``: a server's SQLite telemetry into the fleet's PostgreSQL database.

    lqos-bufferbloat-fleet-import /var/lib/lqos-bufferbloat/telemetry.sqlite3 \\
        postgresql://lqos@db.example.net/lqos --server-id pop-north-1

Run it once per server when a fleet database is first set up; running it
again imports nothing twice (a test id already there is skipped), so it is
safe to repeat after an interruption.  The SQLite file is opened read-only,
and may be the live file of a running daemon (WAL lets it read meanwhile).

Tests stored before tests carried their server's name get ``--server-id``
(default: this host's name, as the daemon's own default).
"""

from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import sys
from pathlib import Path
from urllib.parse import quote

from lqos.daemon.config import COERCERS, server_name
from lqos.telemetry.fleet import FleetUnavailable, connection_options, open_and_migrate, redacted
from lqos.telemetry.payloads import record_json
from lqos.telemetry.queries import INSERT_TEST, for_paramstyle, test_row
from lqos.telemetry.schema import SCHEMA_STEPS, schema_version

BATCH = 500


class ImportFailed(RuntimeError):
    """The import cannot go on; the message says why."""


def open_read_only(path: Path) -> sqlite3.Connection:
    """The telemetry file, opened so that nothing in it can change."""
    if not path.is_file():
        raise ImportFailed(f"{path}: no such file")
    try:
        connection = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
        version = schema_version(connection)
    except sqlite3.DatabaseError as error:
        raise ImportFailed(f"{path} is not an lqos-bufferbloat telemetry file: {error}") from None
    if not 1 <= version <= len(SCHEMA_STEPS):
        raise ImportFailed(f"{path} has telemetry schema version {version}; this program reads 1 to "
                           f"{len(SCHEMA_STEPS)}")
    return connection


def named_records(connection: sqlite3.Connection, default_server_id: str):
    """Batches of the file's records, oldest first, each naming the server that ran it."""
    has_server = schema_version(connection) >= 2
    columns = "id, record, server_id" if has_server else "id, record, ''"
    last = 0
    while True:
        rows = connection.execute(f"SELECT {columns} FROM tests WHERE id > ? ORDER BY id LIMIT ?",
                                  (last, BATCH)).fetchall()
        if not rows:
            return
        batch = []
        for _, text, server_id in rows:
            record = json.loads(text)
            if not record.get("server_id"):
                record["server_id"] = server_id or default_server_id
                text = record_json(record)
            batch.append((record, text))
        yield batch
        last = rows[-1][0]


def import_file(path: Path, url: str, default_server_id: str) -> tuple[int, int]:
    """Copy every test of *path* into the fleet database at *url*; (imported, already there)."""
    import psycopg

    source = open_read_only(path)
    try:
        open_and_migrate(url)
        imported = skipped = 0
        statement = for_paramstyle(INSERT_TEST, "format")
        with psycopg.connect(url, **connection_options(url)) as target:
            for batch in named_records(source, default_server_id):
                with target.transaction(), target.cursor() as cursor:
                    for record, text in batch:
                        cursor.execute(statement, test_row(record, text))
                        imported += max(0, cursor.rowcount)
                        skipped += 1 - max(0, cursor.rowcount)
        return imported, skipped
    except psycopg.Error as error:
        raise ImportFailed(f"the fleet database {redacted(url)}: {str(error).strip().splitlines()[0]}") from None
    finally:
        source.close()


def _server_id(text: str) -> str:
    try:
        return server_name(COERCERS["server_id"](text), socket.gethostname())
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lqos-bufferbloat-fleet-import",
                                     description="Import a server's SQLite telemetry into the fleet's "
                                                 "PostgreSQL database, skipping tests already there.")
    parser.add_argument("sqlite_file", type=Path, help="the server's telemetry.sqlite3")
    parser.add_argument("database", help="postgresql://USER[:PASSWORD]@HOST[:PORT]/DB, as telemetry_database")
    parser.add_argument("--server-id", type=_server_id, default=None,
                        help="the name for tests stored before tests carried one (default: this host's name)")
    options = parser.parse_args(argv)
    options.server_id = options.server_id or server_name("", socket.gethostname())
    if not options.database.startswith(("postgresql://", "postgres://")):
        parser.error("the database must be a postgresql:// URL")
    try:
        imported, skipped = import_file(options.sqlite_file, options.database, options.server_id)
    except (ImportFailed, FleetUnavailable) as error:
        print(f"lqos-bufferbloat-fleet-import: {error}", file=sys.stderr)
        return 1
    print(f"imported {imported} tests from {options.sqlite_file} into {redacted(options.database)}"
          f" ({skipped} were there already)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
