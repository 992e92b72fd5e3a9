"""What both ends of this project's HTTP/2 connections share: the networkQuality server, the RPM client.

Each is a Twisted protocol over the ``h2`` library.  The bytes read go to
h2; what h2 has to send is written at once; and DATA is written by a pump
that the transport pauses while its buffer is full, at most ``pump_bytes``
per turn of the reactor, so that every other connection (and every probe)
gets its turn between.
"""

from __future__ import annotations

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.exceptions import ProtocolError
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from zope.interface import implementer


@implementer(IPushProducer)
class H2Endpoint(Protocol):
    """One HTTP/2 connection.  Subclasses say what an event means (``handle``), what to do with a
    peer that broke the protocol (``protocol_error``), and write DATA when asked (``write_data``)."""

    def __init__(self, clock, config: H2Configuration, pump_bytes: int):
        self._clock = clock
        self._h2 = H2Connection(config)
        self._pump_bytes = pump_bytes
        self._paused = False
        self._pump_call = None
        self.open = False  # HTTP/2 is spoken: TLS chose h2, and nobody has closed it

    # Hooks.

    def handle(self, event) -> None:
        raise NotImplementedError

    def protocol_error(self, error: ProtocolError) -> None:
        """The peer broke HTTP/2; the connection is already closing."""

    def has_data(self) -> bool:
        """There is DATA to write."""
        raise NotImplementedError

    def write_data(self, budget: int) -> int:
        """Write DATA frames of up to *budget* bytes in all (h2's windows allowing); return the budget left."""
        raise NotImplementedError

    # Twisted's side.

    def dataReceived(self, data: bytes) -> None:
        if not self.open:
            return
        try:
            events = self._h2.receive_data(data)
        except ProtocolError as error:
            self._flush()
            self.transport.loseConnection()
            self.protocol_error(error)
            return
        for event in events:
            self.handle(event)
        self._flush()
        self._schedule_pump()

    def connectionLost(self, reason=None) -> None:
        self.open = False
        self._cancel_pump()

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._schedule_pump()

    def stopProducing(self) -> None:
        self._paused = True

    # Writing.

    def _schedule_pump(self) -> None:
        if self._pump_call is None and self.open and not self._paused and self.has_data():
            self._pump_call = self._clock.callLater(0, self._pump)

    def _cancel_pump(self) -> None:
        if self._pump_call is not None and self._pump_call.active():
            self._pump_call.cancel()
        self._pump_call = None

    def _pump(self) -> None:
        self._pump_call = None
        if self._paused or not self.open:
            return
        left = self.write_data(self._pump_bytes)
        self._flush()
        if left <= 0:  # more may be waiting: come back after the other connections' turns
            self._schedule_pump()

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data:
            self.write(data)

    def write(self, data: bytes) -> None:
        """Hand h2's bytes to the transport (a subclass may bound what it writes to a peer that reads nothing)."""
        self.transport.write(data)
