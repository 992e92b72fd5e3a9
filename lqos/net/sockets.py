"""Kernel socket options, reached through any stack of wrapping transports (TLS over TCP)."""

from __future__ import annotations

import socket
from typing import Callable

from twisted.logger import Logger

log = Logger()

# Linux's value; Python has the name only where the platform defines it.
TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)
MAX_WRAPPING_DEPTH = 4


def tcp_socket(transport) -> socket.socket | None:
    """The TCP socket under *transport*, which may be TLS wrapping TCP."""
    for _ in range(MAX_WRAPPING_DEPTH):
        candidate = getattr(transport, "socket", None)
        if isinstance(candidate, socket.socket):
            return candidate
        transport = getattr(transport, "transport", None)
    return None


def limit_unsent_bytes(transport, unsent_bytes: int) -> bool:
    """Let the kernel queue at most about *unsent_bytes* not yet sent on this connection.

    With ``TCP_NOTSENT_LOWAT`` the socket polls writable only while less than
    that is unsent, so Twisted's producer pauses track the network's progress
    instead of a multi-megabyte kernel buffer.  Returns False where the
    option is unavailable; the stream still works, with more buffering.
    """
    sock = tcp_socket(transport)
    if sock is None:
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, unsent_bytes)
    except OSError as error:
        log.debug("TCP_NOTSENT_LOWAT not set: {error}", error=error)
        return False
    return True


class RateScaledUnsentLimit:
    """Keep a stream's ``TCP_NOTSENT_LOWAT`` at what *bound* gives for the rate the stream writes at.

    A fixed bound is either too small for a fast stream (the kernel runs out
    of unsent data whenever the writing process is off its core for a few
    milliseconds, and the connection goes application-limited) or too large
    for a slow one (seconds of data queued in the kernel).  The rate is the
    bytes written over the last *interval* or more: with the unsent bytes
    bounded, a stream writes at the rate the network takes.
    """

    def __init__(self, transport, clock, bound: Callable[[float], int], interval: float = 0.1):
        self._transport = transport
        self._clock = clock
        self._bound = bound
        self._interval = interval
        self._since = clock.seconds()
        self._bytes = 0
        self.unsent_bytes = bound(0.0)
        limit_unsent_bytes(transport, self.unsent_bytes)

    def counting(self, count: Callable[[int], None]) -> Callable[[int], None]:
        """*count*, which also tells this limit of every write."""
        def count_and_follow(size: int) -> None:
            count(size)
            self.wrote(size)
        return count_and_follow

    def wrote(self, size: int) -> None:
        self._bytes += size
        now = self._clock.seconds()
        elapsed = now - self._since
        if elapsed < self._interval:
            return
        wanted = self._bound(self._bytes / elapsed)
        self._since, self._bytes = now, 0
        if wanted != self.unsent_bytes:
            self.unsent_bytes = wanted
            limit_unsent_bytes(self._transport, wanted)


def send_small_messages_at_once(transport) -> bool:
    """Turn Nagle's algorithm off (``TCP_NODELAY``) on a latency-measuring connection.

    With Nagle on, a probe written while the previous one is unacknowledged
    waits for that acknowledgement; on a loaded link the acknowledgement sits
    in the full queue, and the wait is added to the next probe's round trip
    (measured here: +70 to +130 ms on a 300 ms FIFO).  Autobahn's own
    ``tcpNoDelay`` option never takes effect (its ``connectionMade`` reads the
    option before copying it from the factory, and swallows the error), so
    every protocol that measures latency calls this itself.
    """
    sock = tcp_socket(transport)
    if sock is None:
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as error:
        log.debug("TCP_NODELAY not set: {error}", error=error)
        return False
    return True
