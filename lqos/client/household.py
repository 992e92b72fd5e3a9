"""The virtual household from a terminal, with Twisted and Autobahn (docs/PROTOCOL.md).

``POST /api/tests {"mode": "virtual_household"}`` answers the phases
(``baseline``, ``load``) and every persona with its WebSocket ``url`` and
plan.  This module opens one WebSocket per persona and plays the client's
side of ``lqos.personas.protocol`` on each:

* all through both phases, ``{"type": "ping", "seq", "t"}`` every 100 ms on
  the test clock; RTT is measured when the ``pong`` arrives, a ping with no
  pong within the persona's ``deadline_ms`` is lost (``null``, never a
  made-up RTT), and each ping carries the phase it was *sent* in;
* a persona with ``echo_copies`` N > 1 gets N more WebSockets that
  only echo, and its own connection carries no pings: copy k of ping n goes
  on echo connection (n + k) mod N, k ticks after copy 0 unless the ping is
  answered by then, with its own send time as ``t``; the ping's RTT is the
  first pong's, from that copy's ``t`` (why: ``lqos.personas.model.Persona``);
* when ``load`` begins, ``{"type": "start", "seconds": S}`` to every
  persona at once; then, until the load ends, ``up_bytes_per_tick`` binary
  bytes every ``1 / tick_hz`` s (one ``LoopingCall`` per persona);
* downstream binary bytes counted into 1 s windows of the load, every
  ``ack`` kept as ``[t_ms, up_bytes]``, and for a bursty persona each
  video segment's arrival (its ``end`` marker) in seconds from when it was
  due to be sent (``SegmentTimer``);
* a connection that breaks before its ``done`` marks that persona
  ``interrupted``; the others carry on.

Every persona the server ships sends its pings on echo-only connections
(``echo_copies`` > 1), so its latency is the line's, not its own send
queue's; a plugged-in persona with ``echo_copies`` 1 pings on its own
connection.  Everything runs in this process's event loop; a bulk persona's
reads can be capped (``max_bulk_mbps``, ``--max-mbps``) where this host's
cores, not the line, would set the pace.

Nothing here grades anything: the server scores the raw samples.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from typing import Callable

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer
from twisted.internet.task import LoopingCall

from lqos.client.http import ClientError, Http, describe_error
from lqos.client.load import RateCeiling
from lqos.client.probe import ProbeLog, next_probe_time, websocket_endpoint
from lqos.client.runner import start_test
from lqos.client.schedule import Schedule, TestClock
from lqos.client.windows import WINDOW_MS
from lqos.measure.submission import MAX_PERSONA_DEADLINE_MS, PROBE_INTERVAL_MS
from lqos.measure.units import SECONDS, bytes_per_second
from lqos.net.sockets import send_small_messages_at_once
from lqos.personas.model import MAX_ECHO_COPIES

MODE = "virtual_household"
PHASES = ("baseline", "load")
ANSWER_KEYS = ("test_id", "token", "phases", "personas", "result_url")
DOWN_WINDOW_MS = 1000.0
CONNECT_TIMEOUT = 10 * SECONDS
# After the load: the personas' last tick, their ``done``, the last pongs.
DONE_SLACK_MS = 3000.0
FINISH_POLL = 0.1 * SECONDS
# Downstream messages are at most 64 KiB (lqos.personas.model); control messages far less.
MAX_MESSAGE_BYTES = 256 * 1024
UP_MESSAGE_BYTES = 64 * 1024
MAX_UP_BYTES_PER_TICK = 4 * 1024 * 1024
MAX_TICK_HZ = 1000.0
MAX_SEGMENT_SECONDS = 60.0


# ------------------------------------------------------------------ pure parts


class DownWindows:
    """Downstream bytes per 1 s window of the load; ``start_ms`` on the test clock.

    Window *k* covers ``[load_start + k s, load_start + (k+1) s)``; bytes
    received before the load or after its last window belong to no window.
    """

    def __init__(self, load_start_ms: float, load_seconds: float, window_ms: float = DOWN_WINDOW_MS):
        self.load_start_ms = load_start_ms
        self.window_ms = window_ms
        self.count = math.ceil(load_seconds * 1000.0 / window_ms)
        self._bytes = [0] * self.count

    def add(self, t_ms: float, byte_count: int) -> None:
        index = math.floor((t_ms - self.load_start_ms) / self.window_ms)
        if 0 <= index < self.count:
            self._bytes[index] += byte_count

    def rows(self) -> list[list]:
        """``[start_ms, bytes]`` for every window of the load, empty windows included."""
        return [[round(self.load_start_ms + index * self.window_ms, 3), byte_count]
                for index, byte_count in enumerate(self._bytes)]


class SegmentTimer:
    """Each video segment's arrival, in seconds from the moment it was due to be sent.

    Segment n of a bursty plan is sent from ``n × segment_seconds`` into the
    load (the ``burst`` markers carry its number).  It arrives when its
    ``end`` marker does.  Timing it from its scheduled start rather than from
    its ``start`` marker counts the time it waited behind the previous
    segment or in the line's queue, which a player waits too.
    """

    def __init__(self, load_start_ms: float, segment_seconds: float):
        self._load_start_ms = load_start_ms
        self._segment_ms = segment_seconds * 1000.0
        self._started: set[int] = set()
        self._seconds: dict[int, float] = {}

    def marker(self, number: int, edge: str, t_ms: float) -> None:
        if edge == "start":
            self._started.add(number)
        elif edge == "end" and number in self._started and number not in self._seconds:
            due_ms = self._load_start_ms + number * self._segment_ms
            self._seconds[number] = round(max(0.0, t_ms - due_ms) / 1000.0, 4)

    def rows(self) -> list[list]:
        """``[n, seconds]`` per segment that started; ``None`` for one whose end never came."""
        return [[number, self._seconds.get(number)] for number in sorted(self._started)]


@dataclass(frozen=True)
class PersonaPlan:
    """What the client needs of one persona in the server's answer."""

    name: str
    url: str
    deadline_ms: float
    tick_hz: float
    up_bytes_per_tick: int
    bulk: bool
    echo_copies: int = 1
    segment_seconds: float | None = None  # a bursty plan's period: one video segment per burst

    @property
    def bursty(self) -> bool:
        return self.segment_seconds is not None

    @classmethod
    def from_answer(cls, entry: object) -> "PersonaPlan":
        try:
            traffic = entry["traffic"]
            echo_copies = entry.get("echo_copies", 1)
            if isinstance(echo_copies, bool) or not isinstance(echo_copies, int):
                raise TypeError("echo_copies")
            period = traffic.get("period_seconds")
            plan = cls(str(entry["name"]), str(entry["url"]), float(entry["deadline_ms"]),
                       float(traffic["tick_hz"]), int(traffic["up_bytes_per_tick"]),
                       traffic["down_mbps"] is None, echo_copies,
                       None if period is None else float(period))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ClientError("the server's household description has a malformed persona") from None
        if not (0 < plan.deadline_ms <= MAX_PERSONA_DEADLINE_MS and 0 < plan.tick_hz <= MAX_TICK_HZ
                and 0 <= plan.up_bytes_per_tick <= MAX_UP_BYTES_PER_TICK
                and 1 <= plan.echo_copies <= MAX_ECHO_COPIES
                and (plan.segment_seconds is None or 0 < plan.segment_seconds <= MAX_SEGMENT_SECONDS)):
            raise ClientError(f"the server's plan for persona {plan.name!r} is out of bounds")
        return plan


