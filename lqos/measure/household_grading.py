"""Scoring a virtual household: each member on what its application feels.

Pure functions over the samples a client submits.  How each persona is
judged, and why, is ``lqos.personas.model.PersonaScoring``'s docstring:

* gaming and the video call on the p95 rise and the loss of small echoes
  sent on connections that carry nothing else;
* streaming on whether each video segment arrived before the player's
  buffer ran dry;
* system updates on their rate, with their share of what reached the
  household; their grade does not count towards the household's.

Fairness is Jain's index over ``min(1, delivered / target)`` of the
rate-limited personas.  The household's grade is the worst grade among the
members whose grade sets it.  Each member gets one sentence that names the
figure that set its grade, in its application's terms.

An echo the client itself held back (``held_by_device``) counts at the
server's timing of its trip.  A real-time member where that happened to
more than ``MAX_LATE_SHARE`` of its echoes is not graded, and says so in
``caveat``: the device, not the line, could not keep up, and a device that
busy delays the server's own timing too (Firefox on loopback answered the
server's Pings 100 ms late while it read the updates at 700 Mbit/s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from lqos.measure import stats
from lqos.measure.grading import GRADES, LATE_MS, MAX_LATE_SHARE, grade_for_increase, worst_grade
from lqos.measure.units import mbps
from lqos.personas.model import IPersona

MIN_BASELINE_SAMPLES = 5
MIN_LOAD_SAMPLES = 10
WINDOW_SECONDS = 1.0


@dataclass(frozen=True)
class PersonaSamples:
    """What the client measured on one persona's connection."""

    # seq, phase, sent_ms, rtt_ms | None, and the server's timing of the same round trip | None
    # (lqos.net.websocket.PongTimer): graded only where the client held the echo back
    # (held_by_device; latency_figures says why not everywhere).
    pings: tuple[tuple, ...]
    down_windows: tuple[tuple[float, int], ...]  # start_ms of a 1 s window in the load, bytes received
    up_acks: tuple[tuple[float, int], ...]  # server's t_ms, upstream bytes it had received by then
    bursts: tuple[tuple[int, float | None], ...]  # segment number, seconds from its scheduled start to its arrival | None
    interrupted: bool


def held_by_device(rtt_ms: float | None, server_rtt_ms: float | None, deadline_ms: float) -> bool:
    """Whether the client, not the line, made an echo late.

    The server times each round trip with a WebSocket Ping sent after the
    echo's answer, which the client's network stack answers without its
    script: when that Pong came back, the answer had reached the device.  So
    an echo the server timed, but the client saw at least ``LATE_MS`` later
    and at least half again the server's time later (so that a deep queue's
    spread between the two timings is not taken for it), was held back by a
    busy device: a browser tab whose thread was taken by the load, a starved
    CLI.  An echo the client saw only after its deadline (``rtt_ms`` None)
    is judged with the deadline as its client time, the least it can have
    been, so an echo the line made late is never counted as answered.
    """
    if server_rtt_ms is None:
        return False
    held_ms = (deadline_ms if rtt_ms is None else rtt_ms) - server_rtt_ms
    return held_ms >= LATE_MS and held_ms >= server_rtt_ms / 2


def _server_rtt(row: tuple) -> float | None:
    return row[4] if len(row) > 4 else None


def network_rtt(row: tuple, deadline_ms: float) -> float | None:
    """The round trip an echo row stands for: the client's, unless the client held it back."""
    rtt, server_rtt = row[3], _server_rtt(row)
    return server_rtt if held_by_device(rtt, server_rtt, deadline_ms) else rtt


def _rows(samples: PersonaSamples, phase: str) -> list[tuple]:
    return [row for row in sorted(samples.pings) if row[1] == phase]


def _rtts(samples: PersonaSamples, phase: str, deadline_ms: float) -> list[float | None]:
    """A phase's round trips in seq order, as ``network_rtt`` reads them."""
    return [network_rtt(row, deadline_ms) for row in _rows(samples, phase)]


def _server_rtts(samples: PersonaSamples, phase: str) -> list[float | None]:
    return [_server_rtt(row) for row in _rows(samples, phase)]


