"""The arithmetic of the IETF responsiveness draft (RPM), with no I/O.

draft-ietf-ippm-responsiveness, "Responsiveness under Working Conditions":

- the test adds load-generating connections, one per interval, until the
  goodput is stable: the standard deviation of its last MAD moving averages
  (each the mean of the last MAD intervals) is under SDT of their mean;
- it then probes until the responsiveness is stable by the same rule;
- each kind of probe's round trips are summarised by a single-sided trimmed
  mean that drops the slowest (100 - TMP) %;
- Foreign RPM = 60000 / mean(TM(tcp_f), TM(tls_f), TM(http_f)) over new
  connections; Loaded RPM = 60000 / TM(http_l) over the load-generating
  ones; RPM = (Foreign + Loaded) / 2.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Sequence

MOVING_AVERAGE_DISTANCE = 4  # MAD, intervals
INTERVAL_SECONDS = 1.0  # ID
TRIMMED_MEAN_PERCENT = 95  # TMP
STANDARD_DEVIATION_TOLERANCE = 0.05  # SDT
MAX_LOAD_CONNECTIONS = 16  # per direction, as goresponsiveness
MAX_TEST_SECONDS = 20.0
FOREIGN_PARTS = ("tcp", "tls", "http")


def trimmed_mean(values: Sequence[float], keep_percent: float = TRIMMED_MEAN_PERCENT) -> float | None:
    """The mean of the fastest *keep_percent* % of *values* (at least one); None for none."""
    if not values:
        return None
    kept = sorted(values)[:max(1, math.floor(len(values) * keep_percent / 100))]
    return statistics.fmean(kept)


def is_stable(series: Sequence[float], distance: int = MOVING_AVERAGE_DISTANCE,
              tolerance: float = STANDARD_DEVIATION_TOLERANCE) -> bool:
    """The draft's stability rule over per-interval values: the last *distance* moving averages
    (each over *distance* intervals) vary by less than *tolerance* of their mean."""
    if len(series) < 2 * distance - 1:
        return False
    averages = [statistics.fmean(series[end - distance:end]) for end in range(len(series) - distance + 1, len(series) + 1)]
    mean = statistics.fmean(averages)
    return mean > 0 and statistics.pstdev(averages) < tolerance * mean


def rpm(milliseconds: float | None) -> float | None:
    """Round trips per minute at this round-trip time."""
    return None if milliseconds is None or milliseconds <= 0 else 60_000.0 / milliseconds


@dataclass
class Probes:
    """Round-trip times (ms) of one test's probes: foreign ones by part, and self (loaded) ones."""

    foreign: dict[str, list[float]] = field(default_factory=lambda: {part: [] for part in FOREIGN_PARTS})
    loaded: list[float] = field(default_factory=list)

    @classmethod
    def pooled(cls, many: Sequence["Probes"]) -> "Probes":
        """All of *many*'s round trips in one."""
        pooled = cls()
        for probes in many:
            for part, values in probes.foreign.items():
                pooled.foreign[part].extend(values)
            pooled.loaded.extend(probes.loaded)
        return pooled

    def add_foreign(self, tcp_ms: float, tls_ms: float, http_ms: float) -> None:
        for part, value in zip(FOREIGN_PARTS, (tcp_ms, tls_ms, http_ms)):
            self.foreign[part].append(value)

    def summary(self) -> dict:
        """The trimmed means, the two RPMs and their mean (None where a kind has no probe)."""
        means = {f"{part}_f": trimmed_mean(values) for part, values in self.foreign.items()}
        means["http_l"] = trimmed_mean(self.loaded)
        foreign = None if None in (means["tcp_f"], means["tls_f"], means["http_f"]) else \
            rpm(statistics.fmean([means["tcp_f"], means["tls_f"], means["http_f"]]))
        loaded = rpm(means["http_l"])
        overall = None if foreign is None or loaded is None else (foreign + loaded) / 2
        return {"rpm": overall, "foreign_rpm": foreign, "loaded_rpm": loaded, "trimmed_means_ms": means,
                "probes": {"foreign": len(self.foreign["http"]), "self": len(self.loaded)}}
