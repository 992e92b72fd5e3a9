"""What a persona is: its traffic plan and how it is scored.  Pure data, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from twisted.plugin import IPlugin
from zope.interface import Attribute, Interface, implementer

from lqos.grading import GradeThresholds

SECONDS = 1.0
BULK_MESSAGE_BYTES = 64 * 1024


class IPersona(Interface):
    """A member of the virtual household; drop a module providing one into ``lqos/plugins/``."""

    name = Attribute("Identifier used in URLs and results, e.g. 'gaming'")
    label = Attribute("What the page shows, e.g. 'Alex, competitive gaming'")
    icon = Attribute("A short symbol for the persona's card")
    description = Attribute("One sentence: what this persona does on the line")
    port = Attribute("Default TCP port of the persona's process")
    traffic = Attribute("TrafficPlan: rates over time, message sizes, tick")
    deadline_ms = Attribute("A reply later than this counts as lost")
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
    return math.ceil(mbps * 1e6 / 8 / tick_hz)


@dataclass(frozen=True)
class PersonaScoring:
    """How a persona is graded.

    ``latency_thresholds`` grade the p95 latency increase over the idle
    baseline (None: latency is not graded, as for system updates);
    ``max_loss_percent`` is the loss above which the grade drops to D, and
    twice that to F; ``burst_thresholds_s`` grade a streaming burst's
    completion time; a persona graded on throughput only is graded on
    delivered / ``throughput_target_mbps`` against ``throughput_floor_ratios``.
    """

    latency_thresholds: GradeThresholds | None
    max_loss_percent: float = 2.0
    latency_sensitive: bool = True
    rate_limited: bool = True
    burst_thresholds_s: tuple[float, ...] | None = None
    throughput_target_mbps: float | None = None
    throughput_floor_ratios: tuple[float, ...] = (0.9, 0.75, 0.5, 0.25, 0.1)


# IPlugin too: getPlugins only looks at objects that provide it.
@implementer(IPlugin, IPersona)
@dataclass(frozen=True)
class Persona:
    name: str
    label: str
    icon: str
    description: str
    port: int
    traffic: TrafficPlan
    deadline_ms: float
    scoring: PersonaScoring = field(default_factory=lambda: PersonaScoring(GradeThresholds()))

    def profile(self) -> dict:
        """What ``/virtual-household/profiles`` lists for this persona."""
        return {
            "name": self.name,
            "label": self.label,
            "icon": self.icon,
            "description": self.description,
            "port": self.port,
            "deadline_ms": self.deadline_ms,
            "latency_sensitive": self.scoring.latency_sensitive,
            "rate_limited": self.scoring.rate_limited,
            "traffic": self.traffic.describe(),
        }