def latency_figures(samples: PersonaSamples, deadline_ms: float) -> dict:
    """The member's echoes, graded on the client's round trips.

    The server's timing of the same round trips (``server_rtt_ms``) grades an
    echo only where the client held it back (``held_by_device``); elsewhere
    it is reported beside the grade, as ``server_increase_p95_ms``.  It is
    not a fair sample of the line's tail: the client's echoes, like ping's,
    go out on an even clock, while the server's Ping goes out when a pong
    does, so its trip starts at moments the line chose.  Per echo, on the
    20/5 Mbit/s deep testbed link (two CLI runs), the medians agreed
    (client 232 and 228 ms, server 237 and 231, ping 236 and 227) but the
    video call's p95 did not (client 299 and 287, ping 292 and 286, server
    251 and 255).  The household grades on p95, so on the client's timing.
    """
    baseline = stats.answered(_rtts(samples, "baseline", deadline_ms))
    load_rtts = _rtts(samples, "load", deadline_ms)
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
    server_baseline = stats.answered(_server_rtts(samples, "baseline"))
    server_load = stats.answered(_server_rtts(samples, "load"))
    figures["server_timed"] = len(server_baseline) + len(server_load)
    figures["server_increase_p95_ms"] = (
        stats.percentile(server_load, 95) - stats.median(server_baseline)
        if len(server_baseline) >= MIN_BASELINE_SAMPLES and len(server_load) >= MIN_LOAD_SAMPLES else None)
    return figures


def keeping_up(samples: PersonaSamples, deadline_ms: float) -> dict:
    """How many of the load's echoes the client itself held back (``held_by_device``)."""
    load = _rows(samples, "load")
    held = sum(1 for row in load if held_by_device(row[3], _server_rtt(row), deadline_ms))
    return {"held_echoes": held, "sent": len(load), "client_limited": held > MAX_LATE_SHARE * len(load)}


# Said once under the members' caveats (score_household).
DEVICE_ADVICE = "Another device or browser would show what your line does."


def held_back(persona: IPersona, keeping: dict, device: str = "this device") -> str:
    """``37 of 41 game updates reached this device in time, but it handled them late``"""
    return (f"{keeping['held_echoes']} of {keeping['sent']} {persona.scoring.subject} reached {device} "
            "in time, but it handled them late")


def caveat(persona: IPersona, keeping: dict) -> str | None:
    """One sentence for the customer when the device, not the line, was too slow for a real-time member."""
    if persona.scoring.judged_on != "latency" or not keeping["client_limited"]:
        return None
    return f"This device could not keep up: {held_back(persona, keeping, 'it')}, so they are not graded."


def upstream_windows(up_acks: Sequence[tuple[float, int]]) -> list[float]:
    """Mbit/s between consecutive acknowledgements of upstream bytes."""
    ordered = sorted(up_acks)
    return [mbps(b1 - b0, (t1 - t0) / 1000) for (t0, b0), (t1, b1) in zip(ordered, ordered[1:])
            if t1 > t0 and b1 >= b0]


def _whole_periods(windows: Sequence[float], period_seconds: float | None) -> Sequence[float]:
    """The windows that make whole periods of a bursty plan (all of them if there is not one).

    A mean over 8 s that holds two 1 s bursts of a 5 s period would read
    25% over the plan's rate; over the first 5 s it reads the plan's rate.
    """
    if period_seconds is None:
        return windows
    per_period = max(1, round(period_seconds / WINDOW_SECONDS))
    whole = len(windows) // per_period * per_period
    return windows[:whole] if whole else windows


def throughput_figures(persona: IPersona, samples: PersonaSamples) -> dict:
    """Delivered against target: the median 1 s window, or for a bursty plan (most
    of whose windows are empty by design) the mean over whole periods."""
    plan = persona.traffic
    down = [mbps(b, WINDOW_SECONDS) for _, b in sorted(samples.down_windows)]
    up = upstream_windows(samples.up_acks)
    target = plan.average_down_mbps or persona.scoring.throughput_target_mbps
    if plan.burst_seconds is not None:
        typical, counted = stats.mean, _whole_periods(down, plan.period_seconds)
    else:
        typical, counted = stats.median, down
    delivered = typical(counted) if counted else None
    return {
        "target_down_mbps": target,
        "down_median_mbps": delivered,
        "down_statistic": typical.__name__,
        "down_windows": len(counted),
        "down_ratio": (delivered / target) if (delivered is not None and target) else None,
        "target_up_mbps": plan.up_mbps,
        "up_median_mbps": stats.median(up) if up else None,
        "up_windows": len(up),
    }