def persona_plans(answer: dict) -> list[PersonaPlan]:
    entries = answer.get("personas")
    if not isinstance(entries, list) or not entries:
        raise ClientError("the server's household description lists no personas")
    plans = [PersonaPlan.from_answer(entry) for entry in entries]
    if len({plan.name for plan in plans}) != len(plans):
        raise ClientError("the server's household description names a persona twice")
    return plans


def household_schedule(answer: dict) -> Schedule:
    schedule = Schedule.from_phases(answer["phases"])
    if tuple(span.name for span in schedule.spans) != PHASES:
        raise ClientError(f"a household test has the phases {list(PHASES)}, the server answered "
                          f"{[span.name for span in schedule.spans]}")
    return schedule


# ------------------------------------------------------------ one persona's side


class PersonaMember:
    """This household's connections to one persona: what they send, what they record.

    ``protocol`` carries the persona's traffic, and its pings unless the
    persona asks for ``echo_copies`` > 1: then ``echo_protocols`` carry them,
    one copy each, a tick apart.  Only ``protocol`` breaking interrupts the
    persona; a broken echo connection's copies are not sent.
    """

    def __init__(self, reactor, plan: PersonaPlan, schedule: Schedule, block: bytes):
        self.plan = plan
        self._reactor = reactor
        self._clock = None
        self._block = block
        self._ceiling: RateCeiling | None = None
        load = schedule.span("load")
        # Each echo waits up to the deadline for its pong, and then as long again for
        # the server's timing of the copy that answered it (named by that copy's t),
        # which the result reports beside the grade.
        self.pings = ProbeLog(timeout_ms=plan.deadline_ms)
        self.down = DownWindows(load.start_ms, (load.end_ms - load.start_ms) / 1000.0)
        self.up_acks: list[list] = []
        self.segments = SegmentTimer(load.start_ms, plan.segment_seconds or 1.0)
        self.interrupted = False
        self.done = False
        self.closed = False
        self.protocol: WebSocketClientProtocol | None = None
        self.echo_protocols: list[WebSocketClientProtocol | None] = []  # None once broken
        # seq -> (the ping's time, each copy's send time), until answered: a pong past the
        # deadline is still matched to its copy, for the server's timing of it (ProbeLog)
        self._copies_sent: dict[int, tuple[float, list[float]]] = {}
        self._copy_timers: list = []
        self.on_change: Callable[[], None] = lambda: None
        self._seq = 0
        self._uploader = LoopingCall(self._send_up)
        self._uploader.clock = reactor

    def attach(self, clock, max_bulk_mbps: float | None = None) -> None:
        """Start recording on *clock* (the test clock starts once every WebSocket is open);
        a bulk persona's reads are capped at *max_bulk_mbps*, if given."""
        self._clock = clock
        if self.plan.bulk and max_bulk_mbps is not None:
            per_window = int(bytes_per_second(max_bulk_mbps) * WINDOW_MS / 1000.0)
            self._ceiling = RateCeiling(self._reactor, clock, per_window)

    @property
    def live(self) -> bool:
        """Open, and its load not yet over."""
        return self.protocol is not None and not self.closed and not self.done

    @property
    def finished(self) -> bool:
        """Nothing more to wait for: ended (done or broken) and no ping still in flight."""
        return (self.done or self.closed) and self.pings.pending == 0

    # --- sending ---

    def ping(self, now_ms: float, phase: str) -> None:
        """One echo: on the persona's own connection, or as its copies a tick apart."""
        if not self.live:
            return
        seq = self._seq
        self._seq += 1
        self.pings.sent(seq, phase, now_ms)
        if not self.echo_protocols:
            self._send_ping(self.protocol, seq, now_ms)
            return
        self._copies_sent[seq] = (now_ms, [])
        self._send_copy(seq, 0)
        self._copy_timers = [timer for timer in self._copy_timers if timer.active()]
        for copy in range(1, len(self.echo_protocols)):
            self._copy_timers.append(self._reactor.callLater(copy / self.plan.tick_hz, self._send_copy, seq, copy))

    def _send_copy(self, seq: int, copy: int) -> None:
        if self.closed or seq not in self._copies_sent:
            return
        protocol = self.echo_protocols[(seq + copy) % len(self.echo_protocols)]
        if protocol is not None and protocol.state == WebSocketClientProtocol.STATE_OPEN:
            sent_ms = self._clock.now_ms()
            self._copies_sent[seq][1].append(round(sent_ms, 3))
            self._send_ping(protocol, seq, sent_ms)

    @staticmethod
    def _send_ping(protocol, seq: int, sent_ms: float) -> None:
        message = {"type": "ping", "seq": seq, "t": round(sent_ms, 3)}
        protocol.sendMessage(json.dumps(message, separators=(",", ":")).encode(), isBinary=False)

    def start_load(self, seconds: float) -> None:
        if not self.live:
            return
        self._send_json({"type": "start", "seconds": seconds})
        if self.plan.up_bytes_per_tick:
            self._uploader.start(1.0 / self.plan.tick_hz, now=True)

    def stop_load(self) -> None:
        if self._uploader.running:
            self._uploader.stop()

    def _send_up(self) -> None:
        if not self.live:
            self.stop_load()
            return
        remaining = self.plan.up_bytes_per_tick
        while remaining > 0:
            size = min(remaining, len(self._block))
            self.protocol.sendMessage(self._block[:size], isBinary=True)
            remaining -= size

    def _send_json(self, message: dict) -> None:
        self.protocol.sendMessage(json.dumps(message, separators=(",", ":")).encode(), isBinary=False)

    def expire(self, now_ms: float) -> None:
        self.pings.expire(now_ms)

    def close(self) -> None:
        self.stop_load()
        self.pings.expire_all()
        self._copies_sent.clear()
        for timer in self._copy_timers:
            if timer.active():
                timer.cancel()
        for protocol in self.echo_protocols:
            if protocol is not None:
                protocol.sendClose()
        if self.protocol is not None and not self.closed:
            self.protocol.sendClose()

    # --- receiving ---

    def on_binary(self, size: int) -> None:
        if self._clock is None:
            return
        self.down.add(self._clock.now_ms(), size)
        if self._ceiling is not None:
            self._ceiling.spend(size)
            if not self._ceiling.allows():
                transport = self.protocol.transport
                transport.pauseProducing()
                self._ceiling.wait(transport.resumeProducing)

    def on_echo(self, payload: bytes) -> None:
        """A message on an echo-only connection: only its pongs matter.

        The first copy back answers the ping, with that copy's RTT: it is
        recorded as if it had come back that much after the ping's first copy
        (``ProbeLog`` counts from there, and applies the deadline from there).
        """
        if self._clock is None:
            return
        now = self._clock.now_ms()
        try:
            message = json.loads(payload)
            if message.get("type") == "timing":
                self.on_timing(message)
                return
            if message.get("type") != "pong":
                return
            seq, copy_sent_ms = message.get("seq"), message.get("t")
        except (ValueError, AttributeError):
            return
        if not (_is_number(copy_sent_ms) and isinstance(seq, int) and not isinstance(seq, bool)):
            return
        pinged_ms, copies = self._copies_sent.get(seq, (None, ()))
        if copy_sent_ms not in copies:
            return  # answered already (a later copy), or not one of ours
        del self._copies_sent[seq]
        self.pings.answered(seq, now - (copy_sent_ms - pinged_ms), copy=copy_sent_ms)
        self.on_change()

    def on_timing(self, message: dict) -> None:
        """The server's timing of the round trip of the copy that answered an echo; others are ignored."""
        seq = message.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            self.pings.reported(seq, message.get("server_rtt_ms"), copy=message.get("t"))
            self.on_change()

    def on_echo_close(self, protocol: WebSocketClientProtocol) -> None:
        """An echo connection broke: the other copies go on."""
        self.echo_protocols = [None if p is protocol else p for p in self.echo_protocols]

    def on_text(self, payload: bytes) -> None:
        if self._clock is None:
            return  # the hello, before the test clock starts
        now = self._clock.now_ms()
        try:
            message = json.loads(payload)
            kind = message.get("type")
        except (ValueError, AttributeError):
            return
        if kind == "pong":
            seq = message.get("seq")
            if isinstance(seq, int) and not isinstance(seq, bool):
                self.pings.answered(seq, now, copy=message.get("t"))
        elif kind == "timing":
            self.on_timing(message)
            return
        elif kind == "ack":
            t_ms, up_bytes = message.get("t_ms"), message.get("up_bytes")
            if _is_number(t_ms) and isinstance(up_bytes, int) and not isinstance(up_bytes, bool):
                self.up_acks.append([t_ms, up_bytes])
        elif kind == "burst" and not self.done:  # an end after ``done`` is too late to count
            number = message.get("n")
            if isinstance(number, int) and not isinstance(number, bool):
                self.segments.marker(number, message.get("edge"), now)
        elif kind == "done":
            self.done = True
            self.stop_load()
        self.on_change()

    def on_close(self) -> None:
        self.closed = True
        self.stop_load()
        if not self.done:
            self.interrupted = True
            self.pings.expire_all()
        if self._ceiling is not None:
            self._ceiling.stop()
        self.on_change()

    def samples(self) -> dict:
        """This persona's part of the submission (``lqos.measure.submission``)."""
        return {
            "pings": self.pings.rows(),
            "down": self.down.rows(),
            "up_acks": self.up_acks,
            "bursts": self.segments.rows() if self.plan.bursty else [],
            "interrupted": self.interrupted,
        }


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class PersonaClientProtocol(WebSocketClientProtocol):
    def onOpen(self) -> None:
        # Pings share the connection with upstream traffic: Nagle must not hold them back.
        send_small_messages_at_once(self.transport)
        self.factory.opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.on_message(self, payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.closed(self, reason)


class PersonaClientFactory(WebSocketClientFactory):
    """One of a persona's connections: the traffic one, or (``echo_only``) one that only echoes."""

    protocol = PersonaClientProtocol

    def __init__(self, member: PersonaMember, reactor, echo_only: bool = False):
        super().__init__(member.plan.url, reactor=reactor)
        self.setProtocolOptions(openHandshakeTimeout=CONNECT_TIMEOUT, closeHandshakeTimeout=1.0,
                                autoPingInterval=0, maxFramePayloadSize=MAX_MESSAGE_BYTES,
                                maxMessagePayloadSize=MAX_MESSAGE_BYTES)
        self.member = member
        self.echo_only = echo_only
        self.protocol_instance: PersonaClientProtocol | None = None
        self.ready = defer.Deferred()

    def opened(self, protocol: PersonaClientProtocol) -> None:
        if self.ready.called:  # it opened after its time was up: not part of this test
            protocol.sendClose()
            return
        self.protocol_instance = protocol
        if self.echo_only:
            self.member.echo_protocols.append(protocol)
        else:
            self.member.protocol = protocol
        self.ready.callback(protocol)

    def on_message(self, protocol: PersonaClientProtocol, payload: bytes, is_binary: bool) -> None:
        if protocol is not self.protocol_instance:
            return
        if self.echo_only:
            if not is_binary:
                self.member.on_echo(payload)
        elif is_binary:
            self.member.on_binary(len(payload))
        else:
            self.member.on_text(payload)

    def closed(self, protocol: PersonaClientProtocol, reason: str | None) -> None:
        if not self.ready.called:
            self.ready.errback(ClientError(f"the {self.member.plan.name} persona's WebSocket did not open "
                                           f"({reason or 'refused'})"))
        elif protocol is not self.protocol_instance:
            return
        elif self.echo_only:
            self.member.on_echo_close(protocol)
        elif self.member.protocol is not None:
            self.member.on_close()


async def open_member(reactor, member: PersonaMember, cafile: str | None) -> None:
    """Open every connection the persona asks for; it takes part only if all of them open."""
    echo_only = member.plan.echo_copies if member.plan.echo_copies > 1 else 0
    factories = [PersonaClientFactory(member, reactor, echo_only=index > 0) for index in range(1 + echo_only)]
    endpoint = websocket_endpoint(reactor, member.plan.url, cafile)
    opening = [defer.ensureDeferred(_open(endpoint, factory)) for factory in factories]
    outcomes = await defer.DeferredList(opening, consumeErrors=True)
    failures = [outcome for ok, outcome in outcomes if not ok]
    if failures:
        for ok, protocol in outcomes:
            if ok:
                protocol.sendClose()
        member.echo_protocols.clear()
        failures[0].raiseException()


async def _open(endpoint, factory: PersonaClientFactory) -> PersonaClientProtocol:
    await endpoint.connect(factory)
    return await factory.ready


# --------------------------------------------------------- the household's run


class HouseholdRun:
    """Drives every member on one test clock: pings on the 100 ms grid, the load
    at once for all, then waits (bounded) for every ``done`` and last pong."""

    def __init__(self, reactor, members: list[PersonaMember], clock, schedule: Schedule):
        self._reactor = reactor
        self._members = members
        self._clock = clock
        self._schedule = schedule
        load = schedule.span("load")
        self._load = load
        self._give_up_ms = load.end_ms + max(m.plan.deadline_ms for m in members) + DONE_SLACK_MS
        self._timers: list = []
        self._ping_timer = None
        self._poll = LoopingCall(self._check)
        self._poll.clock = reactor
        self.finished = defer.Deferred()
        for member in members:
            member.on_change = self._on_change

    def start(self) -> defer.Deferred:
        now = self._clock.now_ms()
        self._timers = [self._reactor.callLater(max(0.0, (self._load.start_ms - now) / 1000.0), self._start_load),
                        self._reactor.callLater(max(0.0, (self._load.end_ms - now) / 1000.0), self._end_load)]
        self._ping()
        return self.finished

    def _ping(self) -> None:
        self._ping_timer = None
        now = self._clock.now_ms()
        phase = self._schedule.phase_at(now)
        if phase is None:
            return
        for member in self._members:
            member.expire(now)
            member.ping(now, phase)
        delay = (next_probe_time(self._clock.now_ms(), PROBE_INTERVAL_MS) - self._clock.now_ms()) / 1000.0
        self._ping_timer = self._reactor.callLater(max(0.0, delay), self._ping)

    def _start_load(self) -> None:
        seconds = (self._load.end_ms - self._load.start_ms) / 1000.0
        for member in self._members:
            member.start_load(seconds)

    def _end_load(self) -> None:
        for member in self._members:
            member.stop_load()
        self._poll.start(FINISH_POLL, now=True)

    def _on_change(self) -> None:
        if self._poll.running:
            self._check()

    def _check(self) -> None:
        now = self._clock.now_ms()
        for member in self._members:
            member.expire(now)
        if now >= self._give_up_ms:
            for member in self._members:
                if not (member.done or member.closed):
                    member.interrupted = True  # its session never said it finished
        if all(member.finished for member in self._members) or now >= self._give_up_ms:
            self._finish()

    def _finish(self) -> None:
        if self.finished.called:
            return
        self.stop()
        self.finished.callback(None)

    def stop(self) -> None:
        for timer in [*self._timers, self._ping_timer]:
            if timer is not None and timer.active():
                timer.cancel()
        if self._poll.running:
            self._poll.stop()
        for member in self._members:
            member.close()


def submission(token: str, members: list[PersonaMember]) -> dict:
    """The raw samples in the format of ``lqos.measure.submission.parse_household_submission``."""
    return {"token": token, "personas": {member.plan.name: member.samples() for member in members}}


async def run_household(reactor, answer: dict, cafile: str | None = None, max_bulk_mbps: float | None = None,
                        on_start: Callable[[float], None] | None = None, clock_factory=TestClock) -> dict:
    """Open every persona's WebSocket, run the schedule, return the submission.

    A persona whose WebSocket will not open is interrupted from the start;
    when none opens the test fails.  *max_bulk_mbps* caps what a bulk
    persona's connection reads (the others are never capped).
    """
    schedule = household_schedule(answer)
    block = os.urandom(UP_MESSAGE_BYTES)
    members = [PersonaMember(reactor, plan, schedule, block) for plan in persona_plans(answer)]
    opened = await defer.DeferredList(
        [defer.ensureDeferred(open_member(reactor, m, cafile)).addTimeout(CONNECT_TIMEOUT * 2, reactor)
         for m in members], consumeErrors=True)
    failures = [outcome for ok, outcome in opened if not ok]
    if len(failures) == len(members):
        raise ClientError(f"no persona's WebSocket opened: {describe_error(failures[0].value)}")
    for member, (ok, _) in zip(members, opened):
        if not ok:
            member.interrupted = member.closed = True
    clock = clock_factory()
    for member in members:
        member.attach(clock, max_bulk_mbps)
    if on_start is not None:
        on_start(time.time() - clock.now_ms() / 1000.0)
    run = HouseholdRun(reactor, members, clock, schedule)
    try:
        await run.start()
    finally:
        run.stop()
    return submission(answer["token"], members)


async def start_household(http: Http, base_url: str, schedule: str) -> dict:
    """``POST /api/tests {"mode": "virtual_household"}``: phases, personas, token, result URL."""
    return await start_test(http, base_url, schedule, mode=MODE, required=ANSWER_KEYS)
