"""The latency probe: a WebSocket echo every 100 ms, every probe accounted for.

The probe sends ``{"seq": n, "t": ms}`` (``t`` on the test clock) and the
server echoes it unchanged; RTT = receive time - send time.  The server then
times a WebSocket Ping behind the echo, and the kernel's acknowledgement of
both, and reports those round trips, which the row keeps beside the
client's own.  A probe with no answer within 2 s is lost: it stays in the
log with ``rtt = None``, never with an invented round-trip time.  Each probe carries the phase it was sent
in.  This module is the probe itself; ``lqos.client.prober`` runs it in a
child process of its own.
"""

from __future__ import annotations

import json
import math

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.util import parse_url
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.ssl import optionsForClientTLS

from lqos.client.http import ClientError, trust_root
from lqos.client.schedule import Schedule, TestClock
from lqos.measure.submission import PROBE_INTERVAL_MS, PROBE_TIMEOUT_MS
from lqos.measure.units import SECONDS
from lqos.net.sockets import send_small_messages_at_once

CONNECT_TIMEOUT = 5 * SECONDS
# Probes take turns over this many WebSockets.  TCP delivers in order, so when a
# loaded queue drops one probe's segment, every later probe on that connection
# waits for the retransmission (head-of-line blocking, ~5 probes per drop at
# 100 ms spacing).  Over four connections a drop delays the probe that was
# dropped and at most one more, as close as TCP gets to ping's "lost".
PROBE_CONNECTIONS = 4


class ProbeLog:
    """Every probe sent: its phase, send time, RTT, and the server's timing of it.

    A probe is settled once its echo is lost (no echo within the timeout:
    RTT None), or once the server's report of the round trip it timed has
    come, or when no report came within the timeout after the echo (the
    server's figure stays None and the grade uses the client's).  An echo
    that comes after the timeout stays lost on the client's clock, but the
    server's report of it is still kept: it shows whether the echo had
    reached this machine in time and the client was too busy to read it
    (``ProbeSample``, ``household_grading.held_by_device``).
    """

    def __init__(self, timeout_ms: float = PROBE_TIMEOUT_MS):
        self.timeout_ms = timeout_ms
        self._rows: dict[int, list] = {}
        self._awaiting_echo: dict[int, float] = {}    # seq -> sent_ms
        self._past_timeout: set[int] = set()          # lost on the client's clock; its echo may still come
        # seq -> (echo received_ms, the copy that echoed: the t a household member's copy carried)
        self._awaiting_report: dict[int, tuple[float, object]] = {}

    def sent(self, seq: int, phase: str, sent_ms: float) -> None:
        self._rows[seq] = [seq, phase, round(sent_ms, 3), None, None]
        self._awaiting_echo[seq] = sent_ms

    def answered(self, seq: int, received_ms: float, copy: object = None) -> float | None:
        """Record the echo of *seq*; its RTT, or None if unknown, repeated or too late."""
        sent_ms = self._awaiting_echo.pop(seq, None)
        if sent_ms is None:
            if seq in self._past_timeout:  # lost, but the server's report may say it came in time
                self._past_timeout.discard(seq)
                self._awaiting_report[seq] = (received_ms, copy)
            return None
        self._awaiting_report[seq] = (received_ms, copy)
        rtt = received_ms - sent_ms
        if rtt > self.timeout_ms:
            return None
        self._rows[seq][3] = round(max(rtt, 0.0), 3)
        return rtt

    def reported(self, seq: int, server_rtt_ms: object, copy: object = None, ack_rtt_ms: object = None) -> None:
        """Record the server's timings of *seq*'s round trip, of the *copy* that echoed it (ignored
        unless awaited; a timing that is not sane is left out).

        The kernel's acknowledgement timing (*ack_rtt_ms*, the probe's only)
        becomes the row's sixth item; a row without one stays five wide.
        """
        awaited = self._awaiting_report.get(seq)
        if awaited is None or awaited[1] != copy:  # not awaited, or another copy's timing
            return
        del self._awaiting_report[seq]
        if self._sane(server_rtt_ms):
            self._rows[seq][4] = round(float(server_rtt_ms), 3)
        if self._sane(ack_rtt_ms):
            self._rows[seq].append(round(float(ack_rtt_ms), 3))

    def _sane(self, rtt_ms: object) -> bool:
        return isinstance(rtt_ms, (int, float)) and not isinstance(rtt_ms, bool) and 0 <= rtt_ms < self.timeout_ms

    def expire(self, now_ms: float) -> None:
        """Settle the probes that waited the timeout for their echo (lost) or their report."""
        for seq in [s for s, sent in self._awaiting_echo.items() if now_ms - sent >= self.timeout_ms]:
            del self._awaiting_echo[seq]
            self._past_timeout.add(seq)
        for seq in [s for s, (echo, _) in self._awaiting_report.items() if now_ms - echo >= self.timeout_ms]:
            del self._awaiting_report[seq]

    def expire_all(self) -> None:
        self._awaiting_echo.clear()
        self._awaiting_report.clear()
        self._past_timeout.clear()

    @property
    def pending(self) -> int:
        return len(self._awaiting_echo) + len(self._awaiting_report)

    def rows(self) -> list[list]:
        """``[seq, phase, sent_ms, rtt_ms | None, server_rtt_ms | None[, ack_rtt_ms]]`` in send order."""
        return [self._rows[seq] for seq in sorted(self._rows)]


