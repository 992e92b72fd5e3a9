"""``ConnectionLimits``: how many connections the main port holds, per client address and in all.

Driven in memory (``StringTransport``, ``MemoryReactorClock``) around a real
Twisted ``Site``, so what is checked is what a client on the wire would see:
a connection over a limit gets a 503 with a JSON reason and is closed, and a
closed connection gives its place back.
"""

from __future__ import annotations

import json

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from lqos.net.connections import ConnectionGuard, ConnectionLimits


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request) -> bytes:
        return b"hello"


def address(host: str, port: int = 40000) -> IPv4Address:
    return IPv4Address("TCP", host, port)


class ConnectionLimitTests(SynchronousTestCase):
    def setUp(self):
        self.clock = MemoryReactorClock()
        self.limits = ConnectionLimits(Site(Hello(), reactor=self.clock), self.clock, per_ip=2, total=3,
                                       head_seconds=20, exempt=lambda host: host == "10.0.0.9")
        self.open: list = []

    def tearDown(self):
        # Close what is still open, so no head deadline is left on the clock.
        for protocol, transport in list(self.open):
            if not transport.disconnecting:
                self.close(protocol)

    def connect(self, host: str) -> tuple[object, StringTransport]:
        protocol = self.limits.buildProtocol(address(host))
        transport = StringTransport(peerAddress=address(host))
        protocol.makeConnection(transport)
        self.open.append((protocol, transport))
        return protocol, transport

    def close(self, protocol) -> None:
        """What the reactor reports when a connection ends (closed by either side, or aborted)."""
        self.open = [(p, t) for p, t in self.open if p is not protocol]
        protocol.connectionLost(Failure(ConnectionDone()))

    def assertServed(self, protocol, transport) -> None:
        self.assertIsInstance(protocol, ConnectionGuard)
        protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 OK"), transport.value()[:80])
        self.assertTrue(transport.value().endswith(b"hello"))

    def assertRefused(self, transport, reason: str) -> None:
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 503 "), head)
        self.assertIn(b"Retry-After: 10", head)
        self.assertEqual(json.loads(body), {"error": reason})
        self.assertTrue(transport.disconnecting, "a refused connection is closed")

    def test_connections_within_the_limits_are_served(self):
        for host in ("192.0.2.1", "192.0.2.1", "192.0.2.2"):
            self.assertServed(*self.connect(host))
        self.assertEqual(self.limits.open_total, 3)
        self.assertEqual(dict(self.limits.open_by_ip), {"192.0.2.1": 2, "192.0.2.2": 1})

    def test_one_address_over_its_limit_gets_503_and_others_are_still_served(self):
        self.connect("192.0.2.1")
        self.connect("192.0.2.1")
        _, refused = self.connect("192.0.2.1")
        self.assertRefused(refused, "too many connections from this address")
        self.assertServed(*self.connect("192.0.2.2"))
        self.assertEqual(self.limits.refused, 1)

    def test_over_the_total_every_address_gets_503(self):
        for host in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
            self.connect(host)
        _, refused = self.connect("192.0.2.4")
        self.assertRefused(refused, "the server has as many connections as it can take")
        self.assertEqual(self.limits.open_total, 3, "a refusal holds no place")

    def test_a_closed_connection_gives_its_place_back(self):
        first, _ = self.connect("192.0.2.1")
        self.connect("192.0.2.1")
        self.close(first)
        self.assertEqual(self.limits.open_by_ip["192.0.2.1"], 1)
        self.assertServed(*self.connect("192.0.2.1"))

    def test_an_address_with_no_open_connection_is_forgotten(self):
        """The per-address table shrinks again: a scan from many addresses leaves nothing behind."""
        protocols = [self.connect(f"198.51.100.{i}")[0] for i in range(3)]
        for protocol in protocols:
            self.close(protocol)
        self.assertEqual(dict(self.limits.open_by_ip), {})
        self.assertEqual(self.limits.open_total, 0)

    def test_a_connection_closed_by_its_head_deadline_gives_its_place_back(self):
        protocol, transport = self.connect("192.0.2.1")
        self.clock.advance(20)
        self.assertTrue(transport.disconnected, "aborted, not closed in order")
        self.close(protocol)  # what the reactor reports after the abort
        self.assertEqual(self.limits.open_total, 0)
        self.assertEqual(self.limits.head_timeouts, 1)

    def test_an_exempt_address_such_as_a_trusted_proxy_has_no_per_address_limit(self):
        for _ in range(3):
            self.assertServed(*self.connect("10.0.0.9"))
        _, refused = self.connect("10.0.0.9")
        self.assertRefused(refused, "the server has as many connections as it can take")

    def test_refusals_are_logged_at_most_once_per_interval_with_a_count(self):
        from twisted.logger import globalLogPublisher

        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        for _ in range(2):
            self.connect("192.0.2.1")
        for _ in range(5):
            self.connect("192.0.2.1")
        self.clock.advance(ConnectionLimits.LOG_EVERY)
        self.connect("192.0.2.1")
        refusals = [event for event in events if "refused" in event.get("log_format", "")]
        self.assertEqual([event["count"] for event in refusals], [1, 5])
