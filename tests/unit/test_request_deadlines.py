"""How long, and how much, a client may take to say what it wants, on each kind of port.

* Main port: ``ConnectionGuard``'s request-head deadline
  (``http_request_head_seconds``) and the site's idle timeout
  (``http_idle_timeout_seconds``), around the real ``Site`` and
  ``LoadAwareRequest``.
* Probe port: ``ProbeChannel``'s head deadline and ``ProbeRequest``'s refusal
  of request bodies.
* Persona ports: the opening-handshake size bound and the refusal of plain
  GETs (no Autobahn status page, no ``?redirect=``).

All in memory, on a ``MemoryReactorClock``: a deadline is checked by moving
the clock, not by waiting.
"""

from __future__ import annotations

import json

import txaio
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from lqos.daemon.config import Config
from lqos.load.limits import LoadLimits
from lqos.load.request import LoadRequestFactory
from lqos.net.connections import ConnectionLimits
from lqos.personas.protocol import MAX_HANDSHAKE_BYTES, PersonaFactory
from lqos.personas.registry import discover_personas
from lqos.probe.server import HEAD_SECONDS as PROBE_HEAD_SECONDS
from lqos.probe.server import REFUSAL_LINGER, probe_site

CONFIG = Config()
HEAD = CONFIG.http_request_head_seconds
IDLE = CONFIG.http_idle_timeout_seconds
BODY = LoadLimits().stream_seconds
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
CLIENT = IPv4Address("TCP", "192.0.2.7", 40000)


class Pages(Resource):
    """``/`` answers at once; ``/slow`` answers when the test says so."""

    def __init__(self):
        super().__init__()
        self.waiting: list = []

    def getChild(self, name, request):
        return self

    def render(self, request):
        if request.path == b"/slow":
            self.waiting.append(request)
            return NOT_DONE_YET
        return b"hello"


class TcpLikeTransport(StringTransport):
    """A ``StringTransport`` that, like a TCP transport, lets a protocol unregister no producer
    (Autobahn always does when it drops a connection), and names its protocol (Autobahn's
    ``WebSocketResource`` hands the connection over through it)."""

    def unregisterProducer(self) -> None:
        self.producer = None


def response_status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


