"""The client's address: X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest
from twisted.internet.address import IPv4Address, IPv6Address

from lqos.net.clientip import client_ip

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:ffff::/48"))


class FakeRequest:
    def __init__(self, peer: str, forwarded: str | None = None):
        kind = IPv6Address if ":" in peer else IPv4Address
        self._peer = kind("TCP", peer, 50000)
        self._forwarded = forwarded

    def getClientAddress(self):
        return self._peer

    def getHeader(self, name):
        return self._forwarded if name.lower() == "x-forwarded-for" else None


@pytest.mark.parametrize(
    "peer, forwarded, expected",
    [
        ("203.0.113.7", None, "203.0.113.7"),
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),  # untrusted peer: header ignored
        ("10.1.2.3", "198.51.100.1", "198.51.100.1"),
        ("10.1.2.3", "1.2.3.4, 198.51.100.1", "198.51.100.1"),  # client-written hop ignored
        ("10.1.2.3", "198.51.100.1, 10.9.9.9", "198.51.100.1"),  # chain of trusted proxies
        ("10.1.2.3", "garbage", "10.1.2.3"),
        ("10.1.2.3", None, "10.1.2.3"),
        ("::ffff:203.0.113.7", None, "203.0.113.7"),
        ("2001:db8:ffff::1", "2001:db8:1::42", "2001:db8:1::42"),
    ],
)
def test_client_ip(peer, forwarded, expected):
    assert client_ip(FakeRequest(peer, forwarded), PROXIES) == expected
