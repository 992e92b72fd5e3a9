"""Bufferbloat grading: from the raw samples of a test to its graded result.

Pure logic (no I/O): the server calls ``compute_result`` with the samples the
client uploaded and stores/returns the dict it gets.  Grading lives here and
only here; the browser and the CLI client show what this computed.

The rules (docs/PROTOCOL.md, "The result"):
- a probe's RTT is the server's timing of it: the kernel's timing of the
  client's TCP acknowledgement where the test's acknowledgements agree with
  its Pongs, else the Pong's; the client's own only when neither came;
- baseline = median RTT of the baseline phase;
- each loaded phase (download, upload, bidirectional; warm-ups excluded) gets
  percentiles, mean, jitter, loss and latency increase = p50 - baseline, and
  throughput = median of its 250 ms windows;
- a phase grade comes from its latency increase (``GradeThresholds``);
- overall grade = worst reliable phase grade, naming the phase that set it;
- a phase with too few answered probes or too much loss is marked
  unreliable instead of graded; every figure carries its sample count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields, replace
from itertools import pairwise
from types import MappingProxyType

from lqos.measure import aim, stats
from lqos.measure.units import mbps

PHASES = (
    "baseline",
    "download_warmup",
    "download",
    "upload_warmup",
    "upload",
    "bidirectional",
)
BASELINE_PHASE = "baseline"
LOADED_PHASES = ("download", "upload", "bidirectional")
DIRECTIONS = ("down", "up")
DIRECTION_NAMES = MappingProxyType({"down": "download", "up": "upload"})
WINDOW_MS = 250.0
REPORTED_PERCENTILES = (25, 50, 75, 90, 95, 99)

DEFAULT_MIN_SAMPLES = 10
DEFAULT_MAX_LOSS_PERCENT = 20.0

# When the client, not the line, limited a phase.  A timer or a probe that
# fires this much late shows the client's thread was stalled for a fifth of a
# 250 ms window or half a 100 ms probe interval: long enough to leave bytes
# unread and the line less full than it could be.
LATE_MS = 50.0
# More than this share of a phase's windows with a late timer, or of its
# probes sent late, and the phase counts as limited by the client.
MAX_LATE_SHARE = 0.2
# A phase whose last third ran this much faster (median of its windows) than
# its middle third was still ramping up when it ended: it never reached a
# plateau, so the line may never have been full.  (The first third is left
# out: streams that join a phase, as the uploads of the bidirectional phase
# do, ramp up there and then hold.)
PLATEAU_GROWTH = 1.25
# Fewer windows than this in a direction (2.25 s) say nothing about a plateau.
MIN_PLATEAU_WINDOWS = 9
PROBE_INTERVAL_MS = 100
# The kernel's acknowledgement timing grades a test only where it agrees with
# the Pong's in every phase: on at least one probe of each, the Pong came
# back less than this after the acknowledgement.  On one path the Pong comes
# right behind the acknowledgement whenever the client's network thread is
# free: Firefox on a gigabit download, with the load workers beside it on two
# cores, held its Pongs 4.4 ms at p50 and 0.7 ms at p10, but 0.23 ms at the
# least.  (A rule on the tenth percentile read one such run's download at
# +11.7 ms where ping read +0.1: Pong-like, so most likely a fallback; that
# run kept no result to check.)  Behind a proxy
# that ends TCP, the acknowledgement times only the hop to the proxy, and
# every Pong is later by the whole rest of the path, its queue included.
ACK_AGREEMENT_MS = 2.0

# --------------------------------------------------------------------------
# Grades
# --------------------------------------------------------------------------

GRADES = ("A+", "A", "B", "C", "D", "F")  # best -> worst


def grade_rank(grade: str) -> int:
    """Position of a grade in GRADES: 0 is the best (A+), 5 the worst (F)."""
    try:
        return GRADES.index(grade)
    except ValueError:
        raise ValueError(f"unknown grade {grade!r}; expected one of {GRADES}") from None


def is_worse(grade: str, other: str) -> bool:
    """True when ``grade`` is strictly worse than ``other``."""
    return grade_rank(grade) > grade_rank(other)


def worst_grade(grades: Iterable[str]) -> str:
    """The worst of some grades; raises ValueError when there are none."""
    ranked = [grade_rank(grade) for grade in grades]
    if not ranked:
        raise ValueError("worst_grade of no grades")
    return GRADES[max(ranked)]


@dataclass(frozen=True)
class GradeThresholds:
    """Exclusive upper bounds (ms of latency increase) of grades A+ .. D.

    An increase below ``a_plus_ms`` is A+, below ``a_ms`` is A, and so on;
    an increase of ``d_ms`` or more is F.  Defaults are the LibreQoS test's
    table; ``grade_thresholds_ms=5,30,60,200,400`` in lqos_test.conf.
    """

    a_plus_ms: float = 5.0
    a_ms: float = 30.0
    b_ms: float = 60.0
    c_ms: float = 200.0
    d_ms: float = 400.0

    def __post_init__(self) -> None:
        bounds = astuple(self)
        if not all(_is_number(bound) and math.isfinite(bound) for bound in bounds):
            raise ValueError(f"grade thresholds must be finite numbers, got {bounds}")
        if bounds[0] < 0:
            raise ValueError(f"grade thresholds must not be negative, got {bounds}")
        if any(later <= earlier for earlier, later in pairwise(bounds)):
            raise ValueError(
                f"grade thresholds must be strictly increasing (A+ < A < B < C < D), got {bounds}"
            )

    @classmethod
    def from_sequence(cls, values: Sequence[float | str]) -> GradeThresholds:
        """Thresholds from 5 numbers (or numeric strings), best grade first."""
        if len(values) != len(fields(cls)):
            raise ValueError(
                f"expected {len(fields(cls))} grade thresholds (A+, A, B, C, D), got {len(values)}"
            )
        try:
            numbers = [float(value) for value in values]
        except (TypeError, ValueError):
            raise ValueError(f"grade thresholds must be numbers, got {list(values)}") from None
        return cls(*numbers)

    def as_tuple(self) -> tuple[float, ...]:
        """The five bounds, best grade first (for display and storage)."""
        return astuple(self)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def grade_for_increase(
    increase_ms: float, thresholds: GradeThresholds = GradeThresholds()
) -> str:
    """The bufferbloat grade of a latency increase (negative counts as A+)."""
    if not math.isfinite(increase_ms):
        raise ValueError(f"latency increase must be a finite number, got {increase_ms!r}")
    for grade, upper_bound in zip(GRADES[:-1], thresholds.as_tuple(), strict=True):
        if increase_ms < upper_bound:
            return grade
    return GRADES[-1]


# --------------------------------------------------------------------------
# Input model
# --------------------------------------------------------------------------


def _require_phase(phase: str) -> None:
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; expected one of {PHASES}")


def _require_finite(name: str, value: object) -> None:
    if not _is_number(value) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


@dataclass(frozen=True)
class ProbeSample:
    """One latency probe: when it was sent, in which phase, and its RTT.

    ``rtt_ms`` is the client's own timing of the echo; None when no echo came
    in time.  ``server_rtt_ms`` is the server's timing of a WebSocket Ping
    sent right behind the echo, which the client's network stack answers
    itself.  Both cross the same network; the client's also holds however
    long the client took to hand the echo to its script, which in a browser
    loading a gigabit line was 10 ms and more (Firefox).  So the grade uses
    the server's timing where there is one, also for an echo the client read
    after its deadline: the server's Pong says it had reached the device.
    ``ack_rtt_ms`` is the server kernel's timing of the client kernel's TCP
    acknowledgement of the same echo and Ping, which not even a browser's
    busy network thread delays; ``with_acknowledgement_timing`` decides
    whether a test's probes are graded by it.  A probe with none of these is
    lost: it counts as loss and is never turned into a round-trip time.
    """

    seq: int
    phase: str
    sent_ms: float
    rtt_ms: float | None
    server_rtt_ms: float | None = None
    ack_rtt_ms: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.seq, int) or isinstance(self.seq, bool) or self.seq < 0:
            raise ValueError(f"probe seq must be a non-negative integer, got {self.seq!r}")
        _require_phase(self.phase)
        _require_finite("probe sent_ms", self.sent_ms)
        if self.rtt_ms is not None:
            _require_finite("probe rtt_ms", self.rtt_ms)
            if self.rtt_ms < 0:
                raise ValueError(f"probe rtt_ms must not be negative, got {self.rtt_ms!r}")
        for name in ("server_rtt_ms", "ack_rtt_ms"):
            value = getattr(self, name)
            if value is not None:
                _require_finite(f"probe {name}", value)
                if value < 0:
                    raise ValueError(f"probe {name} must not be negative, got {value!r}")

    @property
    def lost(self) -> bool:
        return self.graded_rtt_ms is None

    @property
    def graded_rtt_ms(self) -> float | None:
        """The round trip the grade uses: the server's timing, else the client's; None if lost."""
        return self.rtt_ms if self.server_rtt_ms is None else self.server_rtt_ms


@dataclass(frozen=True)
class ClientLag:
    """How late the client's own timer fired at the start of a 250 ms window.

    The page and the CLI run one timer per window on the thread that reads
    the download and sends the uploads; when that thread is starved (a
    slow device, a busy browser) the timer fires late, and the bytes the
    window should have carried wait too.
    """

    start_ms: float
    lag_ms: float

    def __post_init__(self) -> None:
        _require_finite("lag start_ms", self.start_ms)
        _require_finite("lag_ms", self.lag_ms)
        if self.lag_ms < 0:
            raise ValueError(f"lag_ms must not be negative, got {self.lag_ms!r}")


@dataclass(frozen=True)
class ThroughputWindow:
    """Bytes moved in one direction during one 250 ms window of a phase."""

    phase: str
    start_ms: float
    direction: str
    bytes: int

    def __post_init__(self) -> None:
        _require_phase(self.phase)
        _require_finite("window start_ms", self.start_ms)
        if self.direction not in DIRECTIONS:
            raise ValueError(f"window direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if not isinstance(self.bytes, int) or isinstance(self.bytes, bool) or self.bytes < 0:
            raise ValueError(f"window bytes must be a non-negative integer, got {self.bytes!r}")

    @property
    def mbps(self) -> float:
        return mbps(self.bytes, WINDOW_MS / 1000.0)


# --------------------------------------------------------------------------
# Figures per phase
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReliabilityLimits:
    """When a phase's figures are too thin or too lossy to grade."""

    min_samples: int = DEFAULT_MIN_SAMPLES
    max_loss_percent: float = DEFAULT_MAX_LOSS_PERCENT

    def __post_init__(self) -> None:
        if not isinstance(self.min_samples, int) or self.min_samples < 1:
            raise ValueError(f"min_samples must be an integer >= 1, got {self.min_samples!r}")
        if not _is_number(self.max_loss_percent) or not 0 <= self.max_loss_percent <= 100:
            raise ValueError(
                f"max_loss_percent must be within 0..100, got {self.max_loss_percent!r}"
            )

    def problems(self, sent: int, answered: int, loss: float | None) -> list[str]:
        """Why figures from these counts cannot be trusted (empty list: they can)."""
        if sent == 0:
            return ["no probes were sent"]
        found = []
        if answered < self.min_samples:
            found.append(f"only {answered} answered probes, need at least {self.min_samples}")
        if loss is not None and loss > self.max_loss_percent:
            found.append(f"loss {loss:.1f}% is above {self.max_loss_percent:g}%")
        return found


