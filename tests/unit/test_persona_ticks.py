"""A persona process ticks its sessions at the persona's rate, and only while it has one."""

from __future__ import annotations

from twisted.internet.task import Clock

from lqos.personas.protocol import PersonaFactory
from lqos.personas.registry import discover_personas


class CountingSession:
    household_id = "household"
    down_bytes = up_bytes = 0

    def __init__(self):
        self.ticks = 0

    def tick(self, now: float, ticks: int = 1) -> None:
        self.ticks += ticks


def test_an_idle_persona_schedules_nothing_but_its_report_and_ticks_its_sessions_at_its_rate():
    clock = Clock()
    gaming = discover_personas()["gaming"]
    factory = PersonaFactory(gaming, b"s" * 32, clock)
    factory.startFactory()
    clock.advance(2.0)
    assert len(clock.getDelayedCalls()) == 1  # the once-a-second report, no 60 Hz tick for nobody

    first, second = CountingSession(), CountingSession()
    factory.track(first)
    factory.track(second)
    clock.advance(1.0 + 1e-6)
    rate = gaming.traffic.tick_hz
    assert first.ticks == second.ticks == rate  # a second's worth: 60 for gaming

    factory.forget(first)
    clock.advance(0.5)
    assert first.ticks == rate and second.ticks == rate + rate // 2
    factory.forget(second)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(5.0)
    assert second.ticks == rate + rate // 2

    # A session after a quiet spell starts from its own first tick, not with the ones nobody got.
    third = CountingSession()
    factory.track(third)
    clock.advance(0.5 + 1e-6)
    assert third.ticks == rate // 2
    factory.stopFactory()
    assert clock.getDelayedCalls() == []
