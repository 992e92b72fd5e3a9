"""``WS /ws/bulk-download``: binary messages as fast as the transport takes them.

The route authorizes the test before the upgrade and builds one small
factory per connection carrying that connection's plan, so a protocol never
looks anything up in shared state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from lqos.load.admission import StreamSlot
from lqos.load.limits import LoadLimits
from lqos.net.sockets import RateScaledUnsentLimit
from lqos.net.websocket import apply_server_options

CLOSE_NORMAL = WebSocketProtocol.CLOSE_STATUS_CODE_NORMAL
OPEN = WebSocketProtocol.STATE_OPEN


@dataclass(frozen=True)
class BulkPlan:
    """What one bulk-download connection sends, for how long, and where it counts."""

    payload: bytes
    seconds: float
    byte_budget: int
    unsent_bytes_at: Callable[[float], int]  # TCP_NOTSENT_LOWAT for the rate the stream writes at
    count_bytes: Callable[[int], None]
    slot: StreamSlot


@implementer(IPushProducer)
class MessagePump:
    """Send the prepared message while the transport is not paused.

    A prepared message is framed once, so each send is one ``write`` of an
    existing bytes object: no framing, masking or copying per message.
    """

    def __init__(self, protocol: BulkDownloadProtocol, message, payload_bytes: int, byte_budget: int,
                 count_bytes: Callable[[int], None]):
        self._protocol = protocol
        self._message = message
        self._payload_bytes = payload_bytes
        self._remaining = byte_budget
        self._count_bytes = count_bytes
        self._paused = False
        self.stopped = False

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        while not (self._paused or self.stopped):
            if self._protocol.state != OPEN:
                self._protocol.stop_sending()
            elif self._remaining < self._payload_bytes:
                self._protocol.finish("byte budget spent")
            else:
                self._remaining -= self._payload_bytes
                self._count_bytes(self._payload_bytes)
                self._protocol.sendPreparedMessage(self._message)

    def stopProducing(self) -> None:
        self.stopped = True


class BulkDownloadProtocol(WebSocketServerProtocol):
    """Stream until the plan's time or bytes are spent, or the client says stop."""

    _pump: MessagePump | None = None
    _timer = None

    def onOpen(self) -> None:
        plan: BulkPlan = self.factory.plan
        unsent = RateScaledUnsentLimit(self.transport, self.factory.reactor, plan.unsent_bytes_at)
        message = self.factory.prepareMessage(plan.payload, isBinary=True)
        count_bytes = unsent.counting(plan.count_bytes)
        self._pump = MessagePump(self, message, len(plan.payload), plan.byte_budget, count_bytes)
        self._timer = self.factory.reactor.callLater(plan.seconds, self.finish, "stream time is up")
        # The HTTP channel that carried the upgrade is still the transport's producer.
        self.transport.unregisterProducer()
        self.transport.registerProducer(self._pump, True)
        self._pump.resumeProducing()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """Any message from the client means "enough"."""
        self.finish("stopped by the client")

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.stop_sending()
        self.factory.plan.slot.release()

    def finish(self, reason: str) -> None:
        self.stop_sending()
        if self.state == OPEN:
            self.sendClose(CLOSE_NORMAL, reason)

    def stop_sending(self) -> None:
        """Stop the pump and hand the transport back, so a close can complete."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if self._pump is not None and not self._pump.stopped:
            self._pump.stopped = True
            if self.transport is not None:
                self.transport.unregisterProducer()


def bulk_download_factory(plan: BulkPlan, reactor, limits: LoadLimits) -> WebSocketServerFactory:
    """A factory for one connection: small client messages, no compression."""
    factory = WebSocketServerFactory(reactor=reactor)
    factory.protocol = BulkDownloadProtocol
    factory.plan = plan
    return apply_server_options(factory, limits.client_message_bytes)
