"""Who may read telemetry: fake requests with chosen socket peers and headers."""

from __future__ import annotations

import ipaddress

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.web.test.requesthelper import DummyRequest

from lqos.daemon.config import ConfigError, parse_config
from lqos.telemetry.api import BadQuery, parse_ip, parse_limit
from lqos.telemetry.auth import KEY_IN_URL, NO_KEY, NOT_LOCAL, WRONG_KEY, refusal

KEY = "correct-horse-battery-staple"
LOOPBACK_PROXIES = (ipaddress.ip_network("127.0.0.0/8"),)


def request_from(peer: str, headers: dict[str, str] | None = None, query: dict | None = None) -> DummyRequest:
    request = DummyRequest([b"recent"])
    request.client = (IPv6Address if ":" in peer else IPv4Address)("TCP", peer, 40000)
    for name, value in (headers or {}).items():
        request.requestHeaders.setRawHeaders(name, [value])
    request.args = {name.encode(): [value.encode()] for name, value in (query or {}).items()}
    return request


# --- no key configured: loopback only, judged by the socket peer ---


def test_a_remote_peer_is_refused_without_a_key():
    assert refusal(request_from("203.0.113.7"), api_key="") is NOT_LOCAL


def test_a_remote_peer_claiming_loopback_in_x_forwarded_for_is_still_refused():
    claims = {"X-Forwarded-For": "127.0.0.1"}
    assert refusal(request_from("203.0.113.7", claims), api_key="") is NOT_LOCAL
    trusted = (ipaddress.ip_network("203.0.113.0/24"),)
    assert refusal(request_from("203.0.113.7", claims), api_key="", trusted_proxies=trusted) is NOT_LOCAL


def test_loopback_peers_are_answered_without_a_key():
    assert refusal(request_from("127.0.0.1"), api_key="") is None
    assert refusal(request_from("::1"), api_key="") is None
    assert refusal(request_from("::ffff:127.0.0.1"), api_key="") is None


def test_a_local_proxy_forwarding_a_remote_client_is_refused():
    """nginx on the same host: the peer is loopback, the client is not."""
    forwarded = request_from("127.0.0.1", {"X-Forwarded-For": "203.0.113.7"})
    assert refusal(forwarded, api_key="", trusted_proxies=LOOPBACK_PROXIES) is NOT_LOCAL


def test_forwarded_for_from_an_untrusted_loopback_peer_is_ignored():
    forwarded = request_from("127.0.0.1", {"X-Forwarded-For": "203.0.113.7"})
    assert refusal(forwarded, api_key="") is None


# --- a key configured: bearer header from everyone ---


def test_the_right_bearer_key_is_accepted_from_anywhere():
    assert refusal(request_from("203.0.113.7", {"Authorization": f"Bearer {KEY}"}), KEY) is None
    assert refusal(request_from("127.0.0.1", {"Authorization": f"bearer  {KEY} "}), KEY) is None


def test_a_missing_key_is_401_with_a_challenge_even_on_loopback():
    assert refusal(request_from("127.0.0.1"), KEY) is NO_KEY
    assert NO_KEY.challenge.startswith("Bearer realm=")


@pytest.mark.parametrize("header", [f"Bearer {KEY}x", "Bearer ", f"Basic {KEY}", KEY, f"Bearer {KEY[:-1]}"])
def test_a_wrong_key_is_401(header):
    assert refusal(request_from("127.0.0.1", {"Authorization": header}), KEY) is WRONG_KEY


@pytest.mark.parametrize("name", ["key", "api_key", "token", "API_KEY", "access_token"])
def test_a_key_in_the_query_string_is_400_even_when_right(name):
    request = request_from("127.0.0.1", {"Authorization": f"Bearer {KEY}"}, {name: KEY})
    assert refusal(request, KEY) is KEY_IN_URL
    assert refusal(request_from("127.0.0.1", query={name: KEY}), "") is KEY_IN_URL
    assert "Authorization: Bearer" in KEY_IN_URL.message


# --- query parsing ---


@pytest.mark.parametrize("raw", [b"0", b"1001", b"-1", b"ten", b"1.5", b"", b"99999"])
def test_limits_outside_one_to_a_thousand_are_refused(raw):
    with pytest.raises(BadQuery):
        parse_limit([raw])


def test_limits_inside_are_taken_and_absent_means_a_hundred():
    assert [parse_limit([b"1"]), parse_limit([b"1000"]), parse_limit(None)] == [1, 1000, 100]
    with pytest.raises(BadQuery):
        parse_limit([b"5", b"6"])


def test_addresses_are_normalised():
    assert parse_ip("2001:DB8:0::1") == "2001:db8::1"
    assert parse_ip("::ffff:192.0.2.1") == "192.0.2.1"
    for bad in ("192.0.2.300", "example.com", "192.0.2.0/24", "1" * 100):
        with pytest.raises(BadQuery):
            parse_ip(bad)


# --- the retry setting ---


def test_outbox_retry_seconds_is_a_bounded_number():
    assert parse_config("outbox_retry_seconds=0.05\n").values["outbox_retry_seconds"] == 0.05
    for bad in ("0", "nan", "soon", "7200"):
        with pytest.raises(ConfigError, match="outbox_retry_seconds"):
            parse_config(f"outbox_retry_seconds={bad}\n")
