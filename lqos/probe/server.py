"""The probe's two ways to measure latency: a WebSocket echo and ``GET /ping``.

The browser sends ``{"seq": N, "t": T}`` every 100 ms and times the echo
itself; the server adds nothing to the message, so the round trip contains
no server clock.  Right after each echo the server also sends a WebSocket
Ping on the same connection and times its Pong, which the client's network
stack answers without waiting for the page: the same path through the
network, without the time a busy browser takes to hand a message to its
script.  The server also reads from the kernel how long the client's TCP
took to acknowledge the segment that carried the echo and the Ping
(``lqos/net/acktimer.py``), which even a browser's busy network thread
cannot delay.  The server tells the client both round trips
(``{"seq": N, "server_rtt_ms": X, "ack_rtt_ms": Y}``) and the client submits
them with its own; the grade uses the server's (``lqos/measure/grading.py``).

Every connection is bounded: message size, message rate, idle time and
lifetime.  A client that breaks a bound loses its own connection, nobody
else's.  The HTTP side is bounded too: a request's line
and headers must arrive within ``HEAD_SECONDS`` (a byte-by-byte trickle
would otherwise reset the idle timeout forever), and no request may carry a
body (Twisted would spool any size of it to a temporary file).
"""

from __future__ import annotations

import json
from io import BytesIO

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.protocols.policies import TimeoutMixin
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from lqos.measure.units import SECONDS, MINUTES
from lqos.net.acktimer import acknowledgement_rtt_ms, read_counters
from lqos.net.ratelimit import TokenBucket
from lqos.net.refusal import Refused, raw_response
from lqos.net.sockets import send_small_messages_at_once
from lqos.net.websocket import PongTimer, apply_server_options, is_echo_request, json_object


MAX_PROBE_BYTES = 256
PROBES_PER_SECOND = 50
PROBE_BURST = 50
# Pings whose Pong has not come back yet; the oldest is forgotten beyond this
# (50 probes a second, each timed for at most the clients' 2 s timeout).
MAX_PINGS_IN_FLIGHT = 128
IDLE_TIMEOUT = 30 * SECONDS
MAX_CONNECTION_LIFETIME = 15 * MINUTES
HTTP_TIMEOUT = 30 * SECONDS
# Slowloris bound: a probe connection sends one short request head at once.
HEAD_SECONDS = 10 * SECONDS
# The probe's endpoints take no body; a few bytes are tolerated, not stored.
MAX_BODY_BYTES = 1024
REFUSAL_LINGER = 0.5 * SECONDS

# Autobahn lets an application close only with 1000 or 3000-4999; the 4xxx
# codes below echo the HTTP statuses they correspond to.
CLOSE_NORMAL = WebSocketProtocol.CLOSE_STATUS_CODE_NORMAL
CLOSE_BAD_PROBE = 4400
CLOSE_TOO_MANY_PROBES = 4429


def probe_message(payload: bytes) -> dict | None:
    """The probe in *payload*: a JSON object with a whole-number ``seq`` and a numeric ``t``; else None."""
    message = json_object(payload)
    return message if message is not None and is_echo_request(message) else None


def is_probe(payload: bytes) -> bool:
    return probe_message(payload) is not None


# Headers a reverse proxy adds.  A proxy ends TCP, so the acknowledgements
# this server's kernel sees would time only the hop to it.
PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


class ProbeEchoProtocol(WebSocketServerProtocol, TimeoutMixin):
    """Echo each probe at once; close the connection of a client that misbehaves."""

    _times_acknowledgements = True

    def onConnect(self, request) -> None:
        self._times_acknowledgements = not any(header in request.headers for header in PROXY_HEADERS)

    def onOpen(self) -> None:
        send_small_messages_at_once(self.transport)
        clock = self.factory.reactor
        self._bucket = TokenBucket(PROBES_PER_SECOND, PROBE_BURST, clock.seconds())
        self._lifetime = clock.callLater(MAX_CONNECTION_LIFETIME, self._close, CLOSE_NORMAL, "lifetime")
        self.callLater = clock.callLater
        self.setTimeout(IDLE_TIMEOUT)
        self._pong_timer = PongTimer(MAX_PINGS_IN_FLIGHT)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.state != WebSocketProtocol.STATE_OPEN:
            # A probe that came in the same read as one we closed on: Autobahn
            # still delivers it, and raises if it is echoed.
            return
        self.resetTimeout()
        probe = None if isBinary else probe_message(payload)
        if probe is None:
            self._close(CLOSE_BAD_PROBE, "a probe is a JSON text message {seq, t}")
        elif not self._bucket.take(self.factory.reactor.seconds()):
            self._close(CLOSE_TOO_MANY_PROBES, f"more than {PROBES_PER_SECOND} probes per second")
        else:
            # The echo and its Ping leave in one segment (Twisted writes what a
            # callback wrote at once), whose acknowledgement the kernel times.
            before = read_counters(self.transport) if self._times_acknowledgements else None
            self.sendMessage(payload, isBinary=False)
            # A Ping right behind the echo; onPong reports how long it took.
            self.sendPing(self._pong_timer.ping_for((probe["seq"], before)))

    def onPong(self, payload: bytes) -> None:
        timed = self._pong_timer.pong(payload)
        if timed is None or self.state != WebSocketProtocol.STATE_OPEN:
            return  # not a Ping of ours, or one forgotten
        (seq, before), rtt_ms = timed
        # The Pong carries the acknowledgement of the segment, if none came before it.
        ack_rtt_ms = None if before is None else acknowledgement_rtt_ms(before, read_counters(self.transport))
        report = {"seq": seq, "server_rtt_ms": rtt_ms, "ack_rtt_ms": ack_rtt_ms}
        self.sendMessage(json.dumps(report, separators=(",", ":")).encode(), isBinary=False)

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