def rtts_in_phase(probes: Iterable[ProbeSample], phase: str) -> list[float | None]:
    """The phase's RTTs (None = lost) in probe order, so jitter compares neighbours."""
    in_phase = sorted((p for p in probes if p.phase == phase), key=lambda p: p.seq)
    return [p.graded_rtt_ms for p in in_phase]


def latency_figures(rtts: Sequence[float | None]) -> dict:
    """Counts, percentiles, mean, jitter and loss of one phase's probes."""
    values = stats.answered(rtts)
    figures: dict = {
        "samples": len(values),
        "sent": len(rtts),
        "lost": len(rtts) - len(values),
        "loss_percent": stats.loss_percent(rtts) if rtts else None,
    }
    for q in REPORTED_PERCENTILES:
        figures[f"p{q}_ms"] = stats.percentile(values, q) if values else None
    figures["mean_ms"] = stats.mean(values) if values else None
    figures["jitter_ms"] = stats.jitter(values) if len(values) >= 2 else None
    return figures


def client_delay(probes: Iterable[ProbeSample], phase: str) -> dict:
    """How many of a phase's probes the server timed, and how much later the client saw them.

    ``server_timed`` counts the probes with both the client's and the
    server's timing, ``ack_timed`` those the kernel's acknowledgement timed.
    ``client_delay_p50_ms`` is the median of the client's RTT minus the
    server's over the probes that have both: the time the client itself
    added (a browser's busy content process, a starved CLI).  It is shown,
    not graded; None when the server timed none.
    """
    in_phase = [p for p in probes if p.phase == phase]
    both = [p.rtt_ms - p.server_rtt_ms for p in in_phase if p.rtt_ms is not None and p.server_rtt_ms is not None]
    return {"server_timed": len(both), "ack_timed": sum(1 for p in in_phase if p.ack_rtt_ms is not None),
            "client_delay_p50_ms": stats.median(both) if both else None}


