"""A request the server will not serve: one exception for it, and one way to write it on the wire.

Every port answers a refusal alike: an HTTP status, and a JSON body whose
``error`` is a sentence the client can show (docs/PROTOCOL.md, "Errors").
"""

from __future__ import annotations

import json
from typing import Sequence

from twisted.web.http import RESPONSES


class Refused(Exception):
    """A request or connection the server will not serve.

    ``status`` is the HTTP status, ``reason`` the sentence the client shows,
    and ``details`` any further fields of the JSON body (the cap passed, say).
    """

    def __init__(self, status: int, reason: str, **details: object):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.details = details

    def body(self) -> dict:
        return {"error": self.reason, **self.details}


def raw_response(refused: Refused, headers: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    """The whole HTTP/1.1 response for *refused*, after which the connection closes.

    For refusals written straight to the transport, where no routed request
    can answer: a body refused before it is read, or a connection past the
    limits.
    """
    payload = json.dumps(refused.body(), separators=(",", ":")).encode() + b"\n"
    lines = [
        b"HTTP/1.1 %d %s" % (refused.status, RESPONSES.get(refused.status, b"Refused")),
        b"Content-Type: application/json",
        b"Cache-Control: no-store",
        b"X-Content-Type-Options: nosniff",
        *(b"%s: %s" % header for header in headers),
        b"Content-Length: %d" % len(payload),
        b"Connection: close",
        b"",
        payload,
    ]
    return b"\r\n".join(lines)
