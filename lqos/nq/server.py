"""One HTTP/2 connection to the networkQuality port, on the ``h2`` protocol library.

Why not twisted.web's own HTTP/2: it writes one DATA frame of at most the
client's frame size (16 KiB) per reactor turn, keeps h2's 65,535-byte
windows (an upload then moves 64 KiB per round trip), and queues whatever a
response writes until the client's window takes it.  These four endpoints
are bulk data and tiny probes, so this protocol does only that: it writes
up to ``pump_bytes`` of DATA per turn, offers large windows, drops uploaded
bytes as they arrive, and answers a probe ahead of any bulk data it has not
yet written.

Routes (docs/PROTOCOL.md, "networkQuality"): ``GET /.well-known/nq`` (the
configuration), ``GET /nq/small`` (1 byte), ``GET /nq/large`` (8 GiB, cut
after ``bulk_seconds``), ``POST /nq/upload`` (any body, dropped; 200 at
its end, or a reset after ``bulk_seconds``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections import Counter, deque
from dataclasses import dataclass, field

from h2.config import H2Configuration
from h2.errors import ErrorCodes
from h2.events import (ConnectionTerminated, DataReceived, RemoteSettingsChanged, RequestReceived, StreamEnded,
                       StreamReset, WindowUpdated)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from zope.interface import implementer

from lqos.net.connections import connection_guard
from lqos.net.h2 import H2Endpoint
from lqos.net.sockets import limit_unsent_bytes, send_small_messages_at_once
from lqos.nq.limits import NQLimits

log = Logger()

CONFIG_PATH = b"/.well-known/nq"
SMALL_PATH = b"/nq/small"
LARGE_PATH = b"/nq/large"
UPLOAD_PATH = b"/nq/upload"
METHODS = {CONFIG_PATH: b"GET", SMALL_PATH: b"GET", LARGE_PATH: b"GET", UPLOAD_PATH: b"POST"}
RETRY_AFTER_SECONDS = 10
# A host name, an IPv4 address or a bracketed IPv6 one, and an optional port.
AUTHORITY = re.compile(rb"^(?P<host>[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::(?P<port>[0-9]{1,5}))?$")
# What a client that did not negotiate HTTP/2 reads before the connection closes.
_NOT_HTTP2_TEXT = b"This port speaks HTTP/2 only (ALPN h2), over TLS\n"
NOT_HTTP2 = (b"HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain\r\nConnection: close\r\n"
             b"Content-Length: %d\r\n\r\n%s" % (len(_NOT_HTTP2_TEXT), _NOT_HTTP2_TEXT))


def nq_configuration(authority: bytes, port: int) -> bytes | None:
    """The draft's configuration for a client that reached us as *authority*; None if that is no host[:port].

    The URLs name the host the client used, with the port written out, as
    Apple's samples do.  Both the draft's key names and goresponsiveness's
    (which reads only the ``*_https_*`` ones) are given.
    """
    match = AUTHORITY.match(authority)
    if match is None or (match["port"] is not None and not 0 < int(match["port"]) < 65536):
        return None
    base = f"https://{match['host'].decode()}:{int(match['port'] or port)}"
    small, large, upload = (base + path.decode() for path in (SMALL_PATH, LARGE_PATH, UPLOAD_PATH))
    return json.dumps({"version": 1, "urls": {
        "small_https_download_url": small, "large_https_download_url": large, "https_upload_url": upload,
        "small_download_url": small, "large_download_url": large, "upload_url": upload,
    }}).encode()


@dataclass
class _Body:
    """A response body still to be written on one stream."""

    stream_id: int
    remaining: int
    data: bytes  # a fixed body, or the block a bulk body repeats
    bulk: bool
    offset: int = 0

    def take(self, size: int) -> memoryview:
        size = min(size, self.remaining, len(self.data) - self.offset)
        chunk = memoryview(self.data)[self.offset:self.offset + size]
        self.remaining -= size
        self.offset = 0 if self.bulk and self.offset + size >= len(self.data) else self.offset + size
        return chunk


@dataclass
class NQShared:
    """What a worker's connections share: the bounds, the clock, one random block, bulk streams per address."""

    limits: NQLimits
    clock: object
    block: bytes = b""
    bulk_by_ip: Counter = field(default_factory=Counter)
    bulk_total: int = 0

    def __post_init__(self):
        if not self.block:
            self.block = os.urandom(self.limits.block_bytes)

    def admit_bulk(self, host: str) -> tuple[int, str] | None:
        """Take a bulk slot for *host*; or the status and reason of a refusal."""
        if self.bulk_total >= self.limits.bulk_streams_total:
            return 503, "the server is carrying as many large streams as it can"
        if self.bulk_by_ip[host] >= self.limits.bulk_streams_per_ip:
            return 429, "too many large downloads and uploads from this address at once"
        self.bulk_by_ip[host] += 1
        self.bulk_total += 1
        return None

    def release_bulk(self, host: str) -> None:
        self.bulk_total -= 1
        self.bulk_by_ip[host] -= 1
        if self.bulk_by_ip[host] <= 0:
            del self.bulk_by_ip[host]


