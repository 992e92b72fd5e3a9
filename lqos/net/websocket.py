"""The WebSocket rules every port of this server keeps: the probe, the personas and the bulk download."""

from __future__ import annotations

import json
import time

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


class PongTimer:
    """Times the WebSocket Pings a server sends right behind its echoes, by the echo they follow.

    A client's network stack answers a Ping without waiting for the page's
    script, so its round trip is the network's alone, without the time a
    busy browser takes to hand a message over (docs/PROTOCOL.md).  Each Ping
    carries a counter of the connection's own, not the client's ``seq``, so
    a client cannot make two echoes share one timing; beyond *limit* Pings
    in flight the oldest is forgotten.
    """

    def __init__(self, limit: int):
        self._limit = limit
        self._sent = 0
        self._in_flight: dict[bytes, tuple[object, float]] = {}  # token -> (echo, sent at)

    def ping_for(self, echo: object) -> bytes:
        """The payload of the Ping that times *echo* (what the report names: a probe's seq, say)."""
        self._sent += 1
        token = b"%d" % self._sent
        self._in_flight[token] = (echo, time.perf_counter())
        if len(self._in_flight) > self._limit:
            del self._in_flight[next(iter(self._in_flight))]
        return token

    def pong(self, payload: bytes) -> tuple[object, float] | None:
        """``(echo, round trip in ms)`` for the Pong of one of our Pings; None for any other."""
        timed = self._in_flight.pop(payload, None)
        if timed is None:
            return None
        echo, sent_at = timed
        return echo, round((time.perf_counter() - sent_at) * 1000.0, 3)


def json_object(payload: bytes) -> dict | None:
    """*payload* as a JSON object, or None when it is anything else."""
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def is_echo_request(message: dict) -> bool:
    """What the probe and a persona's ping echo: a whole, non-negative ``seq`` and a numeric ``t``."""
    seq, sent = message.get("seq"), message.get("t")
    return (isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0
            and isinstance(sent, (int, float)) and not isinstance(sent, bool))
