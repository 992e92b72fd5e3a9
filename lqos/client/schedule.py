"""The test's schedule on the test clock: milliseconds since the test started.

Both processes of the client (the load driver and the prober) read
``time.monotonic()``, which on Linux is one system-wide clock, so a test
origin passed between them means the same instant in both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

DOWNLOAD_PHASES = frozenset({"download_warmup", "download", "bidirectional"})
UPLOAD_PHASES = frozenset({"upload_warmup", "upload", "bidirectional"})
WARMUP_PHASES = frozenset({"download_warmup", "upload_warmup"})
PHASES_OF_DIRECTION = {"down": DOWNLOAD_PHASES, "up": UPLOAD_PHASES}


class TestClock:
    """Milliseconds since *origin* (a ``time.monotonic()`` value)."""

    def __init__(self, origin: float | None = None):
        self.origin = time.monotonic() if origin is None else origin

    def now_ms(self) -> float:
        return (time.monotonic() - self.origin) * 1000.0


@dataclass(frozen=True)
class PhaseSpan:
    name: str
    start_ms: float
    end_ms: float


@dataclass(frozen=True)
class Schedule:
    """The phases in order, each with its start and end on the test clock."""

    spans: tuple[PhaseSpan, ...]

    @classmethod
    def from_phases(cls, phases: list) -> Schedule:
        """From ``[{"name", "seconds"}]`` (the server's answer) or ``[[name, seconds]]``."""
        spans, start = [], 0.0
        for phase in phases:
            name, seconds = (phase["name"], phase["seconds"]) if isinstance(phase, dict) else phase
            end = start + float(seconds) * 1000.0
            spans.append(PhaseSpan(str(name), start, end))
            start = end
        if not spans:
            raise ValueError("the schedule has no phases")
        return cls(tuple(spans))

    def as_list(self) -> list[list]:
        return [[span.name, (span.end_ms - span.start_ms) / 1000.0] for span in self.spans]

    @property
    def duration_ms(self) -> float:
        return self.spans[-1].end_ms

    def phase_at(self, t_ms: float) -> str | None:
        """The phase running at *t_ms*; None before the start or after the end."""
        for span in self.spans:
            if span.start_ms <= t_ms < span.end_ms:
                return span.name
        return None

    def span(self, name: str) -> PhaseSpan | None:
        return next((span for span in self.spans if span.name == name), None)


def directions_of(phase: str) -> set[str]:
    """Which directions carry load in *phase*: ``{"down"}``, ``{"up"}``, both or none."""
    return {direction for direction, phases in PHASES_OF_DIRECTION.items() if phase in phases}
