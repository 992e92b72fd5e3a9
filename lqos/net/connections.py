"""The bounds on how many connections a port holds and how slowly they may speak, for any port that serves HTTP."""

from __future__ import annotations

from collections import Counter
from typing import Callable

from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

from lqos.net.refusal import Refused, raw_response
from lqos.net.sockets import MAX_WRAPPING_DEPTH

log = Logger()


def connection_guard(transport) -> "ConnectionGuard | None":
    """The ``ConnectionGuard`` under *transport* (directly, or under TLS), if the port has one."""
    for _ in range(MAX_WRAPPING_DEPTH):
        if transport is None or isinstance(transport, ConnectionGuard):
            return transport
        transport = transport.__dict__.get("transport") if hasattr(transport, "__dict__") else None
    return None


class ConnectionGuard(ProtocolWrapper):
    """One counted connection, held to a deadline for each request's line and headers.

    The deadline runs from the connection's opening, and again from the end of
    each response; the HTTP request (``LoadAwareRequest``) calls
    ``request_head_received`` when its headers are in and ``response_done``
    when it ends.  A WebSocket upgrade never ends its request, so an upgraded
    connection is left to the WebSocket protocol's own timeouts.
    """

    _head_call = None
    _closed = False
    _in_flight = 0

    def __init__(self, factory: "ConnectionLimits", wrapped, host: str):
        super().__init__(factory, wrapped)
        self.host = host

    def makeConnection(self, transport) -> None:
        super().makeConnection(transport)
        self._arm()

    def request_head_received(self) -> None:
        self._in_flight += 1
        self._cancel()

    def response_done(self) -> None:
        self._in_flight = max(0, self._in_flight - 1)
        if not self._in_flight:
            self._arm()

    def connectionLost(self, reason) -> None:
        self._closed = True
        self._cancel()
        super().connectionLost(reason)

    def _arm(self) -> None:
        if self._closed or self._head_call is not None:
            return
        self._head_call = self.factory.clock.callLater(self.factory.head_seconds, self._head_too_slow)

    def _cancel(self) -> None:
        if self._head_call is not None:
            if self._head_call.active():
                self._head_call.cancel()
            self._head_call = None

    def _head_too_slow(self) -> None:
        self._head_call = None
        self.factory.head_timeouts += 1
        if self.transport is not None:
            self.transport.abortConnection()


class _Refusal(Protocol):
    """A connection beyond the limits: a 503 with a JSON reason, then the close."""

    def __init__(self, reason: str):
        self._reason = reason

    def connectionMade(self) -> None:
        self.transport.write(raw_response(Refused(503, self._reason), [(b"Retry-After", b"10")]))
        self.transport.loseConnection()


class ConnectionLimits(WrappingFactory):
    """Wrap a site's factory: at most *per_ip* connections per client address
    (addresses for which *exempt* says True, such as trusted proxies, have no
    per-address bound) and *total* in all; each held to ``ConnectionGuard``'s
    request-head deadline of *head_seconds*.

    Refusals are logged at most once per ``LOG_EVERY`` seconds, with a count.
    """

    LOG_EVERY = 10.0

    def __init__(self, wrapped, clock, per_ip: int, total: int, head_seconds: float,
                 exempt: Callable[[str], bool] = lambda host: False):
        super().__init__(wrapped)
        self.clock = clock
        self.per_ip = per_ip
        self.total = total
        self.head_seconds = head_seconds
        self._exempt = exempt
        self.open_by_ip: Counter = Counter()
        self.open_total = 0
        self.refused = 0
        self.head_timeouts = 0
        self._unlogged = 0
        self._logged_at = float("-inf")

    def buildProtocol(self, addr):
        host = getattr(addr, "host", str(addr))
        if self.open_total >= self.total:
            return self._refuse(host, "the server has as many connections as it can take")
        if self.open_by_ip[host] >= self.per_ip and not self._exempt(host):
            return self._refuse(host, "too many connections from this address")
        wrapped = self.wrappedFactory.buildProtocol(addr)
        return None if wrapped is None else ConnectionGuard(self, wrapped, host)

    def registerProtocol(self, protocol: ConnectionGuard) -> None:
        self.open_total += 1
        self.open_by_ip[protocol.host] += 1

    def unregisterProtocol(self, protocol: ConnectionGuard) -> None:
        self.open_total -= 1
        self.open_by_ip[protocol.host] -= 1
        if self.open_by_ip[protocol.host] <= 0:
            del self.open_by_ip[protocol.host]

    def _refuse(self, host: str, reason: str) -> _Refusal:
        self.refused += 1
        self._unlogged += 1
        now = self.clock.seconds()
        if now - self._logged_at >= self.LOG_EVERY:
            log.warn("refused {count} connection(s) (latest from {host}): {reason}; open: {open}",
                     count=self._unlogged, host=host, reason=reason, open=self.open_total)
            self._logged_at, self._unlogged = now, 0
        return _Refusal(reason)
