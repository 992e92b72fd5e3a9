"""What a persona is: its traffic plan and how it is scored.  Pure data, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from twisted.plugin import IPlugin
from zope.interface import Attribute, Interface, implementer

from lqos.measure.grading import GradeThresholds
from lqos.measure.units import bytes_per_second

BULK_MESSAGE_BYTES = 64 * 1024
# More copies of an echo than this add handshakes and sockets, not accuracy.
MAX_ECHO_COPIES = 4


class IPersona(Interface):
    """A member of the virtual household; drop a module providing one into ``lqos/plugins/``."""

    name = Attribute("Identifier used in URLs and results, e.g. 'gaming'")
    label = Attribute("What the page shows, e.g. 'Alex, competitive gaming'")
    icon = Attribute("A short symbol for the persona's card")
    description = Attribute("One sentence: what this persona does on the line")
    port = Attribute("Default TCP port of the persona's process")
    traffic = Attribute("TrafficPlan: rates over time, message sizes, tick")
    deadline_ms = Attribute("A reply later than this counts as lost")
    echo_copies = Attribute("How many copies of each latency echo, on connections of their own (see Persona)")
    scoring = Attribute("PersonaScoring: what is graded and against which thresholds")


@dataclass(frozen=True)
class TrafficPlan:
    """Rates in Mbit/s; ``down_mbps=None`` means unthrottled bulk that fills the line.

    With ``burst_seconds`` and ``period_seconds`` set, the downstream rate is
    sent only during the first ``burst_seconds`` of every period (a video
    player filling its buffer).
    """

    down_mbps: float | None
    up_mbps: float
    tick_hz: float
    burst_seconds: float | None = None
    period_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.tick_hz <= 0 or self.up_mbps < 0 or (self.down_mbps is not None and self.down_mbps < 0):
            raise ValueError("rates must be non-negative and the tick positive")
        if (self.burst_seconds is None) != (self.period_seconds is None):
            raise ValueError("burst_seconds and period_seconds go together")
        if self.burst_seconds is not None and not 0 < self.burst_seconds <= self.period_seconds:
            raise ValueError("a burst must be shorter than its period")

    @property
    def bulk(self) -> bool:
        return self.down_mbps is None

    @property
    def average_down_mbps(self) -> float | None:
        """The rate the persona asks for over time (its target), None for bulk."""
        if self.down_mbps is None:
            return None
        if self.burst_seconds is None:
            return self.down_mbps
        return self.down_mbps * self.burst_seconds / self.period_seconds

    def in_burst(self, elapsed: float) -> bool:
        if self.burst_seconds is None:
            return True
        return elapsed % self.period_seconds < self.burst_seconds

    def burst_number(self, elapsed: float) -> int | None:
        if self.burst_seconds is None:
            return None
        return int(elapsed // self.period_seconds)

    def down_bytes_per_tick(self, elapsed: float) -> int:
        """Bytes to send downstream on the tick at *elapsed* seconds (0 outside a burst)."""
        if self.down_mbps is None:
            return BULK_MESSAGE_BYTES
        if not self.in_burst(elapsed):
            return 0
        return _bytes_per_tick(self.down_mbps, self.tick_hz)

    def up_bytes_per_tick(self) -> int:
        return _bytes_per_tick(self.up_mbps, self.tick_hz)

    def describe(self) -> dict:
        return {
            "down_mbps": self.down_mbps,
            "up_mbps": self.up_mbps,
            "tick_hz": self.tick_hz,
            "burst_seconds": self.burst_seconds,
            "period_seconds": self.period_seconds,
            "target_down_mbps": self.average_down_mbps,
            "up_bytes_per_tick": self.up_bytes_per_tick(),
        }


def _bytes_per_tick(mbps: float, tick_hz: float) -> int:
    return math.ceil(bytes_per_second(mbps) / tick_hz)


JUDGED_ON = ("latency", "segments", "share")


@dataclass(frozen=True)
class PersonaScoring:
    """How a persona is graded: on what its application needs from the line.

    ``judged_on`` says which figure sets the grade:

    * ``"latency"``: the p95 rise of small, regularly timed echoes over the
      idle baseline, against ``latency_thresholds``; more than
      ``max_loss_percent`` of echoes lost or past the deadline caps the grade
      at D, twice that at F.  For real-time traffic (a game, a call) every
      late packet is felt at once and a lost one cannot be waited for, so
      the tail and the loss are what matter, not the average.
    * ``"segments"``: whether each video segment arrived within its own
      duration (``lqos.measure.household_grading.segment_figures``).  A player
      holds a buffer, so the delay of any one packet is invisible to it;
      what it feels is a segment that arrives after the buffer ran dry.
    * ``"share"``: the delivered rate against ``throughput_target_mbps``
      (floors ``throughput_floor_ratios``).  A download in the background
      has no deadline; it should take what the others leave.

    ``sets_household_grade`` is False for a persona whose grade is shown but
    does not count towards the household's (system updates: a slow update
    is not what makes a household call its ISP).  ``subject`` and
    ``when_late`` are the words its sentence uses: "game updates", "the game
    would stutter".
    """

    judged_on: str
    subject: str
    when_late: str
    latency_thresholds: GradeThresholds | None = None
    max_loss_percent: float = 2.0
    sets_household_grade: bool = True
    rate_limited: bool = True
    # The slowest segment's download time as a share of its duration, for
    # A+, A and B when no segment was late.
    segment_headroom_bounds: tuple[float, ...] = (0.5, 0.8)
    # The share of segments that arrived late, for C and D; above that, F.
    late_segment_bounds: tuple[float, ...] = (0.2, 0.5)
    throughput_target_mbps: float | None = None
    throughput_floor_ratios: tuple[float, ...] = (0.9, 0.75, 0.5, 0.25, 0.1)

    def __post_init__(self) -> None:
        if self.judged_on not in JUDGED_ON:
            raise ValueError(f"judged_on must be one of {', '.join(JUDGED_ON)}")
        if self.judged_on == "latency" and self.latency_thresholds is None:
            raise ValueError("a persona judged on latency needs latency_thresholds")


# IPlugin too: getPlugins only looks at objects that provide it.
@implementer(IPlugin, IPersona)
@dataclass(frozen=True)
class Persona:
    """One household member.

    ``echo_copies``: how each latency echo travels.  With 1 (the default) it
    goes on the persona's own connection, behind the persona's own traffic.
    With N > 1 the persona opens N more connections that carry nothing but
    echoes; every echo is sent as N copies one tick of the plan apart, each
    on another of those connections (rotating, so a connection still
    recovering from a drop does not carry the next echo's first copy), each
    copy stamped with its own send time, and none sent once the echo is
    answered.  The echo's RTT is that of the copy that comes back first, from
    that copy's send time; the echo is lost when no copy is answered within
    ``deadline_ms`` of the first.

    Why, for a persona that stands for a UDP application (a game): over TCP a
    segment the bottleneck drops holds back everything after it on its
    connection until it is retransmitted, often after a 200 ms timeout.  On
    one connection that carries the game's traffic, each dropped segment
    turned the next two or three echoes into 100-250 ms of "latency"
    (measured through a 50/10 Mbit/s, 8 ms tail-drop FIFO: p95 +170 ms where
    ping saw +7 ms), a delay no UDP packet meets: over UDP the dropped packet
    is lost and the next one arrives on time.  The copies behave like UDP
    packets: through a FIFO they come back in the order they were sent, so
    the first copy's RTT is the echo's unless a retransmission held that copy
    back long enough for a later one to overtake it, and then the later copy,
    which the FIFO delayed like any packet sent at its time, stands in for
    it.  A copy is held back only when it was itself dropped (its connection
    carries nothing else), and copies a tick apart are rarely dropped
    together, as copies sent at the same instant into the same full FIFO
    would be.  A long queue delays every copy alike, so a bloated link still
    shows its whole delay.  The plan's traffic is unchanged, on the persona's
    own connection, which then carries no echoes.
    """

    name: str
    label: str
    icon: str
    description: str
    port: int
    traffic: TrafficPlan
    deadline_ms: float
    scoring: PersonaScoring = field(default_factory=lambda: PersonaScoring(
        "latency", "messages", "the application would stall", GradeThresholds()))
    echo_copies: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.echo_copies, bool) or not isinstance(self.echo_copies, int) \
                or not 1 <= self.echo_copies <= MAX_ECHO_COPIES:
            raise ValueError(f"echo_copies must be a whole number 1..{MAX_ECHO_COPIES}")

    def profile(self) -> dict:
        """What ``/virtual-household/profiles`` lists for this persona."""
        return {
            "name": self.name,
            "label": self.label,
            "icon": self.icon,
            "description": self.description,
            "port": self.port,
            "deadline_ms": self.deadline_ms,
            "echo_copies": self.echo_copies,
            "judged_on": self.scoring.judged_on,
            "sets_household_grade": self.scoring.sets_household_grade,
            "rate_limited": self.scoring.rate_limited,
            "traffic": self.traffic.describe(),
        }