def segment_figures(persona: IPersona, samples: PersonaSamples, load_seconds: float) -> dict | None:
    """Which of a streaming persona's video segments arrived in time.

    Each burst of the plan is one segment: ``period_seconds`` of video at the
    plan's average rate, sent from ``n × period_seconds`` into the load.  The
    client reports each segment's arrival in seconds from that moment.  A
    player that asks for the next segment when one segment's worth of video
    is left in its buffer must have it within the segment's duration, or the
    picture pauses: so a segment is late when it took longer than its
    duration, and each late segment is one pause.  One whose end never came
    is late if its deadline fell inside the load, and not counted if the
    test ended first.  The first segment's time is the startup time.
    """
    plan = persona.traffic
    if plan.period_seconds is None or not samples.bursts:
        return None
    duration = plan.period_seconds
    arrived: dict[int, float] = {}
    due: list[int] = []
    for number, seconds in sorted(samples.bursts):
        if seconds is not None:
            arrived[number] = seconds
            due.append(number)
        elif number * duration + duration <= load_seconds:
            due.append(number)
    late = [n for n in due if arrived.get(n, math.inf) > duration]
    on_time = [arrived[n] for n in due if n not in late]
    return {
        "segment_seconds": duration,
        "count": len(due),
        "late": len(late),
        "never_arrived": sum(1 for n in due if n not in arrived),
        "startup_s": arrived.get(0),
        "p50_s": stats.median(list(arrived.values())) if arrived else None,
        "slowest_on_time_s": max(on_time) if on_time else None,
        "max_s": max(arrived.values()) if arrived else None,
    }


def _grade_by_bounds(value: float, bounds: Sequence[float], grades: Sequence[str] = GRADES) -> str:
    """The first grade whose bound *value* is under (bounds ascending); past them all, the next grade."""
    for grade, bound in zip(grades, bounds):
        if value < bound:
            return grade
    return grades[len(bounds)]


def _grade_by_floors(ratio: float, floors: Sequence[float]) -> str:
    """A+ at or above the first floor ... F below the last (floors descending)."""
    for grade, floor in zip(GRADES, floors):
        if ratio >= floor:
            return grade
    return GRADES[-1]


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def grade_on_latency(persona: IPersona, latency: dict) -> tuple[str | None, str]:
    """A real-time member: the p95 rise of its echoes, capped by their loss."""
    scoring = persona.scoring
    loss = latency["loss_percent"] or 0.0
    lost = (f"{loss:.1f}% of {scoring.subject} were lost or later than {persona.deadline_ms:g} ms: "
            f"{scoring.when_late}")
    if latency["sent"] >= MIN_LOAD_SAMPLES and loss > 2 * scoring.max_loss_percent:
        return "F", lost  # however few came back: that so many did not is the grade
    if latency["baseline_samples"] < MIN_BASELINE_SAMPLES or latency["samples"] < MIN_LOAD_SAMPLES:
        return None, f"too few {scoring.subject} were answered to grade"
    increase = latency["increase_p95_ms"]
    grade = grade_for_increase(increase, scoring.latency_thresholds)
    if increase < 1:
        reason = f"{scoring.subject.capitalize()} arrived as fast as on an idle line while the household was busy"
    else:
        reason = (f"{scoring.subject.capitalize()} arrived up to {increase:.0f} ms later than on an idle line "
                  "while the household was busy (95th percentile)")
    if loss > scoring.max_loss_percent:
        grade, reason = worst_grade([grade, "D"]), lost
    return grade, reason


def grade_on_segments(persona: IPersona, segments: dict | None) -> tuple[str | None, str]:
    """A player: late segments are pauses; with none, the headroom of the slowest."""
    scoring = persona.scoring
    if segments is None or not segments["count"]:
        return None, f"no {scoring.subject} were due within the test"
    count, late = segments["count"], segments["late"]
    if late:
        grade = _grade_by_bounds(late / count, scoring.late_segment_bounds, GRADES[3:])
        return grade, f"{late} of {count} {scoring.subject} arrived late: {scoring.when_late} {_times(late)}"
    slowest, duration = segments["slowest_on_time_s"], segments["segment_seconds"]
    grade = _grade_by_bounds(slowest / duration, scoring.segment_headroom_bounds)
    return grade, (f"all {count} {scoring.subject} arrived in time: the slowest took {slowest:.1f} s "
                   f"of the {duration:g} s it had")