def acknowledgement_agrees(probes: Sequence[ProbeSample]) -> bool:
    """Whether the probes' acknowledgement timings crossed the same path as their Pongs.

    True when some probes carry both, and in every phase that has any, the
    Pong came within ``ACK_AGREEMENT_MS`` of the acknowledgement on at
    least one of them.
    """
    gaps: dict[str, list[float]] = {}
    for probe in probes:
        if probe.ack_rtt_ms is not None and probe.server_rtt_ms is not None:
            gaps.setdefault(probe.phase, []).append(probe.server_rtt_ms - probe.ack_rtt_ms)
    return bool(gaps) and all(min(phase_gaps) < ACK_AGREEMENT_MS for phase_gaps in gaps.values())


def with_acknowledgement_timing(probes: Sequence[ProbeSample]) -> tuple[tuple[ProbeSample, ...], str]:
    """The probes as graded, and which timing grades them.

    Where the acknowledgements agree with the Pongs (``acknowledgement_agrees``),
    each probe's server timing becomes the earlier of the two: the Pong can
    only add the client's own delay.  Otherwise the probes are graded as
    they came.  The second value names the timing: ``"acknowledgement"``,
    ``"pong"`` (the server timed Pongs only) or ``"echo"`` (the client's own).
    """
    if acknowledgement_agrees(probes):
        graded = tuple(replace(p, server_rtt_ms=min(p.ack_rtt_ms, p.server_rtt_ms))
                       if p.ack_rtt_ms is not None and p.server_rtt_ms is not None else p
                       for p in probes)
        return graded, "acknowledgement"
    if any(p.server_rtt_ms is not None for p in probes):
        return tuple(probes), "pong"
    return tuple(probes), "echo"


