"""Small descriptive statistics for latency and throughput samples.

Pure functions over sequences of floats, standard library only, so that the
server, the CLI client and the tests all compute figures the same way.

A lost probe is represented as ``None``.  Lost probes are counted as loss and
never as a round-trip time: inventing an RTT for them (say, the 2 s timeout)
would turn a loss figure into a fake latency figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

RttSequence = Sequence[float | None]


def answered(rtts: RttSequence) -> list[float]:
    """The RTTs of the probes that got a reply, in their original order.

    Every latency figure starts from this, so lost probes can never leak into
    a percentile, a mean or a jitter.
    """
    return [rtt for rtt in rtts if rtt is not None]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between ranks.

    Same definition as numpy's default (``method='linear'``): the rank is
    ``(n - 1) * q / 100`` and a fractional rank interpolates between its two
    neighbours.  Using the common definition lets anyone re-check a grade with
    numpy or a spreadsheet and get the same number.

    Raises ValueError for an empty sequence or q outside 0..100, because a
    percentile of nothing has no honest value.
    """
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be within 0..100, got {q!r}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    lower = math.floor(rank)
    upper = min(lower + 1, len(ordered) - 1)
    return _interpolate(ordered[lower], ordered[upper], rank - lower)


def _interpolate(low: float, high: float, fraction: float) -> float:
    """Linear interpolation, clamped to [low, high].

    The clamp absorbs floating-point rounding so that a percentile can never
    step outside its two neighbours; this keeps percentile monotone in q.
    """
    value = low + (high - low) * fraction
    return min(max(value, low), high)


def median(values: Sequence[float]) -> float:
    """The 50th percentile: the typical value, robust to a few outliers.

    The baseline is a median so that one slow reply at start-up (a radio
    waking up, a cold ARP cache) cannot shift every latency increase.
    """
    return percentile(values, 50.0)


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean; unlike the median it shows how heavy the tail is."""
    if not values:
        raise ValueError("mean of an empty sequence")
    return math.fsum(values) / len(values)


def jitter(rtts: RttSequence) -> float:
    """Mean absolute difference of consecutive answered RTTs, in their order.

    This is what real-time applications feel as variation (the definition
    Cloudflare's and most browser speed tests use).  Lost probes are skipped,
    so the pair around a loss is compared directly rather than against a
    made-up value.  Needs at least two answered probes.
    """
    values = answered(rtts)
    if len(values) < 2:
        raise ValueError("jitter needs at least two answered probes")
    steps = [abs(later - earlier) for earlier, later in pairwise(values)]
    return math.fsum(steps) / len(steps)


def loss_percent(rtts: RttSequence) -> float:
    """Share of probes without a reply, in percent of the probes sent.

    Loss is reported next to latency because a link that drops probes can
    look fast while it is failing.
    """
    if not rtts:
        raise ValueError("loss of an empty sequence of probes")
    lost = sum(1 for rtt in rtts if rtt is None)
    return 100.0 * lost / len(rtts)
