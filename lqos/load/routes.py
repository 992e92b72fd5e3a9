"""The load routes, served by the load workers on ``load_port``.

Contract (the URLs come from ``POST /api/tests``, which signs them:
``ID``, ``T`` and ``K`` below):

- ``GET /download?test=ID&until=T&token=K[&seconds=S][&bytes=N]``: 200,
  chunked ``application/octet-stream`` of random bytes until S seconds
  (default and most 30) or N bytes (default and most 8 GiB) are spent.
- ``POST /upload?test=ID&until=T&token=K``: any body (Content-Length or
  chunked, at most 256 MiB, and 64 GiB per test and worker), counted and
  dropped; answers ``{"received": N}``.  A refused body is answered before
  it is read, and the connection is then closed: 413 (too big, with
  ``received``), 408 (slower than 30 s, with ``received``).
- Any load stream: 403 (missing or wrong token), 410 (the test's schedule
  is over), 429 (the test already has 32 streams open on this worker), 400
  (bad option).
- ``WS /ws/bulk-download?test=ID&until=T&token=K[&seconds=S][&message_bytes=B]``:
  binary messages of B bytes (64 KiB to 1 MiB, default 256 KiB) until S
  seconds; any client message stops it; closes with 1000.
- ``OPTIONS`` on either HTTP path: the CORS preflight a browser may send,
  since the page's origin is the main port, not this one.

Every refusal is JSON ``{"error": "..."}`` with a 4xx status.  The bytes a
worker counts reach the main process, whose
``GET /api/tests/ID/progress?token=TOKEN`` reports them.
"""

from __future__ import annotations

import os

from autobahn.twisted.resource import WebSocketResource
from klein import Klein

from lqos.load.admission import LoadRefused, authorize, open_stream, query_number
from lqos.load.download import DownloadStream
from lqos.load.limits import MAX_MESSAGE_BYTES, MIN_MESSAGE_BYTES, LoadLimits
from lqos.load.tickets import LoadSession, LoadTickets
from lqos.load.websocket import BulkPlan, bulk_download_factory
from lqos.net.sockets import RateScaledUnsentLimit
from lqos.web.responses import json_body, json_error, set_security_headers

# How long a browser may reuse a preflight answer.
PREFLIGHT_MAX_AGE_SECONDS = 600

SMALLEST_STREAM_SECONDS = 0.1


class LoadEndpoints:
    """Serve the load of single-user tests; one instance per load worker.

    The random bytes are drawn once per process: fresh randomness per write
    would cost more CPU than sending it.  Random data does not compress, and
    only a deduplicating WAN optimiser could exploit the repeat period
    (256 KiB for HTTP, the message size for WebSocket).
    """

    app = Klein()

    def __init__(self, tickets: LoadTickets, clock, limits: LoadLimits = LoadLimits()):
        self._tickets = tickets
        self._clock = clock
        self.limits = limits
        self._random = os.urandom(max(MAX_MESSAGE_BYTES, limits.download_block_bytes))
        self._block = self._random[: limits.download_block_bytes]

    def resource(self):
        return self.app.resource()

    @app.route("/download", methods=["GET"])
    def download(self, request):
        allow_any_origin(request)
        try:
            session = self._authorize(request)
            seconds = self._seconds(request)
            budget = int(query_number(request.args, b"bytes", self.limits.download_bytes_per_stream,
                                      1, self.limits.download_bytes_per_stream))
            slot = open_stream(session, self.limits, self._clock.seconds())
        except LoadRefused as refused:
            return json_error(request, refused.status, refused.reason)
        self._set_stream_headers(request)
        if request.method == b"HEAD":  # Twisted drops a HEAD body, so nothing would ever pause us
            slot.release()
            return b""
        unsent = RateScaledUnsentLimit(request.transport, self._clock, self.limits.unsent_bytes_at)
        count_bytes = unsent.counting(lambda size: _add_download(session, size))
        stream = DownloadStream(request, self._block, budget, count_bytes)
        return stream.start(self._clock, seconds).addBoth(slot.release)

    @app.route("/upload", methods=["POST"])
    def upload(self, request) -> bytes:
        """The body has already been counted and dropped by ``LoadAwareRequest``."""
        allow_any_origin(request)
        sink = getattr(request, "upload", None)
        if sink is None:
            return json_error(request, 400, "send uploads to POST /upload?test=ID&token=TOKEN")
        return json_body(request, {"received": sink.received})

    @app.route("/ws/bulk-download", methods=["GET"])
    def bulk_download(self, request):
        try:
            session = self._authorize(request)
            seconds = self._seconds(request)
            message_bytes = self._message_bytes(request)
            slot = open_stream(session, self.limits, self._clock.seconds())
        except LoadRefused as refused:
            return json_error(request, refused.status, refused.reason)
        plan = BulkPlan(
            payload=self._random[:message_bytes],
            seconds=seconds,
            byte_budget=self.limits.download_bytes_per_stream,
            unsent_bytes_at=self.limits.unsent_bytes_at,
            count_bytes=lambda size: _add_download(session, size),
            slot=slot,
        )
        return WebSocketResource(bulk_download_factory(plan, self._clock, self.limits))

    @app.route("/download", methods=["OPTIONS"])
    @app.route("/upload", methods=["OPTIONS"])
    def preflight(self, request) -> bytes:
        """Let the page's origin send what it sends: GET and POST with a Content-Type."""
        allow_any_origin(request)
        request.setHeader(b"access-control-allow-methods", b"GET, POST")
        request.setHeader(b"access-control-allow-headers", b"content-type")
        request.setHeader(b"access-control-max-age", str(PREFLIGHT_MAX_AGE_SECONDS).encode())
        request.setResponseCode(204)
        return b""

    def _authorize(self, request) -> LoadSession:
        return authorize(self._tickets, request.args)

    def _seconds(self, request) -> float:
        longest = self.limits.stream_seconds
        return query_number(request.args, b"seconds", longest, SMALLEST_STREAM_SECONDS, longest)

    def _message_bytes(self, request) -> int:
        return int(query_number(request.args, b"message_bytes", self.limits.default_message_bytes,
                                MIN_MESSAGE_BYTES, MAX_MESSAGE_BYTES))

    @staticmethod
    def _set_stream_headers(request) -> None:
        request.setHeader(b"content-type", b"application/octet-stream")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-accel-buffering", b"no")  # a reverse proxy must pass it through, not buffer it
        set_security_headers(request)


def allow_any_origin(request) -> None:
    """The load URLs are signed and short-lived; whoever holds one may read its stream."""
    request.setHeader(b"access-control-allow-origin", b"*")


def _add_download(session: LoadSession, size: int) -> None:
    session.download_bytes += size