def next_probe_time(now_ms: float, interval_ms: float = PROBE_INTERVAL_MS) -> float:
    """The next slot on the 100 ms grid after *now_ms*: a late loop skips, never bursts."""
    return (math.floor(now_ms / interval_ms) + 1) * interval_ms


class ProbeClientProtocol(WebSocketClientProtocol):
    def onOpen(self) -> None:
        send_small_messages_at_once(self.transport)
        self.factory.opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.on_message(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.closed(code, reason)


class ProbeClientFactory(WebSocketClientFactory):
    protocol = ProbeClientProtocol

    def __init__(self, url: str, reactor):
        super().__init__(url, reactor=reactor)
        self.setProtocolOptions(openHandshakeTimeout=CONNECT_TIMEOUT, closeHandshakeTimeout=1.0,
                                autoPingInterval=0,
                                maxFramePayloadSize=4096, maxMessagePayloadSize=4096)
        self.ready = defer.Deferred()
        self.on_message = lambda payload: None
        self.on_close = lambda code, reason: None

    def opened(self, protocol: ProbeClientProtocol) -> None:
        if not self.ready.called:
            self.ready.callback(protocol)

    def closed(self, code: int | None, reason: str | None) -> None:
        if not self.ready.called:
            self.ready.errback(ClientError(f"the probe WebSocket did not open ({reason or 'refused'})"))
        self.on_close(code, reason)


def websocket_endpoint(reactor, url: str, cafile: str | None = None):
    """The client endpoint for a ``ws://`` or ``wss://`` *url* (TLS trusting *cafile*)."""
    is_secure, host, port, *_ = parse_url(url)
    endpoint = HostnameEndpoint(reactor, host, port, timeout=CONNECT_TIMEOUT)
    if is_secure:
        endpoint = wrapClientTLS(optionsForClientTLS(host, trustRoot=trust_root(cafile)), endpoint)
    return endpoint


async def connect_probe(reactor, url: str, cafile: str | None = None) -> ProbeClientFactory:
    """Open the probe WebSocket at *url*; the factory, once the handshake is done."""
    factory = ProbeClientFactory(url, reactor)
    await websocket_endpoint(reactor, url, cafile).connect(factory)
    factory.protocol_instance = await factory.ready.addTimeout(CONNECT_TIMEOUT * 2, reactor)
    return factory


class Prober:
    """Sends a probe every 100 ms of the schedule, over the connections in turn;
    fires ``finished`` with the probe rows.

    After the schedule's end it waits for the last answers (at most the probe
    timeout), then closes the WebSockets.
    """

    def __init__(self, reactor, factories: list[ProbeClientFactory], clock: TestClock, schedule: Schedule):
        self._reactor = reactor
        self._factories = factories
        self._clock = clock
        self._schedule = schedule
        self.log = ProbeLog()
        self.finished = defer.Deferred()
        self._seq = 0
        self._timer = None
        self._sending = True
        for factory in factories:
            factory.on_message = self._on_message
            factory.on_close = self._on_close

    def start(self) -> None:
        self._call_at(0.0 if self._clock.now_ms() < 0 else None)

    def _call_at(self, target_ms: float | None) -> None:
        if target_ms is None:
            self._send()
            return
        delay = max(0.0, (target_ms - self._clock.now_ms()) / 1000.0)
        self._timer = self._reactor.callLater(delay, self._send)

    def _send(self) -> None:
        now = self._clock.now_ms()
        phase = self._schedule.phase_at(now)
        if phase is None:
            self._stop_sending()
            return
        message = json.dumps({"seq": self._seq, "t": round(now, 3)}, separators=(",", ":"))
        connection = self._factories[self._seq % len(self._factories)].protocol_instance
        connection.sendMessage(message.encode())
        self.log.sent(self._seq, phase, now)
        self._seq += 1
        self.log.expire(now)
        self._call_at(next_probe_time(self._clock.now_ms()))

    def _on_message(self, payload: bytes) -> None:
        received = self._clock.now_ms()
        try:
            message = json.loads(payload)
            seq = message["seq"]
        except (ValueError, KeyError, TypeError):
            return
        if isinstance(seq, int):
            if "server_rtt_ms" in message:
                self.log.reported(seq, message["server_rtt_ms"], ack_rtt_ms=message.get("ack_rtt_ms"))
            else:
                self.log.answered(seq, received)
        if not self._sending and self.log.pending == 0:
            self._finish()

    def _stop_sending(self) -> None:
        self._sending = False
        if self.log.pending == 0:
            self._finish()
        else:
            self._timer = self._reactor.callLater(PROBE_TIMEOUT_MS / 1000.0, self._finish)

    def _finish(self) -> None:
        if self.finished.called:
            return
        self.stop()
        self.log.expire_all()
        self.finished.callback(self.log.rows())

    def _on_close(self, code: int | None, reason: str | None) -> None:
        if not self.finished.called:
            self._cancel_timer()
            self.finished.errback(ClientError(f"the probe WebSocket closed mid-test (code {code})"))

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()

    def stop(self) -> None:
        """Stop sending and close the WebSockets (for the end, or an abort)."""
        self._sending = False
        self._cancel_timer()
        close_all(self._factories)


class InlineProber:
    """The probe in the calling process's own reactor (for comparison and tests)."""

    def __init__(self, reactor, cafile: str | None = None):
        self._reactor = reactor
        self._cafile = cafile
        self._factories: list[ProbeClientFactory] = []
        self._prober = None

    def connect(self, url: str) -> defer.Deferred:
        """Fires once every probe WebSocket is open."""
        return defer.ensureDeferred(self._connect(url))

    async def _connect(self, url: str) -> None:
        for _ in range(PROBE_CONNECTIONS):
            self._factories.append(await connect_probe(self._reactor, url, self._cafile))

    def start(self, clock: TestClock, schedule: Schedule) -> defer.Deferred:
        """Begin probing; the Deferred fires with the probe rows at the end."""
        self._prober = Prober(self._reactor, self._factories, clock, schedule)
        self._prober.start()
        return self._prober.finished

    def abort(self) -> None:
        if self._prober is not None:
            self._prober.stop()
        else:
            close_all(self._factories)


def close_all(factories: list[ProbeClientFactory]) -> None:
    for factory in factories:
        factory.on_close = lambda code, reason: None
        factory.protocol_instance.sendClose()