def throughput_figure(windows: Iterable[ThroughputWindow], phase: str, direction: str) -> dict:
    """Median Mbit/s of a phase's 250 ms windows in one direction, with their count."""
    rates = [w.mbps for w in windows if w.phase == phase and w.direction == direction]
    return {"median": stats.median(rates) if rates else None, "windows": len(rates)}


def _in_span(start_ms: float, span: tuple[float, float] | None) -> bool:
    return span is not None and span[0] <= start_ms < span[1]


def phase_span(probes: Sequence[ProbeSample], windows: Sequence[ThroughputWindow],
               phase: str) -> tuple[float, float] | None:
    """Where a phase lies on the test clock, from the samples labelled with it."""
    starts = [w.start_ms for w in windows if w.phase == phase] + [p.sent_ms for p in probes if p.phase == phase]
    if not starts:
        return None
    return min(starts), max(starts) + WINDOW_MS


def late_probes(probes: Sequence[ProbeSample], phase: str) -> tuple[int, int]:
    """(late, counted): probes of the phase sent LATE_MS or more after their schedule.

    Each probe is due one interval after the one before it; a gap longer than
    that plus LATE_MS means the client's probe thread was stalled.
    """
    in_order = sorted(probes, key=lambda p: p.seq)
    late = counted = 0
    for before, probe in pairwise(in_order):
        if probe.phase != phase or probe.seq != before.seq + 1:
            continue
        counted += 1
        if probe.sent_ms - before.sent_ms >= PROBE_INTERVAL_MS + LATE_MS:
            late += 1
    return late, counted


