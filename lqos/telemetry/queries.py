"""The ``tests`` table's statements, written once for SQLite and PostgreSQL.

Both backends hold the same table (``schema.py`` and ``pgschema.py`` build
it, each with its own numbered steps), and every statement here is plain SQL
both dialects run: ``ON CONFLICT (test_id) DO NOTHING`` makes a second write
of a test a no-op in both, which is what lets a fleet server retry a write
to PostgreSQL until it is there, exactly once.

The one difference is the parameter marker: ``sqlite3`` takes ``?`` and
psycopg ``%s``.  Statements are written with ``?`` and a store converts them
once, with :func:`for_paramstyle`.

"Newest" means the latest ``created_at`` (ISO 8601 in UTC, so text order is
time order), then insertion order: in a fleet's database a server's backlog
arrives after a PostgreSQL outage, later than tests that ran after it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from lqos.measure.grading import GRADES
from lqos.net.clientip import address_of
from lqos.telemetry.payloads import record_json

UNGRADED = "ungraded"

TEST_COLUMNS = ("test_id", "share_id", "server_id", "created_at", "client_ip", "user_agent", "mode",
                "duration_seconds", "grade", "download_bytes", "upload_bytes", "record")

INSERT_TEST = (f"INSERT INTO tests ({', '.join(TEST_COLUMNS)}) VALUES ({', '.join('?' * len(TEST_COLUMNS))})"
               " ON CONFLICT (test_id) DO NOTHING")
NEWEST_FIRST = "ORDER BY created_at DESC, id DESC"
RECENT = f"SELECT record FROM tests {NEWEST_FIRST} LIMIT ?"
FOR_CLIENT = f"SELECT record FROM tests WHERE client_ip = ? {NEWEST_FIRST}"
BY_SHARE_ID = "SELECT record FROM tests WHERE share_id = ?"
BY_TEST_ID = "SELECT record FROM tests WHERE test_id = ?"
SPAN = "SELECT COUNT(*), MIN(created_at), MAX(created_at) FROM tests"
BY_GRADE = "SELECT grade, COUNT(*) FROM tests GROUP BY grade"
BY_SERVER = "SELECT server_id, COUNT(*) FROM tests GROUP BY server_id ORDER BY server_id"
OLDER_THAN = "DELETE FROM tests WHERE created_at < ?"


def keep_newest(table: str) -> str:
    """Delete every row older than the newest ``?`` (by id: ids only grow in both backends)."""
    return f"DELETE FROM {table} WHERE id <= (SELECT id FROM {table} ORDER BY id DESC LIMIT 1 OFFSET ?)"


def for_paramstyle(statement: str, paramstyle: str) -> str:
    """*statement* with its ``?`` markers in the driver's style (``qmark`` or ``format``)."""
    if paramstyle == "qmark":
        return statement
    if paramstyle in ("format", "pyformat"):
        return statement.replace("%", "%%").replace("?", "%s")
    raise ValueError(f"unsupported paramstyle {paramstyle!r}")


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


def overall_grade(record: dict) -> str | None:
    return ((record.get("result") or {}).get("overall") or {}).get("grade")


def test_row(record: dict, text: str | None = None) -> tuple:
    """The values of INSERT_TEST for *record*; *text* its JSON if it is already serialised."""
    counters = record.get("server_counters") or {}
    return (record["test_id"], record["share_id"], record.get("server_id") or "", record["created_at"],
            _storable_ip(record["client_ip"]), record.get("user_agent") or "", record["mode"],
            record.get("duration_seconds") or 0, overall_grade(record),
            int(counters.get("download_bytes") or 0), int(counters.get("upload_bytes") or 0),
            text if text is not None else record_json(record))


def _first_record(rows) -> dict | None:
    return json.loads(rows[0][0]) if rows else None


def _records(rows) -> list[dict]:
    return [json.loads(row[0]) for row in rows]


@dataclass(frozen=True)
class TestQueries:
    """The support queries over a ``tests`` table, on an ``adbapi`` pool of either backend."""

    pool: object  # twisted.enterprise.adbapi.ConnectionPool
    sql: Callable[[str], str]  # for_paramstyle bound to the pool's driver

    def by_share_id(self, share_id: str):
        return self.pool.runQuery(self.sql(BY_SHARE_ID), (share_id,)).addCallback(_first_record)

    def by_test_id(self, test_id: str):
        return self.pool.runQuery(self.sql(BY_TEST_ID), (test_id,)).addCallback(_first_record)

    def recent(self, limit: int):
        """The newest *limit* records, newest first."""
        return self.pool.runQuery(self.sql(RECENT), (limit,)).addCallback(_records)

    def for_client(self, client_ip: str):
        """Every kept record of one client address, newest first."""
        return self.pool.runQuery(self.sql(FOR_CLIENT), (normalise_ip(client_ip),)).addCallback(_records)

    def summary(self, txn) -> dict:
        """How many tests, their span, and their grades (an interaction: *txn* is a cursor)."""
        txn.execute(SPAN)
        count, oldest, newest = txn.fetchone()
        txn.execute(BY_GRADE)
        grades = dict.fromkeys((*GRADES, UNGRADED), 0)
        for grade, number in txn.fetchall():
            grades[grade if grade in grades else UNGRADED] += number
        return {"count": count, "oldest": oldest, "newest": newest, "grades": grades}
