"""The test's schedule on the test clock: milliseconds since the test started.

Both processes of the client (the load driver and the prober) read
``time.monotonic()``, which on Linux is one system-wide clock, so a test
origin passed between them means the same instant in both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

class TestClock:
    """Milliseconds since *origin* (a ``time.monotonic()`` value)."""

    def __init__(self, origin: float | None = None):
        self.origin = time.monotonic() if origin is None else origin

    def now_ms(self) -> float:
        return (time.monotonic() - self.origin) * 1000.0


@dataclass(frozen=True)
class PhaseSpan:
    """A phase on the test clock, with what the server said it loads (``load``: "down", "up")."""

    name: str
    start_ms: float
    end_ms: float
    load: frozenset[str] = frozenset()
    warmup: bool = False


@dataclass(frozen=True)
class Schedule:
    """The phases in order, each with its start and end on the test clock."""

    spans: tuple[PhaseSpan, ...]

    @classmethod
    def from_phases(cls, phases: list) -> Schedule:
        """From the server's answer, ``[{"name", "seconds", "load", "warmup"}]``, or ``[[name, seconds]]``.

        The short form (what the client hands its prober) carries times only:
        its phases load nothing.
        """
        spans, start = [], 0.0
        for phase in phases:
            if isinstance(phase, dict):
                name, seconds = phase["name"], phase["seconds"]
                load, warmup = frozenset(phase.get("load") or ()), bool(phase.get("warmup"))
            else:
                (name, seconds), load, warmup = phase, frozenset(), False
            unknown = load - {"down", "up"}
            if unknown:
                raise ValueError(f"phase {name} loads an unknown direction: {sorted(unknown)}")
            end = start + float(seconds) * 1000.0
            spans.append(PhaseSpan(str(name), start, end, load, warmup))
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

    def directions(self, name: str | None) -> frozenset[str]:
        """Which directions the phase called *name* loads; none for no such phase."""
        span = self.span(name) if name is not None else None
        return span.load if span is not None else frozenset()
