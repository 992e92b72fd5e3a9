"""Scoring a virtual household: each persona on what its application feels.

Pure functions over the samples a client submits.  A latency-sensitive
persona is graded on its p95 latency increase over its own idle baseline,
with its own thresholds (gaming strictest), and drops to D or F when too
many of its messages miss their deadline; a streaming persona also on how
long its bursts took to arrive; system updates only on throughput.
Fairness is Jain's index over ``min(1, delivered / target)`` of the
rate-limited personas.  The household's grade is the worst grade among the
latency-sensitive personas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from lqos import stats
from lqos.grading import GRADES, grade_for_increase, worst_grade
from lqos.personas.model import IPersona

MIN_BASELINE_SAMPLES = 5
MIN_LOAD_SAMPLES = 10
WINDOW_SECONDS = 1.0


@dataclass(frozen=True)
class PersonaSamples:
    """What the client measured on one persona's connection."""

    pings: tuple[tuple[int, str, float, float | None], ...]  # seq, phase, sent_ms, rtt_ms | None
    down_windows: tuple[tuple[float, int], ...]  # start_ms of a 1 s window in the load, bytes received
    up_acks: tuple[tuple[float, int], ...]  # server's t_ms, upstream bytes it had received by then
    bursts: tuple[tuple[int, float | None], ...]  # burst number, completion seconds | None
    interrupted: bool


def _rtts(samples: PersonaSamples, phase: str) -> list[float | None]:
    return [rtt for _, p, _, rtt in sorted(samples.pings) if p == phase]


def latency_figures(samples: PersonaSamples) -> dict:
    baseline = stats.answered(_rtts(samples, "baseline"))
    load_rtts = _rtts(samples, "load")
    load = stats.answered(load_rtts)
    figures: dict = {"baseline_samples": len(baseline), "samples": len(load), "sent": len(load_rtts)}
    figures["baseline_p50_ms"] = stats.median(baseline) if baseline else None
    for q in (50, 95, 99):
        figures[f"p{q}_ms"] = stats.percentile(load, q) if load else None
    figures["jitter_ms"] = stats.jitter(load_rtts) if len(load) >= 2 else None
    figures["loss_percent"] = stats.loss_percent(load_rtts) if load_rtts else None
    for q in (50, 95):
        both = figures[f"p{q}_ms"] is not None and figures["baseline_p50_ms"] is not None
        figures[f"increase_p{q}_ms"] = figures[f"p{q}_ms"] - figures["baseline_p50_ms"] if both else None
    return figures


def _mbps(byte_count: float, seconds: float) -> float:
    return byte_count * 8 / seconds / 1e6


def upstream_windows(up_acks: Sequence[tuple[float, int]]) -> list[float]:
    """Mbit/s between consecutive acknowledgements of upstream bytes."""
    ordered = sorted(up_acks)
    return [_mbps(b1 - b0, (t1 - t0) / 1000) for (t0, b0), (t1, b1) in zip(ordered, ordered[1:])
            if t1 > t0 and b1 >= b0]


def throughput_figures(persona: IPersona, samples: PersonaSamples) -> dict:
    """Delivered against target: the median 1 s window, or for a bursty plan (most
    of whose windows are empty by design) the mean over the whole load."""
    down = [_mbps(b, WINDOW_SECONDS) for _, b in samples.down_windows]
    up = upstream_windows(samples.up_acks)
    target = persona.traffic.average_down_mbps or persona.scoring.throughput_target_mbps
    typical = stats.mean if persona.traffic.burst_seconds is not None else stats.median
    delivered = typical(down) if down else None
    return {
        "target_down_mbps": target,
        "down_median_mbps": delivered,
        "down_statistic": typical.__name__,
        "down_windows": len(down),
        "down_ratio": (delivered / target) if (delivered is not None and target) else None,
        "target_up_mbps": persona.traffic.up_mbps,
        "up_median_mbps": stats.median(up) if up else None,
        "up_windows": len(up),
    }


def burst_figures(samples: PersonaSamples) -> dict | None:
    if not samples.bursts:
        return None
    times = [seconds for _, seconds in samples.bursts if seconds is not None]
    return {
        "count": len(samples.bursts),
        "completed": len(times),
        "p50_s": stats.median(times) if times else None,
        "max_s": max(times) if times else None,
    }