class ProbeChannel(HTTPChannel):
    """HTTP/1.1 with a deadline for each request's line and headers.

    The deadline runs from the connection's opening and again from the end of
    each response; the idle timeout alone would let a client that sends a
    byte every few seconds hold a connection for ever.  (The main port does
    the same with ``lqos.net.connections.ConnectionGuard``; that wrapper cannot sit over
    TLS here, where the child's endpoint puts TLS outside the site, because
    Autobahn then takes the wrapper for a TLS transport and fails.)  A
    WebSocket upgrade takes the transport away from the channel after its
    head is in, so an open probe WebSocket is left to its own timeouts.
    """

    head_seconds = HEAD_SECONDS
    _head_deadline = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._arm_head_deadline()

    def allHeadersReceived(self) -> None:
        self._cancel_head_deadline()
        super().allHeadersReceived()

    def requestDone(self, request) -> None:
        super().requestDone(request)
        if self.persistent and self.transport is not None and not getattr(self.transport, "disconnecting", False):
            self._arm_head_deadline()

    def connectionLost(self, reason) -> None:
        self._cancel_head_deadline()
        super().connectionLost(reason)

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.callLater(self.head_seconds, self._head_too_slow)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None and self._head_deadline.active():
            self._head_deadline.cancel()
        self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.transport is not None:
            self.transport.abortConnection()


class ProbeRequest(Request):
    """A request with no room for a body.

    A body beyond ``MAX_BODY_BYTES`` gets a 413 at once; the rest of it is
    read and dropped for ``REFUSAL_LINGER`` (closing while the client still
    sends would reset the connection and could destroy the answer), then
    the connection closes.
    """

    _refused = False
    _linger = None

    def gotLength(self, length: int | None) -> None:
        self.content = BytesIO()
        if length is None or length > MAX_BODY_BYTES:
            self._refuse_body()

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        if self.content.tell() + len(data) > MAX_BODY_BYTES:
            self._refuse_body()
        else:
            self.content.write(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            self._hang_up()
            return
        super().requestReceived(command, path, version)

    def connectionLost(self, reason) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)

    def _refuse_body(self) -> None:
        self._refused = True
        self.requestHeaders.removeHeader(b"expect")  # no "100 Continue" for a body we refuse
        self.channel.transport.write(raw_response(Refused(413, "the probe takes no request body")))
        self._linger = self.channel.callLater(REFUSAL_LINGER, self._hang_up)

    def _hang_up(self) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        if self.channel is not None and self.channel.transport is not None:
            self.channel.loseConnection()


class QuietSite(Site):
    """A site that writes no access log: probes would flood it ten times a second.

    It speaks HTTP/1.1 only, over ``ProbeChannel``.
    """

    protocol = ProbeChannel

    def acceptableProtocols(self) -> list[bytes]:
        return [b"http/1.1"]

    def log(self, request) -> None:
        pass


def probe_factory(reactor) -> WebSocketServerFactory:
    factory = WebSocketServerFactory(reactor=reactor)
    factory.protocol = ProbeEchoProtocol
    return apply_server_options(factory, MAX_PROBE_BYTES)


def probe_site(reactor, send_to_parent=None) -> Site:
    """``/ws/probe`` (WebSocket echo) and ``/ping`` on one port; it reports nothing."""
    root = Resource()
    websockets = Resource()
    websockets.putChild(b"probe", WebSocketResource(probe_factory(reactor)))
    root.putChild(b"ws", websockets)
    root.putChild(b"ping", PingResource())
    return QuietSite(root, timeout=HTTP_TIMEOUT, requestFactory=ProbeRequest, reactor=reactor)
