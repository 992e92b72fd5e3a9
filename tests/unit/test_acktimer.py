"""The acknowledgement timing read back from Linux's RTT estimator: the arithmetic, and a real socket."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from lqos.net.acktimer import ROUNDING_US, TcpCounters, acknowledgement_rtt_ms, read_counters


def kernel_estimate(srtt8_us: int, sample_us: int) -> int:
    """What ``tcp_rtt_estimator`` keeps after one sample: 8 x srtt in microseconds."""
    return max(1, srtt8_us + sample_us - (srtt8_us >> 3))


def counters(srtt8_us: int, unacked: int = 0, retrans: int = 0, segments: int = 0) -> TcpCounters:
    return TcpCounters(smoothed_rtt_us=srtt8_us >> 3, unacked=unacked, total_retrans=retrans,
                       data_segments_out=segments)


@given(st.integers(8, 8 * 2_000_000), st.integers(1, 2_000_000))
def test_one_sample_is_read_back_to_within_the_kernels_rounding(srtt8_us, sample_us):
    before = counters(srtt8_us, segments=5)
    after = counters(kernel_estimate(srtt8_us, sample_us), segments=6)
    assert abs(acknowledgement_rtt_ms(before, after) - sample_us / 1000) <= (ROUNDING_US + 0.5) / 1000


def test_anything_but_exactly_one_sample_gives_no_timing():
    before, after = counters(8000, segments=5), counters(kernel_estimate(8000, 700), segments=6)
    assert abs(acknowledgement_rtt_ms(before, after) - 0.7) <= ROUNDING_US / 1000
    assert acknowledgement_rtt_ms(None, after) is None
    assert acknowledgement_rtt_ms(counters(8000, unacked=1, segments=5), after) is None  # an earlier ACK due
    assert acknowledgement_rtt_ms(before, counters(8000, unacked=1, segments=6)) is None  # not yet acknowledged
    assert acknowledgement_rtt_ms(before, counters(8000, segments=7)) is None  # two segments: two samples
    assert acknowledgement_rtt_ms(before, counters(8000, retrans=1, segments=6)) is None  # Karn: no sample
    assert acknowledgement_rtt_ms(counters(0, segments=5), after) is None  # no estimate yet


def test_a_real_connection_times_its_acknowledgement():
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    try:
        server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = SimpleNamespace(socket=server)
        timings = []
        for _ in range(5):
            before = read_counters(transport)
            server.sendall(b"echo and ping")
            assert client.recv(100) == b"echo and ping"
            client.sendall(b"pong")
            assert server.recv(100) == b"pong"
            time.sleep(0.01)
            timings.append(acknowledgement_rtt_ms(before, read_counters(transport)))
        timed = [t for t in timings if t is not None]
        assert timed and all(0 <= t < 5 for t in timed), timings
    finally:
        for sock in (client, server, listener):
            sock.close()
