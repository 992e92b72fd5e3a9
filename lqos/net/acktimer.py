"""How long the client's kernel took to acknowledge one segment, read from Linux's RTT estimator.

A browser downloading at a gigabit answers a WebSocket Ping from its
network thread, and that thread is busy: Firefox held its Pongs for a
median 2-4 ms and a p90 of 17 ms on a link where ping saw 0.3 ms of queue
(captured on both ends of the testbed's fibre row).  The client's *kernel*
acknowledges the same segment within microseconds of its arrival, whatever
the browser is doing, so the acknowledgement times the network alone, as
ping's ICMP echo does.

Linux does not report single RTT samples, only its smoothed estimate
(``tcpi_rtt``), which every sample moves by an eighth (RFC 6298; the
kernel's ``tcp_rtt_estimator``)::

    srtt_after = 7/8 * srtt_before + 1/8 * sample

so when exactly one sample was taken between two readings, the sample is
``8 * srtt_after - 7 * srtt_before``, to within 8 µs of the kernel's own
rounding.  Exactly one sample was taken when exactly one data segment left
between the readings, nothing sent earlier was still unacknowledged, that
segment was acknowledged, and nothing was retransmitted (Karn's rule: no
sample then).  Any other case gives None, and the caller keeps its Pong
timing.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from lqos.net.sockets import tcp_socket

# ``struct tcp_info`` (linux/tcp.h): the fields read here and their offsets.
TCP_INFO = getattr(socket, "TCP_INFO", 11)
TCP_INFO_BYTES = 160  # up to tcpi_data_segs_out (Linux 4.6)
_FIELDS = {"unacked": 24, "smoothed_rtt_us": 68, "total_retrans": 100, "data_segments_out": 156}
_U32 = struct.Struct("=I")
# The kernel keeps 8 x srtt in whole microseconds and reports srtt rounded down.
ROUNDING_US = 8


@dataclass(frozen=True)
class TcpCounters:
    """One reading of the kernel's counters for a connection."""

    smoothed_rtt_us: int
    unacked: int
    total_retrans: int
    data_segments_out: int


def read_counters(transport) -> TcpCounters | None:
    """The counters of the TCP connection under *transport*; None where the kernel gives none."""
    sock = tcp_socket(transport)
    if sock is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, TCP_INFO_BYTES)
    except OSError:
        return None
    if len(info) < TCP_INFO_BYTES:
        return None
    return TcpCounters(**{name: _U32.unpack_from(info, offset)[0] for name, offset in _FIELDS.items()})


def acknowledgement_rtt_ms(before: TcpCounters | None, after: TcpCounters | None) -> float | None:
    """The round trip of the one segment sent between *before* and its acknowledgement, in ms.

    *before* is read just before the segment is written, *after* once its
    acknowledgement must have come (the client's answer to it has arrived).
    None unless the estimator took exactly that one sample in between.
    """
    if before is None or after is None:
        return None
    one_sample = (before.unacked == 0 and after.unacked == 0 and before.smoothed_rtt_us > 0
                  and after.data_segments_out - before.data_segments_out == 1
                  and after.total_retrans == before.total_retrans)
    if not one_sample:
        return None
    sample_us = 8 * after.smoothed_rtt_us - 7 * before.smoothed_rtt_us
    return round(max(sample_us, 0) / 1000.0, 3)