def plateau_reached(windows: Sequence[ThroughputWindow], phase: str, direction: str) -> bool | None:
    """False when the phase's throughput was still climbing at its end; None: too few windows."""
    rates = [w.bytes for w in sorted(windows, key=lambda w: w.start_ms)
             if w.phase == phase and w.direction == direction]
    if len(rates) < MIN_PLATEAU_WINDOWS:
        return None
    third = len(rates) // 3
    middle, last = stats.median(rates[third:-third]), stats.median(rates[-third:])
    return not last > middle * PLATEAU_GROWTH


def client_keeping_up(phase: str, probes: Sequence[ProbeSample], windows: Sequence[ThroughputWindow],
                      lags: Sequence[ClientLag]) -> dict:
    """Whether the client could keep the line full during a loaded phase.

    A grade is only as good as the load under it: a client that could not
    read fast enough, or whose timers stalled, filled the line's queue less
    than the line allows, so its latency increase (and grade) may be too
    good.  The evidence is the client's own timer lag per window, its probes'
    send times, and whether the throughput levelled off.
    """
    span = phase_span(probes, windows, phase)
    phase_lags = [lag.lag_ms for lag in lags if _in_span(lag.start_ms, span)]
    late_windows = sum(1 for lag in phase_lags if lag >= LATE_MS)
    late, counted = late_probes(probes, phase)
    plateau = {DIRECTION_NAMES[direction]: plateau_reached(windows, phase, direction) for direction in DIRECTIONS}
    stalled = ((phase_lags and late_windows > MAX_LATE_SHARE * len(phase_lags))
               or (counted and late > MAX_LATE_SHARE * counted))
    return {
        "lag_p90_ms": stats.percentile(phase_lags, 90) if phase_lags else None,
        "late_windows": late_windows,
        "lag_windows": len(phase_lags),
        "late_probes": late,
        "probes": counted,
        "plateau": plateau,
        "client_limited": bool(stalled),
    }


# What the customer's line was doing in each loaded phase, in the page's words.
DOING = MappingProxyType({"download": "downloading", "upload": "uploading",
                          "bidirectional": "downloading and uploading at once"})


def caveat(phase: str, keeping_up: dict, throughput: dict) -> str | None:
    """One sentence for the customer when the phase's load may not have filled the line."""
    directions = [name for name, reached in keeping_up["plateau"].items() if reached is not None]
    rates = " and ".join(f"{name} reached {throughput[name]['median']:.0f} Mbit/s"
                         for name in directions if throughput[name]["median"] is not None)
    reached = f": {rates}" if rates else ""
    consequence = "The line may not have been full, so that grade may be too good."
    if keeping_up["client_limited"]:
        return f"This device could not keep up while {DOING[phase]}{reached}. {consequence}"
    if any(reached is False for reached in keeping_up["plateau"].values()):
        return f"The speed was still rising when the test stopped {DOING[phase]}{reached}. {consequence}"
    return None


