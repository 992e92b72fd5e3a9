"""One WebSocket protocol that plays any persona's traffic plan.

Wire format on ``/ws/virtual-household/{household_id}?test=ID&expires=T&token=K``:

* client → server, text: ``{"type": "ping", "seq", "t"}`` (echoed at once as
  ``"pong"``), ``{"type": "start", "seconds": S}`` (begin the load);
  binary: upstream traffic, counted and discarded.
* server → client, text: ``hello`` (the plan), ``pong``, then ``{"type":
  "timing", "seq", "t", "server_rtt_ms"}`` once the WebSocket Ping sent right
  behind that pong is answered (as on the probe port: the round trip the
  client's network stack answered, without its script), ``ack`` once a
  second with the upstream bytes received so far, ``burst`` start/end
  markers for a bursty plan, ``done``; binary: downstream traffic.

A persona with ``echo_copies`` N > 1 is opened N + 1 times by one
household: the first connection sends ``start`` and carries the traffic;
the others only send pings (copies of each, a tick apart, each with its own
``t``), so they never carry any load and a pong on one is held back only if
that pong itself is dropped (``lqos.personas.model.Persona`` says why).
The server needs no state for this: a session that never starts just echoes.

The server only writes while the transport wants data (it is the
transport's producer), so a slow client holds back its own session and
nobody else's.  What the paused transport could not take waits in a backlog
of at most one second of the plan; the rest is counted as dropped, as a real
real-time application would drop stale frames.
"""

from __future__ import annotations

import json
import os

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from lqos.measure.units import SECONDS, bytes_per_second
from lqos.net.ratelimit import TokenBucket
from lqos.net.sockets import send_small_messages_at_once
from lqos.net.websocket import PongTimer, apply_server_options, is_echo_request, json_object
from lqos.personas.model import IPersona
from lqos.sessions import persona_token_valid

MAX_LOAD_SECONDS = 60 * SECONDS
IDLE_TIMEOUT = 20 * SECONDS
MAX_SESSION_LIFETIME = 3 * 60 * SECONDS
MAX_CONTROL_BYTES = 256
# Autobahn buffers an opening handshake without limit until its blank line;
# Twisted's HTTP parser (the main and probe ports) allows 16 KiB of head.
MAX_HANDSHAKE_BYTES = 16 * 1024
MAX_UPSTREAM_MESSAGE_BYTES = 256 * 1024
PINGS_PER_SECOND = 50
# Pings of ours whose Pong has not come back; the oldest is forgotten beyond
# this (50 a second, each timed for at most a member's 2 s deadline).
MAX_PINGS_IN_FLIGHT = 128
# Upstream beyond twice the plan (plus slack) is abuse of a persona port as a sink.
UPSTREAM_ALLOWANCE = 2.0
UPSTREAM_SLACK_BYTES = 4 * 1024 * 1024
PATH_PREFIX = "/ws/virtual-household/"
OPEN = WebSocketProtocol.STATE_OPEN

log = Logger()

CLOSE_NORMAL = 1000
CLOSE_BAD_MESSAGE = 4400
CLOSE_TOO_MUCH = 4429


