"""The load routes' handlers; ``MainApp`` maps URLs to them.

Contract (``ID`` and ``T`` come from ``POST /api/tests``):

- ``GET /download?test=ID&token=T[&seconds=S][&bytes=N]``: 200, chunked
  ``application/octet-stream`` of random bytes until S seconds (default and
  most 30) or N bytes (default and most 8 GiB) are spent.
- ``POST /upload?test=ID&token=T``: any body (Content-Length or chunked, at
  most 256 MiB, and 16 GiB per test), counted and dropped; answers
  ``{"received": N}``.  A refused body is answered before it is read, and
  the connection is then closed: 413 (too big, with ``received``), 408
  (slower than 30 s, with ``received``).
- Any load stream: 403 (missing or wrong token, other IP), 409 (result
  already submitted), 410 (token expired, or the test's schedule is over),
  429 (the test already has 32 streams open), 400 (bad option).
- ``WS /ws/bulk-download?test=ID&token=T[&seconds=S][&message_bytes=B]``:
  binary messages of B bytes (64 KiB to 1 MiB, default 256 KiB) until S
  seconds; any client message stops it; closes with 1000.
- ``GET /api/tests/ID/progress?token=T``: ``{"upload_bytes": N,
  "download_bytes": N}``, the bytes the server has received and written.

Every refusal is JSON ``{"error": "..."}`` with a 4xx status.
"""

from __future__ import annotations

import os

from autobahn.twisted.resource import WebSocketResource

from lqos.load.access import ClientIP, LoadRefused, authorize, open_stream, query_number
from lqos.load.download import DownloadStream
from lqos.load.limits import MAX_MESSAGE_BYTES, MIN_MESSAGE_BYTES, LoadLimits
from lqos.tcp import limit_unsent_bytes
from lqos.load.websocket import BulkPlan, bulk_download_factory
from lqos.sessions import SessionRegistry, TestSession
from lqos.web.responses import json_body, json_error, set_security_headers

SMALLEST_STREAM_SECONDS = 0.1


class LoadEndpoints:
    """Serve the load of single-user tests; one instance per process.

    The random bytes are drawn once per process: fresh randomness per write
    would cost more CPU than sending it.  Random data does not compress, and
    only a deduplicating WAN optimiser could exploit the repeat period
    (256 KiB for HTTP, the message size for WebSocket).
    """

    def __init__(self, registry: SessionRegistry, clock, client_ip: ClientIP, limits: LoadLimits = LoadLimits()):
        self._registry = registry
        self._clock = clock
        self._client_ip = client_ip
        self.limits = limits
        self._random = os.urandom(max(MAX_MESSAGE_BYTES, limits.download_block_bytes))
        self._block = self._random[: limits.download_block_bytes]

    def download(self, request):
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
        limit_unsent_bytes(request.transport, self.limits.unsent_bytes_per_socket)
        stream = DownloadStream(request, self._block, budget, lambda size: _add_download(session, size))
        return stream.start(self._clock, seconds).addBoth(slot.release)

    def upload(self, request) -> bytes:
        """The body has already been counted and dropped by ``LoadAwareRequest``."""
        sink = getattr(request, "upload", None)
        if sink is None:
            return json_error(request, 400, "send uploads to POST /upload?test=ID&token=TOKEN")
        return json_body(request, {"received": sink.received})

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
            unsent_bytes=self.limits.unsent_bytes_per_socket,
            count_bytes=lambda size: _add_download(session, size),
            slot=slot,
        )
        return WebSocketResource(bulk_download_factory(plan, self._clock, self.limits))

    def progress(self, request, test_id: str) -> bytes:
        """What the server has counted, so the client can time upload by acknowledged bytes."""
        try:
            session = authorize(self._registry, request.args, self._client_ip(request), test_id=test_id)
        except LoadRefused as refused:
            return json_error(request, refused.status, refused.reason)
        return json_body(request, {"upload_bytes": session.upload_bytes, "download_bytes": session.download_bytes})

    def _authorize(self, request) -> TestSession:
        return authorize(self._registry, request.args, self._client_ip(request))

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


def _add_download(session: TestSession, size: int) -> None:
    session.download_bytes += size