def grade_on_share(persona: IPersona, throughput: dict, household_down_mbps: float | None) -> tuple[str | None, str]:
    """A background download: its rate against its target, with its share of the household's."""
    scoring = persona.scoring
    ratio = throughput["down_ratio"]
    if ratio is None:
        return None, f"no {scoring.subject} were downloaded"
    rate = throughput["down_median_mbps"]
    share = f", {rate / household_down_mbps:.0%} of what reached the household" if household_down_mbps else ""
    return (_grade_by_floors(ratio, scoring.throughput_floor_ratios),
            f"{scoring.subject.capitalize()} downloaded at {rate:.1f} Mbit/s{share} "
            f"(they ask for {throughput['target_down_mbps']:g})")


def jain_index(shares: Sequence[float]) -> float | None:
    """(Σx)² / (n·Σx²): 1 when every share is equal, 1/n when one takes all."""
    squares = sum(x * x for x in shares)
    if not shares or squares == 0:
        return None
    return sum(shares) ** 2 / (len(shares) * squares)


def score_persona(persona: IPersona, samples: PersonaSamples, load_seconds: float,
                  household_down_mbps: float | None = None) -> dict:
    latency = latency_figures(samples, persona.deadline_ms)
    keeping = keeping_up(samples, persona.deadline_ms)
    throughput = throughput_figures(persona, samples)
    segments = segment_figures(persona, samples, load_seconds)
    judged_on = persona.scoring.judged_on
    if samples.interrupted:
        grade, reason = None, "interrupted: its connection broke during the test"
    elif judged_on == "latency" and keeping["client_limited"]:
        grade, reason = None, f"not graded: {held_back(persona, keeping)}"
    elif judged_on == "latency":
        grade, reason = grade_on_latency(persona, latency)
    elif judged_on == "segments":
        grade, reason = grade_on_segments(persona, segments)
    else:
        grade, reason = grade_on_share(persona, throughput, household_down_mbps)
    return {
        "name": persona.name,
        "label": persona.label,
        "judged_on": judged_on,
        "sets_household_grade": persona.scoring.sets_household_grade,
        "interrupted": samples.interrupted,
        "latency": latency,
        "throughput": throughput,
        "segments": segments,
        "keeping_up": keeping,
        "grade": grade,
        "reason": f"{persona.name}: {reason}",
        "caveat": caveat(persona, keeping),
    }


def household_downmbps(samples: Mapping[str, PersonaSamples], load_seconds: float) -> float | None:
    """Every member's downstream bytes over the load, as one rate."""
    total = sum(b for member in samples.values() for _, b in member.down_windows)
    return mbps(total, load_seconds) if load_seconds > 0 and total else None


def score_household(personas: Mapping[str, IPersona], samples: Mapping[str, PersonaSamples],
                    load_seconds: float) -> dict:
    """Every persona's score, the fairness index and the household's grade."""
    total = household_downmbps(samples, load_seconds)
    scores = {name: score_persona(personas[name], samples[name], load_seconds, total) for name in samples}
    shares = [min(1.0, score["throughput"]["down_ratio"] or 0.0)
              for name, score in scores.items()
              if personas[name].scoring.rate_limited and not score["interrupted"]]
    graded = [s for s in scores.values() if s["sets_household_grade"] and s["grade"] is not None]
    caveats = [score["caveat"] for score in scores.values() if score["caveat"]]
    caveats += [DEVICE_ADVICE] if caveats else []
    overall = {"grade": None, "persona": None, "reason": "no member whose grade counts could be graded",
               "caveats": caveats}
    if graded:
        grade = worst_grade(s["grade"] for s in graded)
        worst = next(s for s in graded if s["grade"] == grade)
        overall.update(grade=grade, persona=worst["name"], reason=worst["reason"])
    return {
        "personas": scores,
        "fairness": {"jain_index": jain_index(shares), "personas": len(shares)},
        "overall": overall,
        "interrupted": sorted(name for name, s in scores.items() if s["interrupted"]),
    }
