"""One HTTP/2 connection of the RPM client, on the ``h2`` library: probes, a large download, an endless upload.

Twisted has no HTTP/2 client, and the draft needs what a general client
hides: the moments TCP connected and TLS finished (a foreign probe's
``tcp`` and ``tls`` parts), small requests multiplexed beside a bulk
stream on the same connection (self probes), and an upload body with no
end.  Received data is dropped as it arrives and its window handed back
at once; the upload is written while the flow-control window and the
socket take it, with ``TCP_NOTSENT_LOWAT`` so that bytes counted as sent
are bytes the network is carrying, not bytes in a kernel buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from h2.config import H2Configuration
from h2.events import (ConnectionTerminated, DataReceived, ResponseReceived, StreamEnded, StreamReset,
                       WindowUpdated)
from h2.settings import SettingCodes
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener
from zope.interface import implementer

from lqos.client.http import describe_error
from lqos.net.h2 import H2Endpoint
from lqos.net.sockets import limit_unsent_bytes, send_small_messages_at_once

KiB = 1024
MiB = 1024 * KiB
WINDOW_BYTES = 16 * MiB
CONNECTION_WINDOW_BYTES = 64 * MiB
# TCP_NOTSENT_LOWAT and the upload DATA written per turn of the reactor: a self
# probe on an upload connection waits behind both (the server's side has the
# same bounds, and why: lqos/nq/limits.py).
UNSENT_BYTES = 16 * KiB
PUMP_BYTES = 64 * KiB
UPLOAD_BLOCK = bytes(range(256)) * 256  # 64 KiB; the server drops it unread


class H2Error(Exception):
    """The connection or a stream failed; the message says how."""


@dataclass
class _Stream:
    done: Deferred  # fires with the status when the response has ended
    on_data: Callable[[bytes], None] | None
    status: int | None = None


@implementer(IHandshakeListener)
class H2Client(H2Endpoint):
    """The client side of one HTTP/2 connection.

    ``ready`` fires with the connection once TLS chose ``h2``; ``tcp_at`` and
    ``tls_at`` are the clock's readings when TCP connected and TLS finished.
    """

    def __init__(self, clock, authority: str):
        super().__init__(clock, H2Configuration(client_side=True, header_encoding=None), PUMP_BYTES)
        self._authority = authority.encode()
        self._streams: dict[int, _Stream] = {}
        self._uploads: dict[int, Callable[[int], None]] = {}  # stream -> what counts its sent bytes
        self._last_stream = 0
        self.ready: Deferred = Deferred()
        self.tcp_at: float | None = None
        self.tls_at: float | None = None

    # Connection events.

    def connectionMade(self) -> None:
        self.tcp_at = self._clock.seconds()
        self.transport.registerProducer(self, True)

    def handshakeCompleted(self) -> None:
        self.tls_at = self._clock.seconds()
        if getattr(self.transport, "negotiatedProtocol", None) != b"h2":
            self._fail_ready(H2Error("the server did not choose HTTP/2 (ALPN h2)"))
            self.transport.loseConnection()
            return
        send_small_messages_at_once(self.transport)
        limit_unsent_bytes(self.transport, UNSENT_BYTES)
        self._h2.initiate_connection()
        self._h2.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: WINDOW_BYTES, SettingCodes.ENABLE_PUSH: 0})
        self._h2.increment_flow_control_window(CONNECTION_WINDOW_BYTES - 65535)
        self._flush()
        self.open = True
        self.ready.callback(self)

    def protocol_error(self, error) -> None:
        self._fail_all(H2Error(f"HTTP/2 protocol error: {error}"))

    def connectionLost(self, reason=None) -> None:
        super().connectionLost(reason)
        if not self.ready.called:
            why = describe_error(reason.value) if reason else "the connection closed"
            self._fail_ready(H2Error(f"{why}; the draft's servers speak HTTP/2 over TLS (ALPN h2)"))
        self._fail_all(H2Error("the connection closed"))

    # Requests.

    def get(self, path: str, on_data: Callable[[bytes], None] | None = None) -> Deferred:
        """GET *path*; fires with the status when the response has ended (its body goes to *on_data*)."""
        return self._request(b"GET", path, on_data, end_stream=True)

    def post_endless(self, path: str, on_sent: Callable[[int], None]) -> Deferred:
        """POST an endless body to *path*, *on_sent* counting what was written; fires if the server ends it."""
        done = self._request(b"POST", path, None, end_stream=False)
        self._uploads[self._last_stream] = on_sent
        self._schedule_pump()
        return done

    def close(self) -> None:
        """Say goodbye (GOAWAY) and close."""
        if self.open:
            self.open = False
            self._h2.close_connection()
            self._flush()
        self._cancel_pump()
        self.transport.loseConnection()

    def _request(self, method: bytes, path: str, on_data, end_stream: bool) -> Deferred:
        if not self.open:
            raise H2Error("the connection is not open")
        stream_id = self._h2.get_next_available_stream_id()
        self._h2.send_headers(stream_id, [(b":method", method), (b":scheme", b"https"),
                                          (b":authority", self._authority), (b":path", path.encode()),
                                          (b"user-agent", b"lqos-bufferbloat-rpm")], end_stream=end_stream)
        self._last_stream = stream_id
        stream = _Stream(Deferred(), on_data)
        self._streams[stream_id] = stream
        self._flush()
        return stream.done

    def handle(self, event) -> None:
        stream = self._streams.get(getattr(event, "stream_id", None))
        if isinstance(event, ResponseReceived) and stream is not None:
            stream.status = int(dict(event.headers).get(b":status", b"0"))
        elif isinstance(event, DataReceived):
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if stream is not None and stream.on_data is not None:
                stream.on_data(event.data)
        elif isinstance(event, StreamEnded) and stream is not None:
            self._finish(event.stream_id, lambda done: done.callback(stream.status))
        elif isinstance(event, StreamReset) and stream is not None:
            self._finish(event.stream_id, lambda done: done.errback(H2Error(f"the server reset the stream ({event.error_code!r})")))
        elif isinstance(event, ConnectionTerminated):
            self.open = False
            self.transport.loseConnection()
        elif isinstance(event, WindowUpdated):
            pass  # the pump after every read uses the new window

    def _finish(self, stream_id: int, settle: Callable[[Deferred], None]) -> None:
        stream = self._streams.pop(stream_id)
        self._uploads.pop(stream_id, None)
        settle(stream.done)

    def _fail_ready(self, error: Exception) -> None:
        if not self.ready.called:
            self.ready.errback(error)

    def _fail_all(self, error: Exception) -> None:
        streams, self._streams, self._uploads = self._streams, {}, {}
        for stream in streams.values():
            stream.done.errback(error)

    # The upload pump.

    def has_data(self) -> bool:
        return bool(self._uploads)

    def write_data(self, budget: int) -> int:
        for stream_id, on_sent in list(self._uploads.items()):
            while budget > 0:
                size = min(budget, len(UPLOAD_BLOCK), self._h2.local_flow_control_window(stream_id),
                           self._h2.max_outbound_frame_size)
                if size <= 0:
                    break
                self._h2.send_data(stream_id, memoryview(UPLOAD_BLOCK)[:size])
                budget -= size
                on_sent(size)
        return budget
