"""The probe's two ways to measure latency: a WebSocket echo and ``GET /ping``.

The browser sends ``{"seq": N, "t": T}`` every 100 ms and times the echo
itself; the server adds nothing to the message, so the round trip contains
no server clock.  Every connection is bounded: message size, message rate,
idle time and lifetime.  A client that breaks a bound loses its own
connection, nobody else's.
"""

from __future__ import annotations

import json

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.protocols.policies import TimeoutMixin
from twisted.web.resource import Resource
from twisted.web.server import Site

from lqos.ratelimit import TokenBucket
from lqos.tcp import send_small_messages_at_once

SECONDS = 1.0
MINUTES = 60 * SECONDS

MAX_PROBE_BYTES = 256
PROBES_PER_SECOND = 50
PROBE_BURST = 50
IDLE_TIMEOUT = 30 * SECONDS
MAX_CONNECTION_LIFETIME = 15 * MINUTES
HTTP_TIMEOUT = 30 * SECONDS

# Autobahn lets an application close only with 1000 or 3000-4999; the 4xxx
# codes below echo the HTTP statuses they correspond to.
CLOSE_NORMAL = WebSocketProtocol.CLOSE_STATUS_CODE_NORMAL
CLOSE_BAD_PROBE = 4400
CLOSE_TOO_MANY_PROBES = 4429


def is_probe(payload: bytes) -> bool:
    """A probe is a JSON object with a whole-number ``seq`` and a numeric ``t``."""
    try:
        message = json.loads(payload)
    except ValueError:
        return False
    if not isinstance(message, dict):
        return False
    seq, sent = message.get("seq"), message.get("t")
    return (
        isinstance(seq, int)
        and not isinstance(seq, bool)
        and seq >= 0
        and isinstance(sent, (int, float))
        and not isinstance(sent, bool)
    )


class ProbeEchoProtocol(WebSocketServerProtocol, TimeoutMixin):
    """Echo each probe at once; close the connection of a client that misbehaves."""

    def onOpen(self) -> None:
        send_small_messages_at_once(self.transport)
        clock = self.factory.reactor
        self._bucket = TokenBucket(PROBES_PER_SECOND, PROBE_BURST, clock.seconds())
        self._lifetime = clock.callLater(MAX_CONNECTION_LIFETIME, self._close, CLOSE_NORMAL, "lifetime")
        self.callLater = clock.callLater
        self.setTimeout(IDLE_TIMEOUT)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.resetTimeout()
        if isBinary or not is_probe(payload):
            self._close(CLOSE_BAD_PROBE, "a probe is a JSON text message {seq, t}")
        elif not self._bucket.take(self.factory.reactor.seconds()):
            self._close(CLOSE_TOO_MANY_PROBES, f"more than {PROBES_PER_SECOND} probes per second")
        else:
            self.sendMessage(payload, isBinary=False)

    def timeoutConnection(self) -> None:
        self._close(CLOSE_NORMAL, "idle")

    def _close(self, code: int, reason: str) -> None:
        self.sendClose(code, reason)

    def onClose(self, wasClean: bool, code: int, reason: str) -> None:
        self.setTimeout(None)
        lifetime = getattr(self, "_lifetime", None)
        if lifetime is not None and lifetime.active():
            lifetime.cancel()


class PingResource(Resource):
    """``GET /ping``: the smallest possible answer, readable and timeable cross-origin.

    Only CORS-safelisted headers are involved, so a browser sends no preflight
    (which would double the round trips), and ``Timing-Allow-Origin`` lets the
    page read Resource Timing entries for it.
    """

    isLeaf = True

    def render_GET(self, request) -> bytes:
        request.setHeader(b"content-type", b"text/plain")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"access-control-allow-origin", b"*")
        request.setHeader(b"timing-allow-origin", b"*")
        return b"pong"

    render_HEAD = render_GET


class QuietSite(Site):
    """A site that writes no access log: probes would flood it ten times a second."""

    def log(self, request) -> None:
        pass


def probe_factory(reactor) -> WebSocketServerFactory:
    factory = WebSocketServerFactory(reactor=reactor)
    factory.protocol = ProbeEchoProtocol
    factory.setProtocolOptions(
        maxFramePayloadSize=MAX_PROBE_BYTES,
        maxMessagePayloadSize=MAX_PROBE_BYTES,
        openHandshakeTimeout=5 * SECONDS,
        closeHandshakeTimeout=1 * SECONDS,
        # Say why (1009 "message too big") instead of dropping the TCP connection.
        failByDrop=False,
    )
    return factory


def probe_site(reactor, send_to_parent=None) -> Site:
    """``/ws/probe`` (WebSocket echo) and ``/ping`` on one port; it reports nothing."""
    root = Resource()
    websockets = Resource()
    websockets.putChild(b"probe", WebSocketResource(probe_factory(reactor)))
    root.putChild(b"ws", websockets)
    root.putChild(b"ping", PingResource())
    return QuietSite(root, timeout=HTTP_TIMEOUT)