class PersonaSession(WebSocketServerProtocol, TimeoutMixin):
    """One household member's connection, playing the factory's persona."""

    def _dataReceived(self, data: bytes) -> None:
        """Hold an opening handshake to ``MAX_HANDSHAKE_BYTES``; drop what arrives after the close.

        Autobahn appends every byte to its buffer before it looks at the
        state, so without this a client could push megabytes of "header" for
        the whole handshake timeout (measured: 20 MB and 25 MB of RSS per
        connection in 5 s), and the search for the blank line grows with it.
        """
        if self.state == WebSocketProtocol.STATE_CLOSED:
            return
        if self.state == WebSocketProtocol.STATE_CONNECTING and len(self.data) + len(data) > MAX_HANDSHAKE_BYTES:
            self.data = b""
            self.failHandshake("Request Header Fields Too Large", 431)
            return
        super()._dataReceived(data)

    def onConnect(self, request):
        if not request.path.startswith(PATH_PREFIX) or len(request.path) > 200:
            raise ConnectionDeny(404, "no such path")
        query = {key: values[0] for key, values in request.params.items() if values}
        factory = self.factory
        try:
            expires = float(query.get("expires", "0"))
        except ValueError:
            expires = 0.0
        if not persona_token_valid(factory.secret, query.get("test", ""), expires,
                                   query.get("token", ""), factory.reactor.seconds()):
            raise ConnectionDeny(403, "missing, wrong or expired token")
        self.household_id = request.path[len(PATH_PREFIX):]
        return None

    def onOpen(self) -> None:
        send_small_messages_at_once(self.transport)
        clock = self.factory.reactor
        self.callLater = clock.callLater
        self.setTimeout(IDLE_TIMEOUT)
        self._pings = TokenBucket(PINGS_PER_SECOND, PINGS_PER_SECOND, clock.seconds())
        self._pong_timer = PongTimer(MAX_PINGS_IN_FLIGHT)
        self._lifetime = clock.callLater(MAX_SESSION_LIFETIME, self.sendClose, CLOSE_NORMAL, "lifetime")
        self._paused = False
        self._load_started: float | None = None
        self._load_seconds = 0.0
        self._backlog = 0
        self._next_ack = 0.0
        self._burst: int | None = None
        self.down_bytes = self.up_bytes = self.dropped_bytes = 0
        self.transport.registerProducer(self, True)
        self.factory.track(self)
        self._send_json({"type": "hello", "persona": self.factory.persona.profile()})

    # --- flow control: the transport tells us when it wants data ---

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        if self._load_started is not None and self.factory.persona.traffic.bulk:
            self._fill_bulk()

    def stopProducing(self) -> None:
        self._paused = True

    # --- what the client sends ---

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.state != OPEN:
            return  # what follows a message we closed on, in the same read, is not answered
        self.resetTimeout()
        if isBinary:
            self._count_upstream(len(payload))
            return
        message = _control_message(payload)
        kind = message.get("type") if message else None
        if kind == "ping" and self._pings.take(self.factory.reactor.seconds()):
            self._send_json({"type": "pong", "seq": message["seq"], "t": message["t"]})
            # The timing names the copy (its t) as well as the ping: a member with echo
            # copies keeps the timing of the copy whose pong answered it, no other.
            self.sendPing(self._pong_timer.ping_for((message["seq"], message["t"])))
        elif kind == "start" and self._load_started is None:
            self._start_load(message.get("seconds"))
        else:
            self.sendClose(CLOSE_BAD_MESSAGE, "unexpected message")

    def onPong(self, payload: bytes) -> None:
        timed = self._pong_timer.pong(payload)
        if timed is not None:
            (seq, sent), rtt_ms = timed
            self._send_json({"type": "timing", "seq": seq, "t": sent, "server_rtt_ms": rtt_ms})

    def _count_upstream(self, size: int) -> None:
        self.up_bytes += size
        plan = self.factory.persona.traffic
        allowed = bytes_per_second(plan.up_mbps) * max(self._load_seconds, 1) * UPSTREAM_ALLOWANCE + UPSTREAM_SLACK_BYTES
        if self.up_bytes > allowed:
            self.sendClose(CLOSE_TOO_MUCH, "more upstream traffic than this persona sends")

    def _start_load(self, seconds: object) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= MAX_LOAD_SECONDS:
            self.sendClose(CLOSE_BAD_MESSAGE, f"start needs seconds in (0, {MAX_LOAD_SECONDS:g}]")
            return
        self._load_started = self.factory.reactor.seconds()
        self._load_seconds = float(seconds)
        if self.factory.persona.traffic.bulk:
            self._fill_bulk()

    # --- what the server sends, on the factory's tick ---

    def tick(self, now: float, ticks: int = 1) -> None:
        """Play the plan for *ticks* ticks (more than one when the loop fell behind).

        A session that is closing (the server closed on a bad message, and waits
        for the client's close frame) sends nothing more: Autobahn raises on a
        send after ``sendClose``, and that raise, in the factory's shared tick,
        once stopped every session of the persona.
        """
        if self._load_started is None or self.state != OPEN:
            return
        elapsed = now - self._load_started
        if elapsed >= self._load_seconds:
            self._finish(elapsed)
            return
        plan = self.factory.persona.traffic
        if not plan.bulk:
            self._send_scheduled(plan, elapsed, ticks)
        if elapsed >= self._next_ack:
            self._next_ack += 1.0
            self._send_json({"type": "ack", "t_ms": round(elapsed * 1000), "up_bytes": self.up_bytes})

    def _send_scheduled(self, plan, elapsed: float, ticks: int) -> None:
        self._mark_burst(plan, elapsed)
        self._backlog += plan.down_bytes_per_tick(elapsed) * ticks
        limit = int(bytes_per_second(plan.down_mbps or 0))  # one second of the plan
        if self._backlog > limit:
            self.dropped_bytes += self._backlog - limit
            self._backlog = limit
        if not self._paused and self._backlog:
            self._send_down(self._backlog)
            self._backlog = 0
        if self._burst is not None and not plan.in_burst(elapsed) and not self._backlog:
            self._send_json({"type": "burst", "n": self._burst, "edge": "end"})
            self._burst = None

    def _mark_burst(self, plan, elapsed: float) -> None:
        number = plan.burst_number(elapsed)
        if number is not None and plan.in_burst(elapsed) and self._burst != number:
            self._burst = number
            self._send_json({"type": "burst", "n": number, "edge": "start",
                             "bytes": int(bytes_per_second(plan.down_mbps) * plan.burst_seconds)})

    def _fill_bulk(self) -> None:
        block = self.factory.block
        for _ in range(64):  # yield to other connections now and then
            if self._paused or self._load_started is None or self.state != OPEN:
                return
            self._send_down(len(block))
        self.factory.reactor.callLater(0, self._fill_bulk)

    def _send_down(self, size: int) -> None:
        block = self.factory.block
        while size > 0 and self.state == OPEN:
            chunk = min(size, len(block))
            self.sendMessage(block[:chunk] if chunk < len(block) else block, isBinary=True)
            self.down_bytes += chunk
            size -= chunk

    def _finish(self, elapsed: float) -> None:
        self._send_json({"type": "ack", "t_ms": round(elapsed * 1000), "up_bytes": self.up_bytes})
        self._send_json({"type": "done", "down_bytes": self.down_bytes, "dropped_bytes": self.dropped_bytes})
        self._load_started = None

    def _send_json(self, message: dict) -> None:
        if self.state != OPEN:
            return
        self.sendMessage(json.dumps(message, separators=(",", ":")).encode(), isBinary=False)

    def timeoutConnection(self) -> None:
        self.sendClose(CLOSE_NORMAL, "idle")

    def onClose(self, wasClean: bool, code: int, reason: str) -> None:
        self.setTimeout(None)
        self._load_started = None
        lifetime = getattr(self, "_lifetime", None)
        if lifetime is not None and lifetime.active():
            lifetime.cancel()
        self.factory.forget(self)


