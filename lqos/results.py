"""Where finished results live: an interface, and the in-memory store behind it.

The SQLite telemetry store implements the same interface, so the web app
does not care which one it is given.
"""

from __future__ import annotations

from collections import OrderedDict

from twisted.internet import defer
from zope.interface import Interface, implementer

# What a shared result page may show: everything but who ran the test.
PRIVATE_FIELDS = ("client_ip", "user_agent")


class IResultStore(Interface):
    def save(record: dict) -> defer.Deferred:
        """Store one finished test; fires when it is durable."""

    def by_share_id(share_id: str) -> defer.Deferred:
        """Fire with the record shared as *share_id*, or None."""


def public_view(record: dict) -> dict:
    """The record as a share link shows it: without the client's IP or browser."""
    return {key: value for key, value in record.items() if key not in PRIVATE_FIELDS}


@implementer(IResultStore)
class MemoryResultStore:
    """Keeps the newest *max_records* results in memory (until the daemon stops)."""

    def __init__(self, max_records: int = 1000):
        self._max_records = max_records
        self._by_share_id: OrderedDict[str, dict] = OrderedDict()

    def save(self, record: dict) -> defer.Deferred:
        self._by_share_id[record["share_id"]] = record
        while len(self._by_share_id) > self._max_records:
            self._by_share_id.popitem(last=False)
        return defer.succeed(None)

    def by_share_id(self, share_id: str) -> defer.Deferred:
        return defer.succeed(self._by_share_id.get(share_id))