class MainPortDeadlineTests(SynchronousTestCase):
    """The main port's stack as lqos.daemon.service builds it: limits around a Site of LoadAwareRequests."""

    def setUp(self):
        self.connect(head_seconds=HEAD, idle_seconds=IDLE)

    def connect(self, head_seconds: float, idle_seconds: float) -> None:
        self.clock = MemoryReactorClock()
        self.pages = Pages()
        site = Site(self.pages, timeout=idle_seconds, reactor=self.clock,
                    requestFactory=LoadRequestFactory(self.clock))
        self.limits = ConnectionLimits(site, self.clock, per_ip=10, total=10, head_seconds=head_seconds)
        self.protocol = self.limits.buildProtocol(CLIENT)
        self.transport = StringTransport(peerAddress=CLIENT)
        self.protocol.makeConnection(self.transport)

    def tearDown(self):
        if not self.transport.disconnecting:
            self.protocol.connectionLost(Failure(ConnectionDone()))

    def test_a_connection_that_sends_nothing_is_aborted_at_the_head_deadline(self):
        self.clock.advance(HEAD - 0.1)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(self.transport.disconnected, "aborted")
        self.assertEqual(self.limits.head_timeouts, 1)

    def test_a_head_trickled_a_byte_a_second_is_cut_at_the_deadline_not_kept_alive(self):
        """Each byte resets the idle timeout; the head deadline does not move."""
        sent = 0
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            if self.transport.disconnecting:
                break
            self.protocol.dataReceived(bytes([byte]))
            sent += 1
            self.clock.advance(1.0)
        self.assertTrue(self.transport.disconnected)
        self.assertEqual(sent, int(HEAD))
        self.assertEqual(self.transport.value(), b"", "no answer to a head that never ended")

    def test_once_the_head_is_in_a_long_response_is_not_cut(self):
        self.protocol.dataReceived(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        self.clock.advance(HEAD * 5)
        self.assertFalse(self.transport.disconnecting)
        (request,) = self.pages.waiting
        request.write(b"late")
        request.finish()
        self.assertEqual(response_status(self.transport.value()), 200)

    def test_after_a_response_the_next_head_gets_a_fresh_deadline(self):
        self.clock.advance(HEAD - 1)
        self.protocol.dataReceived(GET)
        self.assertEqual(response_status(self.transport.value()), 200)
        self.clock.advance(HEAD - 0.1)  # from the end of the response, not from the opening
        self.assertFalse(self.transport.disconnecting)
        self.protocol.dataReceived(GET)
        self.assertEqual(self.transport.value().count(b"HTTP/1.1 200 OK"), 2)
        self.clock.advance(HEAD + 0.1)
        self.assertTrue(self.transport.disconnected, "a kept-alive connection that goes quiet is closed too")

    def test_a_body_that_stalls_gets_408_at_the_body_deadline(self):
        """With the defaults the body deadline comes before the idle timeout, and says why."""
        self.protocol.dataReceived(b"POST /anything HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        self.clock.advance(BODY - 0.1)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(0.2)
        self.assertEqual(response_status(self.transport.value()), 408)

    def test_an_idle_timeout_set_below_the_head_deadline_closes_a_silent_connection(self):
        """An operator may shorten ``http_idle_timeout_seconds``; a silent connection then ends sooner."""
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.connect(head_seconds=HEAD, idle_seconds=5)
        self.protocol.dataReceived(GET)
        self.clock.advance(4.9)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(self.transport.disconnecting)
        self.assertFalse(self.transport.disconnected, "closed in order, not aborted: that was the idle timeout")

    def test_a_body_trickled_past_the_stream_deadline_gets_408(self):
        """Activity keeps the idle timeout away; the body deadline still ends it, with a reason."""
        self.protocol.dataReceived(b"POST /anything HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(int(BODY) + 1):
            self.protocol.dataReceived(b"x")
            self.clock.advance(1.0)
        head, _, body = self.transport.value().partition(b"\r\n\r\n")
        self.assertEqual(response_status(head), 408)
        self.assertIn("error", json.loads(body))


class ProbePortTests(SynchronousTestCase):
    """The probe child's site: a head deadline of its own, and no request bodies."""

    def setUp(self):
        self.clock = MemoryReactorClock()
        self.site = probe_site(self.clock)
        self.protocol = self.site.buildProtocol(CLIENT)
        self.transport = TcpLikeTransport(peerAddress=CLIENT)
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)

    def tearDown(self):
        if not self.transport.disconnecting:
            self.protocol.connectionLost(Failure(ConnectionDone()))

    def test_a_trickled_head_is_aborted_at_the_probe_deadline(self):
        for byte in b"GET /ws/probe HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            if self.transport.disconnecting:
                break
            self.protocol.dataReceived(bytes([byte]))
            self.clock.advance(0.5)
        self.assertTrue(self.transport.disconnected)
        self.assertAlmostEqual(self.clock.seconds(), PROBE_HEAD_SECONDS, delta=0.5)

    def test_ping_is_answered_and_the_next_head_gets_a_fresh_deadline(self):
        self.clock.advance(PROBE_HEAD_SECONDS - 1)
        self.protocol.dataReceived(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 200 "))
        self.assertTrue(self.transport.value().endswith(b"pong"))
        self.clock.advance(PROBE_HEAD_SECONDS - 0.1)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(self.transport.disconnected)

    def test_a_large_declared_body_gets_413_before_any_of_it_is_read(self):
        self.protocol.dataReceived(b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n"
                                   b"Expect: 100-continue\r\n\r\n")
        head, _, body = self.transport.value().partition(b"\r\n\r\n")
        self.assertEqual(response_status(head), 413, "and no 100 Continue before it")
        self.assertEqual(json.loads(body), {"error": "the probe takes no request body"})
        self.protocol.dataReceived(b"z" * 65536)  # what was already in flight is read and dropped
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(REFUSAL_LINGER)
        self.assertTrue(self.transport.disconnecting)

    def test_a_chunked_body_gets_413(self):
        self.protocol.dataReceived(b"POST /ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.assertEqual(response_status(self.transport.value()), 413)

    def test_a_few_bytes_of_body_are_tolerated(self):
        self.protocol.dataReceived(b"GET /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        self.assertTrue(self.transport.value().endswith(b"pong"))

    def test_a_plain_get_of_the_websocket_path_is_426_and_no_redirect(self):
        self._autobahn_timers_on(self.clock)
        self.protocol.dataReceived(b"GET /ws/probe?redirect=https%3A%2F%2Fevil.example%2F HTTP/1.1\r\n"
                                   b"Host: x\r\n\r\n")
        self.assertEqual(response_status(self.transport.value()), 426)
        self.assertNotIn(b"evil.example", self.transport.value())

    def _autobahn_timers_on(self, clock) -> None:
        _autobahn_timers_on(self, clock)


def _autobahn_timers_on(test: SynchronousTestCase, clock) -> None:
    """Autobahn schedules its handshake timers through txaio, on the global reactor unless told."""
    previous = txaio.config.loop
    txaio.config.loop = clock
    test.addCleanup(setattr, txaio.config, "loop", previous)


class PersonaHandshakeTests(SynchronousTestCase):
    def setUp(self):
        self.clock = MemoryReactorClock()
        _autobahn_timers_on(self, self.clock)
        factory = PersonaFactory(discover_personas()["gaming"], b"s" * 32, self.clock)
        self.protocol = factory.buildProtocol(CLIENT)
        self.transport = TcpLikeTransport(peerAddress=CLIENT)
        self.protocol.makeConnection(self.transport)

    def test_a_handshake_over_the_size_bound_gets_431_and_is_not_buffered(self):
        self.protocol.dataReceived(b"GET /ws/virtual-household/x HTTP/1.1\r\nHost: x\r\n")
        for _ in range(MAX_HANDSHAKE_BYTES // 1000 + 1):
            self.protocol.dataReceived(b"X-Filler: " + b"a" * 1000 + b"\r\n")
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 431 "), self.transport.value()[:60])
        self.assertTrue(self.transport.disconnecting)
        self.protocol.dataReceived(b"a" * 1_000_000)  # anything still arriving is dropped, not kept
        self.assertLessEqual(len(self.protocol.data), MAX_HANDSHAKE_BYTES)

    def test_a_plain_get_is_426_and_never_a_redirect(self):
        self.protocol.dataReceived(b"GET /?redirect=https%3A%2F%2Fevil.example%2F HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(response_status(self.transport.value()), 426)
        self.assertNotIn(b"evil.example", self.transport.value())

    def test_a_handshake_that_never_ends_is_dropped_at_the_handshake_timeout(self):
        self.protocol.dataReceived(b"GET /ws/virtual-household/x HTTP/1.1\r\nHost: x\r\n")
        self.clock.advance(self.protocol.factory.openHandshakeTimeout + 0.5)
        self.assertTrue(self.transport.disconnecting)
