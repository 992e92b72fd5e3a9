"""Throughput windows and the warm-up rule: pure logic, no I/O.

Throughput is counted in 250 ms windows aligned to the test clock (window
*k* covers ``[k*250, (k+1)*250)`` ms), so every window lies in one phase when
phases last whole multiples of 250 ms, as the server's schedules do.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from typing import Callable

from lqos.client.schedule import Schedule
from lqos.measure.grading import WINDOW_MS

WARMUP_STEP_MS = 500.0
MIN_GROWTH = 0.05  # add a stream while throughput grows by more than 5%


def window_index(t_ms: float) -> int:
    return math.floor(t_ms / WINDOW_MS)


def window_start(index: int) -> float:
    return index * WINDOW_MS


class WindowCounter:
    """Bytes per 250 ms window of one direction."""

    def __init__(self):
        self._bytes: defaultdict[int, int] = defaultdict(int)

    def add(self, t_ms: float, byte_count: int) -> None:
        self._bytes[window_index(t_ms)] += byte_count

    def add_to_window(self, index: int, byte_count: int) -> None:
        self._bytes[index] += byte_count

    def bytes_in(self, index: int) -> int:
        return self._bytes.get(index, 0)


def throughput_rows(bytes_of: Callable[[int], int], direction: str, schedule: Schedule) -> list[list]:
    """``[phase, start_ms, direction, bytes]`` for every window of the phases that
    carry *direction*, zero windows included (a stall is a real measurement);
    ``bytes_of(index)`` is a window's byte count."""
    rows = []
    for span in schedule.spans:
        if direction not in span.load:
            continue
        for index in range(window_index(span.start_ms), math.ceil(span.end_ms / WINDOW_MS)):
            start = window_start(index)
            if span.start_ms <= start < span.end_ms:
                rows.append([span.name, start, direction, bytes_of(index)])
    return rows


def should_add_stream(streams: int, previous_rate: float | None, rate: float, max_streams: int) -> bool:
    """Add a stream while throughput still grows by more than 5%, up to *max_streams*.

    *previous_rate* is the rate of the step before (None for the first step,
    which always grows: from nothing to something).
    """
    if streams >= max_streams:
        return False
    if previous_rate is None:
        return True
    return rate > previous_rate * (1.0 + MIN_GROWTH)


class WarmupRule:
    """The warm-up as a state machine: feed it one rate per 0.5 s step.

    Starts with 1 stream; once a step grows by 5% or less it has found the
    saturating count and never adds another stream.  *max_streams* is the
    server's ``limits.max_streams``.
    """

    def __init__(self, max_streams: int):
        self.max_streams = max_streams
        self.streams = 1
        self.settled = False
        self._previous: float | None = None

    def step(self, rate: float) -> int:
        """Record one step's throughput; return the stream count to run next."""
        if not self.settled:
            if should_add_stream(self.streams, self._previous, rate, self.max_streams):
                self.streams += 1
            else:
                self.settled = True
        self._previous = rate
        return self.streams


def counter_at(samples: list[tuple[float, int]], t_ms: float) -> float:
    """A counter sampled at ``(t_ms, value)`` points, read at *t_ms*: linear between
    samples, flat before the first and after the last.  *samples* are in time order."""
    if not samples:
        raise ValueError("no samples")
    if t_ms <= samples[0][0]:
        return float(samples[0][1])
    if t_ms >= samples[-1][0]:
        return float(samples[-1][1])
    i = bisect_right([t for t, _ in samples], t_ms)
    (t0, c0), (t1, c1) = samples[i - 1], samples[i]
    return c0 + (c1 - c0) * (t_ms - t0) / (t1 - t0)


def counter_windows(samples: list[tuple[float, int]], first: int, stop: int) -> list[int]:
    """Growth of a sampled counter over windows ``first .. stop-1``, in whole bytes.

    Window edges are rounded once, so for a counter that only grows the
    windows add up exactly to its growth over their whole span.
    """
    edges = [round(counter_at(samples, window_start(index))) for index in range(first, stop + 1)]
    return [max(0, later - earlier) for earlier, later in zip(edges, edges[1:])]
