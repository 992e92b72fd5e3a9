"""Bounds on the networkQuality port, in one place with their units (docs/PROTOCOL.md, "networkQuality")."""

from __future__ import annotations

from dataclasses import dataclass

from lqos.measure.units import SECONDS

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class NQLimits:
    # The client decides how long a large download or an upload lasts, so the
    # server bounds it by time, not size: Apple's client reads a 413 as an
    # error.  networkQuality and goresponsiveness run for about 20 s at most
    # (the operator's nq_bulk_seconds).
    bulk_seconds: float = 60 * SECONDS
    # Large downloads and uploads open at once per client address, per worker:
    # the draft adds load connections up to 16 per direction.
    bulk_streams_per_ip: int = 64
    bulk_streams_total: int = 2000
    # Flow-control windows offered to the client.  h2's default of 65,535
    # bytes caps an upload at 64 KiB per round trip per connection (0.74 Gbit/s
    # on loopback, 1.95 with 16 MiB).  Uploaded bytes are dropped as they come,
    # so a large window costs the server no memory.
    stream_window_bytes: int = 16 * MiB
    connection_window_bytes: int = 64 * MiB
    max_concurrent_streams: int = 100
    max_header_list_bytes: int = 16 * KiB
    # Stream openings per connection: a token bucket, so that opening and
    # resetting streams in a loop ("rapid reset") ends the connection.
    streams_per_second: float = 200.0
    stream_burst: int = 400
    # DATA bytes one connection writes per turn of the reactor, and
    # TCP_NOTSENT_LOWAT.  A self probe's answer waits behind what this
    # connection has already queued (the last turn's writing, and the
    # kernel's unsent bytes), and on a load connection carrying a few Mbit/s
    # that is most of its round trip: on the 50/10 Mbit/s shallow testbed link
    # the self probes took 1100 ms with 256 KiB and 128 KiB (the load port's
    # values), 289 ms with these, where ping rose by 22 ms.  They cost CPU at
    # high rates: one connection's download went from 4.3 to 2.9 Gbit/s per
    # server core on loopback (bench/nq.py).
    pump_bytes: int = 64 * KiB
    unsent_bytes_per_socket: int = 16 * KiB
    # Control frames (SETTINGS and PING acknowledgements, window updates)
    # written while the client reads nothing: beyond this it is gone.
    control_bytes_while_blocked: int = 1 * MiB
    # The draft asks for at least 8 GB; the reference servers send 8 GiB.
    large_bytes: int = 8 * GiB
    block_bytes: int = 1 * MiB