def _control_message(payload: bytes) -> dict | None:
    message = json_object(payload) if len(payload) <= MAX_CONTROL_BYTES else None
    if message is not None and message.get("type") == "ping" and not is_echo_request(message):
        return None
    return message


@implementer(IProtocolNegotiationFactory)
class PersonaFactory(WebSocketServerFactory):
    """Every session of one persona, ticked together at the persona's rate while there is one.

    The tick stops with the last session: an idle persona process does not
    wake up at its tick rate (60 a second for gaming) for nobody.  It names
    its ALPN protocol: over TLS, Twisted aborts a handshake that offers ALPN
    (every browser does) unless the factory says what it speaks.
    """

    protocol = PersonaSession

    def __init__(self, persona: IPersona, secret: bytes, reactor, send_to_parent=None):
        super().__init__(reactor=reactor)
        self.persona = persona
        self.secret = secret
        self.sessions: set[PersonaSession] = set()
        self.block = os.urandom(64 * 1024)
        self._send_to_parent = send_to_parent
        apply_server_options(self, MAX_UPSTREAM_MESSAGE_BYTES)
        self._ticker: LoopingCall | None = None
        self._reporter = LoopingCall(self._report)
        self._reporter.clock = reactor

    def acceptableProtocols(self) -> list[bytes]:
        return [b"http/1.1"]

    def startFactory(self) -> None:
        super().startFactory()
        self._reporter.start(1.0, now=False)

    def track(self, session: PersonaSession) -> None:
        """A session opened: tick it from now on (starting the tick for the first)."""
        self.sessions.add(session)
        if self._ticker is None:
            # withCount: a tick the loop missed is made up, so a busy process still
            # delivers the plan's rate (the one-second backlog cap still bounds it).
            # A new loop each time: a restarted one would count the ticks it missed
            # while stopped and hand the first session a second of them at once.
            self._ticker = LoopingCall.withCount(self._tick)
            self._ticker.clock = self.reactor
            self._ticker.start(1.0 / self.persona.traffic.tick_hz, now=False)

    def forget(self, session: PersonaSession) -> None:
        """A session ended: no more ticks for it, and none at all once none is left."""
        self.sessions.discard(session)
        if not self.sessions:
            self._stop_ticking()

    def _stop_ticking(self) -> None:
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        self._ticker = None

    def stopFactory(self) -> None:
        self._stop_ticking()
        if self._reporter.running:
            self._reporter.stop()
        super().stopFactory()

    def _tick(self, ticks: int) -> None:
        """Tick every session; one session's failure ends that session, never the loop for all."""
        now = self.reactor.seconds()
        for session in list(self.sessions):
            try:
                session.tick(now, ticks)
            except Exception:
                log.failure("persona {name}: a session failed on its tick; dropping it", name=self.persona.name)
                self.forget(session)
                session.dropConnection(abort=True)

    def _report(self) -> None:
        if self._send_to_parent is not None:
            self._send_to_parent({
                "event": "stats",
                # A household opens a persona more than once (its echo-only
                # connections): it counts as one session.
                "sessions": len({session.household_id for session in self.sessions}),
                "down_bytes": sum(s.down_bytes for s in self.sessions),
                "up_bytes": sum(s.up_bytes for s in self.sessions),
            })
