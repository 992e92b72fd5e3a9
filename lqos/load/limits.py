"""Bounds on the load endpoints (docs/PROTOCOL.md, "Load"), in one place with their units.

They are a frozen dataclass rather than module constants so that a test, a
benchmark or, later, an operator setting can pass other values without
touching shared state.
"""

from __future__ import annotations

from dataclasses import dataclass

from lqos.measure.units import SECONDS

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# WebSocket message sizes the client may ask for: big enough that framing
# costs nothing, small enough that one message overshoots a paused transport
# by little (Autobahn writes a whole message before a pause takes effect).
MIN_MESSAGE_BYTES = 64 * KiB
MAX_MESSAGE_BYTES = 1 * MiB


@dataclass(frozen=True)
class LoadLimits:
    # Longest download or WebSocket stream, and longest time an upload body may
    # take to arrive; the longest loaded stretch of the standard schedule is 20 s.
    stream_seconds: float = 30 * SECONDS
    download_bytes_per_stream: int = 8 * GiB
    upload_bytes_per_request: int = 256 * MiB
    # Enough for 25 Gbit/s through the 20 s of the standard schedule that carry
    # upload (warm-up, upload, bidirectional), so no customer's line is cut
    # short; time bounds abuse (the load URL's ``until``), this bounds a runaway.
    # Each load worker counts what it received, so with N workers a test can
    # send at most N times this.
    upload_bytes_per_test: int = 64 * GiB
    # 16 download plus 16 upload streams in the bidirectional phase.
    # Per worker too: the kernel spreads a test's connections over the workers
    # by hash, so a smaller share per worker could refuse a legitimate stream.
    streams_per_test: int = 32
    # Any body to any other path: the JSON APIs need a few KiB at most.
    other_body_bytes: int = 1 * MiB
    # After refusing a body, keep reading (and dropping) it this long so the
    # client can read the refusal before the close resets the connection.
    refusal_linger_seconds: float = 2 * SECONDS
    # TCP_NOTSENT_LOWAT: the kernel reports the socket writable only while less
    # than this is queued unsent.  Each download stream keeps about
    # unsent_seconds of its own rate unsent (``unsent_bytes_at``), at least
    # 128 KiB (one Twisted send(), SEND_LIMIT, so each wake-up can be filled by
    # one system call) and at most 4 MiB.  Not Linux's own up to 4 MiB on every
    # stream (tcp_wmem): that would keep a slow link loaded for seconds after a
    # stream ends, make producer pauses meaningless, and hold megabytes of
    # kernel memory per stream of every test.  Not a fixed 128 KiB either: that
    # is 4 ms of a quarter-gigabit stream, and a load worker that shares its
    # cores with others is off them longer than that; its streams then went
    # app-limited, cubic stopped growing their windows, and the gigabit cable
    # row's 12.5 MB FIFO filled to +83 ms where four iperf3 flows fill it to
    # +94-98 (tests/testbed; with 1 MiB the test filled it as iperf3 does).
    unsent_bytes_per_socket: int = 128 * KiB
    max_unsent_bytes_per_socket: int = 4 * MiB
    unsent_seconds: float = 0.02
    # One write of a download stream: reused, so it costs one allocation per
    # process; large, so the per-write Python overhead is spread thin.
    download_block_bytes: int = 256 * KiB
    default_message_bytes: int = 256 * KiB
    # The client of /ws/bulk-download only ever sends a short "stop".
    client_message_bytes: int = 125

    def unsent_bytes_at(self, bytes_per_second: float) -> int:
        """The unsent bytes a stream writing at *bytes_per_second* may keep queued (TCP_NOTSENT_LOWAT)."""
        wanted = int(bytes_per_second * self.unsent_seconds)
        return max(self.unsent_bytes_per_socket, min(wanted, self.max_unsent_bytes_per_socket))
