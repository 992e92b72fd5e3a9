"""Kernel socket options, reached through any stack of wrapping transports (TLS over TCP)."""

from __future__ import annotations

import socket

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