def _grade_by_bounds(value: float, bounds: Sequence[float]) -> str:
    """A+ below the first bound ... F at or above the last (bounds ascending)."""
    for grade, bound in zip(GRADES, bounds):
        if value < bound:
            return grade
    return GRADES[-1]


def _grade_by_floors(ratio: float, floors: Sequence[float]) -> str:
    """A+ at or above the first floor ... F below the last (floors descending)."""
    for grade, floor in zip(GRADES, floors):
        if ratio >= floor:
            return grade
    return GRADES[-1]


def grade_persona(persona: IPersona, latency: dict, throughput: dict, bursts: dict | None) -> tuple[str | None, str]:
    """The persona's grade and the sentence that explains it."""
    scoring = persona.scoring
    if scoring.latency_thresholds is None:
        ratio = throughput["down_ratio"]
        if ratio is None:
            return None, f"{persona.name}: no throughput measured"
        grade = _grade_by_floors(ratio, scoring.throughput_floor_ratios)
        return grade, (f"{persona.name}: {throughput['down_median_mbps']:.1f} Mbit/s of the "
                       f"{throughput['target_down_mbps']:g} it asks for")
    if latency["baseline_samples"] < MIN_BASELINE_SAMPLES or latency["samples"] < MIN_LOAD_SAMPLES:
        return None, f"{persona.name}: too few answered messages to grade"
    increase = latency["increase_p95_ms"]
    grade = grade_for_increase(increase, scoring.latency_thresholds)
    reason = f"{persona.name}: {increase:+.0f} ms at p95 while the household was busy"
    loss = latency["loss_percent"] or 0.0
    if loss > 2 * scoring.max_loss_percent:
        grade, reason = "F", f"{persona.name}: {loss:.1f}% of messages missed their {persona.deadline_ms:g} ms deadline"
    elif loss > scoring.max_loss_percent:
        grade = worst_grade([grade, "D"])
        reason += f", {loss:.1f}% missed the deadline"
    if bursts is not None and scoring.burst_thresholds_s is not None:
        slowest = bursts["max_s"] if bursts["completed"] == bursts["count"] else float("inf")
        burst_grade = _grade_by_bounds(slowest, scoring.burst_thresholds_s)
        if worst_grade([grade, burst_grade]) != grade:
            grade = burst_grade
            reason = (f"{persona.name}: a 1 s video burst took {slowest:.1f} s to arrive"
                      if slowest != float("inf") else f"{persona.name}: a video burst never finished")
    return grade, reason


def jain_index(shares: Sequence[float]) -> float | None:
    """(Σx)² / (n·Σx²): 1 when every share is equal, 1/n when one takes all."""
    squares = sum(x * x for x in shares)
    if not shares or squares == 0:
        return None
    return sum(shares) ** 2 / (len(shares) * squares)


def score_persona(persona: IPersona, samples: PersonaSamples) -> dict:
    latency = latency_figures(samples)
    throughput = throughput_figures(persona, samples)
    bursts = burst_figures(samples)
    if samples.interrupted:
        grade, reason = None, f"{persona.name}: interrupted (the connection broke during the test)"
    else:
        grade, reason = grade_persona(persona, latency, throughput, bursts)
    return {
        "name": persona.name,
        "label": persona.label,
        "latency_sensitive": persona.scoring.latency_sensitive,
        "interrupted": samples.interrupted,
        "latency": latency,
        "throughput": throughput,
        "bursts": bursts,
        "grade": grade,
        "reason": reason,
    }


def score_household(personas: Mapping[str, IPersona], samples: Mapping[str, PersonaSamples]) -> dict:
    """Every persona's score, the fairness index and the household's grade."""
    scores = {name: score_persona(personas[name], samples[name]) for name in samples}
    shares = [min(1.0, score["throughput"]["down_ratio"] or 0.0)
              for name, score in scores.items()
              if personas[name].scoring.rate_limited and not score["interrupted"]]
    graded = [s for s in scores.values() if s["latency_sensitive"] and s["grade"] is not None]
    overall = {"grade": None, "persona": None, "reason": "no latency-sensitive persona could be graded"}
    if graded:
        grade = worst_grade(s["grade"] for s in graded)
        worst = next(s for s in graded if s["grade"] == grade)
        overall = {"grade": grade, "persona": worst["name"], "reason": worst["reason"]}
    return {
        "personas": scores,
        "fairness": {"jain_index": jain_index(shares), "personas": len(shares)},
        "overall": overall,
        "interrupted": sorted(name for name, s in scores.items() if s["interrupted"]),
    }
