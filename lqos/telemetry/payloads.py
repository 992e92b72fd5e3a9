"""What leaves the server: the webhook and central bodies, their headers and signature.

Bodies are serialised once, when the result is stored, and kept as bytes in
the outbox, so every retry sends exactly the same bytes.  The timestamp and
signature are made per attempt, so a receiver can refuse stale replays.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from types import MappingProxyType
from typing import Callable, Mapping

WEBHOOK = "webhook"
CENTRAL = "central"
# The fleet's shared database (lqos/telemetry/fleet.py): its outbox rows hold
# the record's JSON, written to PostgreSQL rather than POSTed.
FLEET = "fleet"

TIMESTAMP_HEADER = "X-LQoS-Timestamp"
SIGNATURE_HEADER = "X-LQoS-Signature"
DELIVERY_HEADER = "X-LQoS-Delivery"

# Central reporting gets these fields of a record and nothing else.  An
# allow-list, so a field added to records later (say, an ASN or a hostname)
# does not leak until someone decides it may.  No client_ip, no user_agent,
# and no share_id (the share link is the customer's to give).
CENTRAL_FIELDS = (
    "test_id", "created_at", "mode", "schedule", "duration_seconds", "streams",
    "server_counters", "result",
)


def _json_bytes(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode("ascii")


def record_json(record: Mapping) -> str:
    """A record as the ``tests`` table stores it (``record`` column), in SQLite and in PostgreSQL."""
    return json.dumps(record, separators=(",", ":"))


def fleet_body(record: Mapping) -> bytes:
    """What the fleet writer copies to PostgreSQL: the record exactly as this server stored it."""
    return record_json(record).encode("utf-8")


def webhook_body(record: Mapping) -> bytes:
    """The full record, client IP and user agent included: support needs them."""
    return _json_bytes(dict(record))


def central_body(record: Mapping) -> bytes:
    """The record without anything that identifies the customer."""
    return _json_bytes({key: record[key] for key in CENTRAL_FIELDS if key in record})


BODY_BUILDERS: Mapping[str, Callable[[Mapping], bytes]] = MappingProxyType({
    WEBHOOK: webhook_body,
    CENTRAL: central_body,
    FLEET: fleet_body,
})


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` under *secret*."""
    message = f"{timestamp}.".encode("ascii") + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def delivery_headers(test_id: str, body: bytes, timestamp: int, secret: str, user_agent: str) -> dict[str, str]:
    """Headers of one delivery attempt; unsigned only when no ``webhook_secret`` is set."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": user_agent,
        TIMESTAMP_HEADER: str(timestamp),
        DELIVERY_HEADER: test_id,
    }
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, timestamp, body)
    return headers