@implementer(IHandshakeListener)
class NQConnection(H2Endpoint):
    """The server side of one HTTP/2 connection; also the push producer its transport pauses."""

    def __init__(self, shared: NQShared):
        super().__init__(shared.clock, H2Configuration(client_side=False, header_encoding=None),
                         shared.limits.pump_bytes)
        self._shared = shared
        self._limits = shared.limits
        self._bodies: dict[int, _Body] = {}  # responses still being written, oldest first
        self._uploads: dict[int, int] = {}  # stream -> bytes received
        self._bulk: dict = {}  # large downloads and uploads: stream -> its bulk_seconds timer
        self._streams = set()  # streams with a request in progress
        self._order: deque[int] = deque()  # bulk bodies, in turn
        self._blocked_control_bytes = 0
        self._tokens = float(self._limits.stream_burst)
        self._tokens_at = shared.clock.seconds()
        self._host = ""
        self._guard = None  # the port's ConnectionGuard: its idle deadline runs while no stream is open

    # The connection.

    def connectionMade(self) -> None:
        self._host = self.transport.getPeer().host
        self._guard = connection_guard(self.transport)
        self.transport.registerProducer(self, True)

    def handshakeCompleted(self) -> None:
        """TLS is up: HTTP/2 if ALPN chose it, else a plain refusal (the draft's clients all speak h2)."""
        if getattr(self.transport, "negotiatedProtocol", None) != b"h2":
            self.transport.write(NOT_HTTP2)
            self.transport.loseConnection()
            return
        self.open = True
        limit_unsent_bytes(self.transport, self._limits.unsent_bytes_per_socket)
        send_small_messages_at_once(self.transport)
        self._h2.initiate_connection()
        self._h2.update_settings({
            SettingCodes.MAX_CONCURRENT_STREAMS: self._limits.max_concurrent_streams,
            SettingCodes.INITIAL_WINDOW_SIZE: self._limits.stream_window_bytes,
            SettingCodes.MAX_HEADER_LIST_SIZE: self._limits.max_header_list_bytes,
        })
        self._h2.increment_flow_control_window(self._limits.connection_window_bytes - 65535)
        self._flush()

    def protocol_error(self, error: ProtocolError) -> None:
        log.debug("nq: protocol error from {host}: {error}", host=self._host, error=error)

    def connectionLost(self, reason=None) -> None:
        super().connectionLost(reason)
        for stream_id in list(self._streams):
            self._close_stream(stream_id)

    def resumeProducing(self) -> None:
        self._blocked_control_bytes = 0
        super().resumeProducing()

    # Requests.

    def handle(self, event) -> None:
        if isinstance(event, RequestReceived):
            self._request(event.stream_id, dict(event.headers), event.stream_ended is not None)
        elif isinstance(event, DataReceived):
            if event.stream_id in self._uploads:
                self._uploads[event.stream_id] += len(event.data)
            # Every body is dropped as it arrives, so its window is handed back at once.
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, StreamEnded):
            if event.stream_id in self._uploads:
                self._respond(event.stream_id, 200, b"", b"text/plain")
        elif isinstance(event, StreamReset):
            self._close_stream(event.stream_id)
        elif isinstance(event, ConnectionTerminated):
            self.transport.loseConnection()
        elif isinstance(event, (WindowUpdated, RemoteSettingsChanged)):
            pass  # the pump scheduled after every read uses the new window

    def _request(self, stream_id: int, headers: dict, ended: bool) -> None:
        if not self._take_token():
            self._h2.close_connection(ErrorCodes.ENHANCE_YOUR_CALM)
            self._flush()
            self.transport.loseConnection()
            return
        self._streams.add(stream_id)
        if self._guard is not None:
            self._guard.request_head_received()
        path = headers.get(b":path", b"").split(b"?", 1)[0]
        method = headers.get(b":method", b"")
        if path not in METHODS:
            return self._error(stream_id, 404, "no such path on the networkQuality port")
        if method != METHODS[path]:
            return self._error(stream_id, 405, f"{path.decode()} takes {METHODS[path].decode()}")
        if path == CONFIG_PATH:
            body = nq_configuration(headers.get(b":authority", headers.get(b"host", b"")),
                                    self.transport.getHost().port)
            if body is None:
                return self._error(stream_id, 400, "the request names no valid host")
            return self._respond(stream_id, 200, body, b"application/json")
        if path == SMALL_PATH:
            return self._respond(stream_id, 200, b"x", b"application/octet-stream")
        refusal = self._shared.admit_bulk(self._host)
        if refusal is not None:
            return self._error(stream_id, *refusal, retry=True)
        self._bulk[stream_id] = self._shared.clock.callLater(self._limits.bulk_seconds, self._expire, stream_id)
        if path == LARGE_PATH:
            self._respond(stream_id, 200, self._shared.block, b"application/octet-stream",
                          length=self._limits.large_bytes)
        else:
            self._uploads[stream_id] = 0
            if ended:
                self._respond(stream_id, 200, b"", b"text/plain")

    def _take_token(self) -> bool:
        now = self._shared.clock.seconds()
        self._tokens = min(self._limits.stream_burst,
                           self._tokens + (now - self._tokens_at) * self._limits.streams_per_second)
        self._tokens_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _error(self, stream_id: int, status: int, reason: str, retry: bool = False) -> None:
        extra = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())] if retry else []
        self._respond(stream_id, status, json.dumps({"error": reason}).encode(), b"application/json", extra=extra)

    def _respond(self, stream_id: int, status: int, data: bytes, content_type: bytes,
                 length: int | None = None, extra: list | None = None) -> None:
        """Send the headers now; the body goes out from the pump, small bodies first."""
        length = len(data) if length is None else length
        headers = [(b":status", str(status).encode()), (b"content-type", content_type),
                   (b"content-length", str(length).encode()), (b"cache-control", b"no-store")] + (extra or [])
        self._uploads.pop(stream_id, None)
        try:
            self._h2.send_headers(stream_id, headers, end_stream=length == 0)
        except ProtocolError:  # the client reset the stream in the same read that opened it
            self._close_stream(stream_id)
            return
        if length == 0:
            self._close_stream(stream_id)
            return
        body = _Body(stream_id, length, data, bulk=stream_id in self._bulk)
        self._bodies[stream_id] = body
        if body.bulk:
            self._order.append(stream_id)

    def _expire(self, stream_id: int) -> None:
        """A large download or an upload ran for bulk_seconds: reset it."""
        with contextlib.suppress(ProtocolError):  # already closed by the client
            self._h2.reset_stream(stream_id, ErrorCodes.CANCEL)
        self._close_stream(stream_id)
        self._flush()

    def _close_stream(self, stream_id: int) -> None:
        """The stream is over (answered, reset or cut): forget it and give back its slots."""
        if stream_id not in self._streams:
            return
        self._streams.discard(stream_id)
        self._bodies.pop(stream_id, None)
        self._uploads.pop(stream_id, None)
        if stream_id in self._order:
            self._order.remove(stream_id)
        timer = self._bulk.pop(stream_id, None)
        if timer is not None:
            if timer.active():
                timer.cancel()
            self._shared.release_bulk(self._host)
        if self._guard is not None:
            self._guard.response_done()

    # Writing.

    def has_data(self) -> bool:
        return bool(self._bodies)

    def write_data(self, budget: int) -> int:
        """Every small body first, then bulk bodies in turn, a frame each."""
        small = [stream_id for stream_id, body in self._bodies.items() if not body.bulk]
        for stream_id in small:
            budget -= self._send(stream_id, budget)
        progressed = True
        while budget > 0 and self._order and progressed:
            progressed = False
            for _ in range(len(self._order)):
                stream_id = self._order[0]
                self._order.rotate(-1)
                sent = self._send(stream_id, min(budget, self._h2.max_outbound_frame_size))
                budget -= sent
                progressed = progressed or sent > 0
                if budget <= 0:
                    break
        return budget

    def _send(self, stream_id: int, budget: int) -> int:
        """Write what the windows allow of one body, up to *budget* bytes; the bytes written."""
        body = self._bodies.get(stream_id)
        sent = 0
        while body is not None and sent < budget:
            size = min(budget - sent, self._h2.local_flow_control_window(stream_id), self._h2.max_outbound_frame_size)
            if size <= 0:
                break
            chunk = body.take(size)
            done = body.remaining == 0
            self._h2.send_data(stream_id, chunk, end_stream=done)
            sent += len(chunk)
            if done:
                self._close_stream(stream_id)
                break
        return sent

    def write(self, data: bytes) -> None:
        if self._paused:
            self._blocked_control_bytes += len(data)
            if self._blocked_control_bytes > self._limits.control_bytes_while_blocked:
                self.transport.abortConnection()
                return
        self.transport.write(data)


class NQFactory(Factory):
    def __init__(self, shared: NQShared):
        self.shared = shared

    def buildProtocol(self, addr) -> NQConnection:
        protocol = NQConnection(self.shared)
        protocol.factory = self
        return protocol