def _reliability(problems: list[str]) -> dict:
    return {"reliable": not problems, "reason": "; ".join(problems) or None}


def summarise_baseline(probes: Sequence[ProbeSample], limits: ReliabilityLimits) -> dict:
    """The idle reference every latency increase is measured against."""
    figures = latency_figures(rtts_in_phase(probes, BASELINE_PHASE))
    problems = limits.problems(figures["sent"], figures["samples"], figures["loss_percent"])
    return {
        "median_ms": figures["p50_ms"],
        "jitter_ms": figures["jitter_ms"],
        "samples": figures["samples"],
        "sent": figures["sent"],
        "lost": figures["lost"],
        "loss_percent": figures["loss_percent"],
        **client_delay(probes, BASELINE_PHASE),
        **_reliability(problems),
    }


def summarise_loaded_phase(
    phase: str,
    probes: Sequence[ProbeSample],
    windows: Sequence[ThroughputWindow],
    baseline: dict,
    thresholds: GradeThresholds,
    limits: ReliabilityLimits,
    lags: Sequence[ClientLag] = (),
) -> dict:
    """Figures, throughput and grade of one loaded phase (grade None if unreliable).

    A phase the client could not fill keeps its grade, which is then an upper
    bound, and says so in ``caveat``.
    """
    figures = latency_figures(rtts_in_phase(probes, phase))
    problems = limits.problems(figures["sent"], figures["samples"], figures["loss_percent"])
    increase = _latency_increase(figures["p50_ms"], baseline["median_ms"])
    gradable = not problems and baseline["reliable"]
    throughput = {DIRECTION_NAMES[direction]: throughput_figure(windows, phase, direction)
                  for direction in DIRECTIONS}
    keeping_up = client_keeping_up(phase, probes, windows, lags)
    return {
        **figures,
        **client_delay(probes, phase),
        "latency_increase_ms": increase,
        "throughput_mbps": throughput,
        "grade": grade_for_increase(increase, thresholds) if gradable else None,
        **_reliability(problems),
        "keeping_up": keeping_up,
        "caveat": caveat(phase, keeping_up, throughput),
    }


def _latency_increase(p50_ms: float | None, baseline_ms: float | None) -> float | None:
    if p50_ms is None or baseline_ms is None:
        return None
    return p50_ms - baseline_ms


# --------------------------------------------------------------------------
# Overall grade and use cases
# --------------------------------------------------------------------------


def overall_grade(baseline: dict, phases: dict[str, dict]) -> dict:
    """Worst grade among the graded phases, and the phase that set it."""
    ungraded = [name for name, phase in phases.items() if phase["grade"] is None]
    if not baseline["reliable"]:
        reason = f"baseline unreliable: {baseline['reason']}"
        return {"grade": None, "phase": None, "reason": reason, "ungraded_phases": ungraded, "caveats": []}
    graded = {name: phase["grade"] for name, phase in phases.items() if phase["grade"]}
    if not graded:
        reason = "no loaded phase had enough reliable samples to grade"
        return {"grade": None, "phase": None, "reason": reason, "ungraded_phases": ungraded, "caveats": []}
    worst = worst_grade(graded.values())
    setter = next(name for name, grade in graded.items() if grade == worst)
    caveats = [phases[name]["caveat"] for name in graded if phases[name].get("caveat")]
    return {"grade": worst, "phase": setter, "reason": None, "ungraded_phases": ungraded, "caveats": caveats}


