"""Endpoint strings: every port queues a burst of connections rather than dropping its SYNs."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString

from lqos.daemon.endpoints import LISTEN_BACKLOG, child_endpoint, main_endpoint


def test_the_main_port_queues_a_burst_unless_the_operator_says_otherwise():
    assert main_endpoint("tcp:8000") == f"tcp:8000:backlog={LISTEN_BACKLOG}"
    assert main_endpoint("tcp:443:interface=192.0.2.10:backlog=64") == "tcp:443:interface=192.0.2.10:backlog=64"
    assert main_endpoint("unix:/run/lqos.sock") == "unix:/run/lqos.sock"
    assert main_endpoint("ssl:443:privateKey=k.pem") == f"ssl:443:privateKey=k.pem:backlog={LISTEN_BACKLOG}"


def test_child_ports_queue_a_burst_and_parse_as_twisted_endpoints():
    assert child_endpoint(8005) == f"tcp:8005:backlog={LISTEN_BACKLOG}"
    assert child_endpoint(8005, "127.0.0.1") == f"tcp:8005:backlog={LISTEN_BACKLOG}:interface=127.0.0.1"
    for description in (child_endpoint(8005, "::1"), main_endpoint("tcp:8000:interface=127.0.0.1")):
        serverFromString(reactor, description)  # raises on a description Twisted cannot read
