"""The WebSocket rules every port of this server keeps: the probe, the personas and the bulk download."""

from __future__ import annotations

from autobahn.twisted.websocket import WebSocketServerFactory

from lqos.measure.units import SECONDS

OPEN_HANDSHAKE_TIMEOUT = 5 * SECONDS
CLOSE_HANDSHAKE_TIMEOUT = 1 * SECONDS


def apply_server_options(factory: WebSocketServerFactory, max_message_bytes: int) -> WebSocketServerFactory:
    """Bound what a client may send and how long it may take, on *factory*; returns it.

    Autobahn accepts frames and messages of any size unless told otherwise,
    so every factory states its largest client message.
    """
    factory.setProtocolOptions(
        maxFramePayloadSize=max_message_bytes,
        maxMessagePayloadSize=max_message_bytes,
        openHandshakeTimeout=OPEN_HANDSHAKE_TIMEOUT,
        closeHandshakeTimeout=CLOSE_HANDSHAKE_TIMEOUT,
        # Say why (1009 "message too big") instead of dropping the TCP connection.
        failByDrop=False,
        # A plain GET gets 426 Upgrade Required.  Autobahn's status page would
        # otherwise answer it, and follow ``?redirect=URL`` anywhere (an open
        # redirect on the operator's domain).
        webStatus=False,
        # No permessage-deflate: the payloads are random bytes or a few dozen
        # bytes of JSON, and compressing them would only cost CPU and delay.
        perMessageCompressionAccept=lambda offers: None,
    )
    return factory