def aim_inputs(probes: Sequence[ProbeSample], baseline: dict, phases: dict[str, dict]) -> dict:
    """Our figures in the shape of Cloudflare's AIM inputs (ms, %, Mbit/s).

    - latency, jitter: the baseline's median and jitter (Cloudflare scores
      its unloaded latency and unloaded jitter);
    - packet loss: lost / sent over the baseline and loaded phases (warm-ups
      excluded, as in grading);
    - loaded latency increase: Cloudflare takes max(download, upload loaded
      latency) - unloaded latency; we take the highest p50 of our graded
      loaded phases, bidirectional included, minus the baseline;
    - download / upload: the download phase's and upload phase's median
      window throughput (Cloudflare uses its 90th percentile; we take the
      median everywhere, as every other throughput figure here does).
    """
    counted = [p for p in probes if p.phase == BASELINE_PHASE or p.phase in LOADED_PHASES]
    graded = {name: phase for name, phase in phases.items() if phase["grade"] is not None}
    loaded = max(graded, key=lambda name: graded[name]["p50_ms"], default=None)
    return {
        "latency_ms": baseline["median_ms"],
        "jitter_ms": baseline["jitter_ms"],
        "packet_loss_percent": stats.loss_percent([p.rtt_ms for p in counted]) if counted else None,
        "probes_sent": len(counted),
        "loaded_latency_increase_ms": graded[loaded]["latency_increase_ms"] if loaded else None,
        "loaded_phase": loaded,
        "download_mbps": phases["download"]["throughput_mbps"]["download"]["median"],
        "upload_mbps": phases["upload"]["throughput_mbps"]["upload"]["median"],
    }


def _to_cloudflare_units(inputs: dict) -> aim.AimInputs:
    def scaled(value: float | None, factor: float) -> float | None:
        return None if value is None else value * factor

    return aim.AimInputs(
        latency=inputs["latency_ms"],
        jitter=inputs["jitter_ms"],
        packet_loss=scaled(inputs["packet_loss_percent"], 0.01),
        loaded_latency_increase=inputs["loaded_latency_increase_ms"],
        download=scaled(inputs["download_mbps"], 1e6),
        upload=scaled(inputs["upload_mbps"], 1e6),
    )


def use_case_ratings(probes: Sequence[ProbeSample], baseline: dict, phases: dict[str, dict]) -> dict:
    """Streaming, gaming and video-call ratings with Cloudflare's AIM tables."""
    inputs = aim_inputs(probes, baseline, phases)
    if not baseline["reliable"]:
        ratings = {name: None for name in aim.USE_CASES}
        reason = f"baseline unreliable: {baseline['reason']}"
    else:
        ratings = aim.rate_use_cases(_to_cloudflare_units(inputs))
        reason = None
    return {"method": "cloudflare-aim", "inputs": inputs, "ratings": ratings, "reason": reason}


# --------------------------------------------------------------------------
# The whole result
# --------------------------------------------------------------------------


def compute_result(
    probes: Iterable[ProbeSample],
    windows: Iterable[ThroughputWindow],
    thresholds: GradeThresholds = GradeThresholds(),
    *,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    max_loss_percent: float = DEFAULT_MAX_LOSS_PERCENT,
    lags: Iterable[ClientLag] = (),
) -> dict:
    """Metrics, grades and use-case ratings of one test, as a JSON-ready dict."""
    limits = ReliabilityLimits(min_samples, max_loss_percent)
    probes, timing = with_acknowledgement_timing(tuple(probes))
    windows = tuple(windows)
    lags = tuple(lags)
    baseline = summarise_baseline(probes, limits)
    phases = {
        phase: summarise_loaded_phase(phase, probes, windows, baseline, thresholds, limits, lags)
        for phase in LOADED_PHASES
    }
    overall = overall_grade(baseline, phases)
    return {
        "reliable": overall["grade"] is not None,
        "reason": overall["reason"],
        "grade_thresholds_ms": list(thresholds.as_tuple()),
        "limits": {"min_samples": limits.min_samples, "max_loss_percent": limits.max_loss_percent},
        "graded_by": timing,
        "baseline": baseline,
        "phases": phases,
        "overall": overall,
        "use_cases": use_case_ratings(probes, baseline, phases),
    }
