"""Reading a client's raw samples: schema, sizes and ranges, before any grading.

A result submission is JSON::

    {"token": "...",
     "probes": [[seq, phase, sent_ms, rtt_ms_or_null], ...],
     "throughput": [[phase, start_ms, "down" | "up", bytes], ...],
     "streams": {"download": N, "upload": N}}

Arrays instead of objects keep a 40-second test's body near 20 KB.  Every
bound here is derived from the test's schedule, so a client cannot make the
server grade more samples than the test could have produced.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from lqos.grading import PHASES, ProbeSample, ThroughputWindow, WINDOW_MS

MAX_SUBMISSION_BYTES = 512 * 1024
PROBE_INTERVAL_MS = 100
PROBE_TIMEOUT_MS = 2000
MAX_STREAMS = 16
# 10 Gbit/s for a 250 ms window, with headroom: anything above is made up.
MAX_WINDOW_BYTES = int(12e9 / 8 * WINDOW_MS / 1000)
# A probe may be answered this long after the schedule ends (its 2 s timeout, and slack).
SCHEDULE_SLACK_MS = 5000


class SubmissionError(ValueError):
    """The submission is malformed; the message is safe to show the client."""


@dataclass(frozen=True)
class Submission:
    token: str
    probes: tuple[ProbeSample, ...]
    windows: tuple[ThroughputWindow, ...]
    streams: dict[str, int]


def parse_submission(body: bytes, duration_seconds: float) -> Submission:
    """Validate *body* against a test of *duration_seconds*; raise :class:`SubmissionError`."""
    if len(body) > MAX_SUBMISSION_BYTES:
        raise SubmissionError(f"body larger than {MAX_SUBMISSION_BYTES} bytes")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise SubmissionError("body is not JSON") from None
    if not isinstance(document, dict):
        raise SubmissionError("body must be a JSON object")
    token = document.get("token")
    if not isinstance(token, str) or not 0 < len(token) <= 128:
        raise SubmissionError("token missing")
    duration_ms = duration_seconds * 1000
    return Submission(
        token=token,
        probes=_probes(document.get("probes"), duration_ms),
        windows=_windows(document.get("throughput"), duration_ms),
        streams=_streams(document.get("streams", {})),
    )


def _list(value: object, name: str, max_items: int) -> list:
    if not isinstance(value, list):
        raise SubmissionError(f"{name} must be a list")
    if len(value) > max_items:
        raise SubmissionError(f"{name} has {len(value)} items; a test of this length has at most {max_items}")
    return value


def _number_in(value: object, low: float, high: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SubmissionError(f"{what} must be a number")
    if not low <= value <= high:
        raise SubmissionError(f"{what} {value} is outside {low:g}..{high:g}")
    return float(value)


def _probes(value: object, duration_ms: float) -> tuple[ProbeSample, ...]:
    max_probes = int(duration_ms / PROBE_INTERVAL_MS * 1.5) + 50
    items = _list(value, "probes", max_probes)
    probes, seen = [], set()
    for index, item in enumerate(items):
        what = f"probes[{index}]"
        if not isinstance(item, list) or len(item) != 4:
            raise SubmissionError(f"{what} must be [seq, phase, sent_ms, rtt_ms]")
        seq, phase, sent_ms, rtt_ms = item
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= 10 * max_probes:
            raise SubmissionError(f"{what}: seq must be a whole number 0..{10 * max_probes}")
        if seq in seen:
            raise SubmissionError(f"{what}: seq {seq} appears twice")
        seen.add(seq)
        if phase not in PHASES:
            raise SubmissionError(f"{what}: unknown phase {str(phase)[:40]!r}")
        sent = _number_in(sent_ms, 0, duration_ms + SCHEDULE_SLACK_MS, f"{what}: sent_ms")
        rtt = None if rtt_ms is None else _number_in(rtt_ms, 0, PROBE_TIMEOUT_MS, f"{what}: rtt_ms")
        probes.append(ProbeSample(seq, phase, sent, rtt))
    return tuple(probes)


def _windows(value: object, duration_ms: float) -> tuple[ThroughputWindow, ...]:
    max_windows = 2 * (int(duration_ms / WINDOW_MS) + 8)
    items = _list(value, "throughput", max_windows)
    windows = []
    for index, item in enumerate(items):
        what = f"throughput[{index}]"
        if not isinstance(item, list) or len(item) != 4:
            raise SubmissionError(f"{what} must be [phase, start_ms, direction, bytes]")
        phase, start_ms, direction, byte_count = item
        if phase not in PHASES:
            raise SubmissionError(f"{what}: unknown phase {str(phase)[:40]!r}")
        if direction not in ("down", "up"):
            raise SubmissionError(f"{what}: direction must be 'down' or 'up'")
        start = _number_in(start_ms, 0, duration_ms + SCHEDULE_SLACK_MS, f"{what}: start_ms")
        if isinstance(byte_count, bool) or not isinstance(byte_count, int) or not 0 <= byte_count <= MAX_WINDOW_BYTES:
            raise SubmissionError(f"{what}: bytes must be a whole number 0..{MAX_WINDOW_BYTES}")
        windows.append(ThroughputWindow(phase, start, direction, byte_count))
    return tuple(windows)


def _streams(value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        raise SubmissionError("streams must be an object")
    streams = {}
    for direction in ("download", "upload"):
        count = value.get(direction, 0)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_STREAMS:
            raise SubmissionError(f"streams.{direction} must be a whole number 0..{MAX_STREAMS}")
        streams[direction] = count
    return streams
