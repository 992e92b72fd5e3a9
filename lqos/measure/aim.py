"""Use-case ratings ("gaming: good") with Cloudflare's AIM point tables.

AIM (Aggregated Internet Measurement) turns raw figures into a verdict per
use case: each metric earns points from a threshold table, the points of the
metrics a use case depends on are summed (never below 0), and the sum falls
into one of five ratings.  We reuse Cloudflare's published tables rather than
inventing our own so that a customer can compare our words with
speed.cloudflare.com's.

Source of every number in this module (BSD-3-Clause):
  repository cloudflare/speedtest
  - src/config/internalConfig.ts   (aimMeasurementScoring, aimExperiencesDefs)
  - src/Results/ScoresCalculations.ts  (sum of points, clamped at 0;
                                        ratings bad/poor/average/good/great)
  - src/utils/scaleThreshold.ts    (a value equal to a breakpoint belongs to
                                    the bucket above it)
The tables are reproduced in Cloudflare's own units: milliseconds, a loss
*ratio* 0..1 and bits per second.

How our figures feed Cloudflare's inputs is decided in lqos.measure.grading
(see ``aim_inputs`` there); this module is the scoring only.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType

RATINGS = ("bad", "poor", "average", "good", "great")


@dataclass(frozen=True)
class PointScale:
    """A threshold table: ``points[i]`` for values in [breakpoints[i-1], breakpoints[i])."""

    breakpoints: tuple[float, ...]
    points: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.points) != len(self.breakpoints) + 1:
            raise ValueError("a point scale needs one more points entry than breakpoints")

    def points_for(self, value: float) -> int:
        """Points earned by ``value``; a value on a breakpoint takes the upper bucket."""
        return self.points[bisect_right(self.breakpoints, value)]


@dataclass(frozen=True)
class AimInputs:
    """Cloudflare's AIM metrics, in Cloudflare's units; None = not measured."""

    latency: float | None = None  # unloaded latency, ms
    jitter: float | None = None  # unloaded jitter, ms
    packet_loss: float | None = None  # ratio 0..1
    loaded_latency_increase: float | None = None  # ms
    download: float | None = None  # bits per second
    upload: float | None = None  # bits per second


@dataclass(frozen=True)
class UseCase:
    """A use case: the metrics whose points it sums and its rating breakpoints."""

    inputs: tuple[str, ...]
    rating_breakpoints: tuple[float, ...]


# cloudflare/speedtest src/config/internalConfig.ts, aimMeasurementScoring.
METRIC_SCALES: Mapping[str, PointScale] = MappingProxyType(
    {
        "packet_loss": PointScale((0.01, 0.05, 0.25, 0.5), (10, 5, 0, -10, -20)),
        "latency": PointScale((10, 20, 50, 100, 500), (20, 10, 5, 0, -10, -20)),
        "loaded_latency_increase": PointScale(
            (10, 20, 50, 100, 500), (20, 10, 5, 0, -10, -20)
        ),
        "jitter": PointScale((10, 20, 100, 500), (10, 5, 0, -10, -20)),
        "download": PointScale((1e6, 10e6, 50e6, 100e6), (0, 5, 10, 20, 30)),
        "upload": PointScale((1e6, 10e6, 50e6, 100e6), (0, 5, 10, 20, 30)),
    }
)

# Cloudflare scores a missing packet loss as 0 points (ScoresCalculations.ts,
# defaultPoints); every other missing metric leaves its use cases unrated.
POINTS_WHEN_MISSING: Mapping[str, int] = MappingProxyType({"packet_loss": 0})

# cloudflare/speedtest src/config/internalConfig.ts, aimExperiencesDefs.
# Cloudflare calls video calls "rtc".
USE_CASES: Mapping[str, UseCase] = MappingProxyType(
    {
        "streaming": UseCase(
            ("latency", "packet_loss", "download", "loaded_latency_increase"),
            (15, 20, 40, 60),
        ),
        "gaming": UseCase(
            ("latency", "packet_loss", "loaded_latency_increase"),
            (5, 15, 25, 30),
        ),
        "video_calls": UseCase(
            ("latency", "jitter", "packet_loss", "loaded_latency_increase"),
            (5, 15, 25, 40),
        ),
    }
)


def metric_points(inputs: AimInputs) -> dict[str, int]:
    """Points per measured metric (plus Cloudflare's defaults for missing ones)."""
    points: dict[str, int] = {}
    for field in fields(AimInputs):
        value = getattr(inputs, field.name)
        if value is not None:
            points[field.name] = METRIC_SCALES[field.name].points_for(value)
        elif field.name in POINTS_WHEN_MISSING:
            points[field.name] = POINTS_WHEN_MISSING[field.name]
    return points


def rating_for_points(points: float, breakpoints: tuple[float, ...]) -> str:
    """The rating word for a point total, "bad" (lowest) to "great"."""
    return RATINGS[bisect_right(breakpoints, points)]


def rate_use_case(use_case: UseCase, points: Mapping[str, int]) -> dict | None:
    """Rating of one use case, or None when one of its metrics was not measured."""
    if not all(name in points for name in use_case.inputs):
        return None
    used = {name: points[name] for name in use_case.inputs}
    total = max(0, sum(used.values()))
    return {
        "rating": rating_for_points(total, use_case.rating_breakpoints),
        "points": total,
        "points_by_metric": used,
    }


def rate_use_cases(inputs: AimInputs) -> dict[str, dict | None]:
    """Ratings of streaming, gaming and video calls (None where unmeasurable)."""
    points = metric_points(inputs)
    return {name: rate_use_case(case, points) for name, case in USE_CASES.items()}
