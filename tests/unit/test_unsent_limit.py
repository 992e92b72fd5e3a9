"""How much a download stream keeps unsent in the kernel: a few milliseconds of its own rate, bounded."""

from __future__ import annotations

import socket
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from lqos.load.limits import KiB, MiB, LoadLimits
from lqos.net.sockets import TCP_NOTSENT_LOWAT, RateScaledUnsentLimit

LIMITS = LoadLimits()
rates = st.floats(0, 10e9, allow_nan=False)  # bytes/s, up to 80 Gbit/s


@given(rates, rates)
def test_a_faster_stream_may_keep_more_unsent_within_the_bounds(slower, faster):
    slower, faster = sorted((slower, faster))
    assert LIMITS.unsent_bytes_per_socket <= LIMITS.unsent_bytes_at(slower) <= LIMITS.unsent_bytes_at(faster)
    assert LIMITS.unsent_bytes_at(faster) <= LIMITS.max_unsent_bytes_per_socket


def test_twenty_milliseconds_of_the_stream_between_128_kib_and_4_mib():
    assert LIMITS.unsent_bytes_at(0) == 128 * KiB  # a new stream: one Twisted send()
    assert LIMITS.unsent_bytes_at(50e6 / 8) == 128 * KiB  # 50 Mbit/s: 20 ms would be 125 kB
    assert LIMITS.unsent_bytes_at(250e6 / 8) == 625_000  # a quarter gigabit
    assert LIMITS.unsent_bytes_at(10e9 / 8) == 4 * MiB


def test_the_sockets_bound_follows_the_rate_the_stream_writes_at():
    clock = Clock()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        lowat = lambda: sock.getsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT)  # noqa: E731
        limit = RateScaledUnsentLimit(SimpleNamespace(socket=sock), clock, LIMITS.unsent_bytes_at)
        assert lowat() == 128 * KiB
        counted = []
        count = limit.counting(counted.append)
        for _ in range(2):  # 3.125 MB in 0.1 s: 250 Mbit/s
            clock.advance(0.05)
            count(1_562_500)
        assert lowat() == 625_000 and counted == [1_562_500, 1_562_500]
        for _ in range(2):  # the stream slows to 10 Mbit/s: back to the floor
            clock.advance(0.05)
            count(62_500)
        assert lowat() == 128 * KiB
