"""Reading a client's raw samples: schema, sizes and ranges, before any grading.

A result submission is JSON::

    {"token": "...",
     "probes": [[seq, phase, sent_ms, rtt_ms_or_null, server_rtt_ms_or_null, ack_rtt_ms_or_null], ...],
     "throughput": [[phase, start_ms, "down" | "up", bytes], ...],
     "streams": {"download": N, "upload": N},
     "lag": [[start_ms, lag_ms], ...]}          optional: the client's timer lag per window

Arrays instead of objects keep a 40-second test's body near 20 KB.  Every
bound here is derived from the test's schedule, so a client cannot make the
server grade more samples than the test could have produced.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from lqos.measure.grading import PHASES, PROBE_INTERVAL_MS, ClientLag, ProbeSample, ThroughputWindow, WINDOW_MS
from lqos.measure.household_grading import PersonaSamples

MAX_SUBMISSION_BYTES = 512 * 1024
PROBE_TIMEOUT_MS = 2000
MAX_STREAMS = 16
# The saturation phases run at least this many streams, whatever the warm-up
# found: one or two flows reach full throughput but fill a deep FIFO slowly and
# erratically, where a household's four bulk flows keep it full (measured in
# the accuracy testbed, tests/testbed/).
MIN_STREAMS = 4
# 100 Gbit/s for a 250 ms window: past what one server port delivers today,
# so anything above is made up.
MAX_WINDOW_BYTES = int(100e9 / 8 * WINDOW_MS / 1000)
# A probe may be answered this long after the schedule ends (its 2 s timeout, and slack).
SCHEDULE_SLACK_MS = 5000
# A timer lag above this is a client that stopped altogether; it is stored as this.
MAX_LAG_MS = 60_000


class SubmissionError(ValueError):
    """The submission is malformed; the message is safe to show the client."""


@dataclass(frozen=True)
class Submission:
    token: str
    probes: tuple[ProbeSample, ...]
    windows: tuple[ThroughputWindow, ...]
    streams: dict[str, int]
    lags: tuple[ClientLag, ...] = ()


def _document(body: bytes) -> tuple[dict, str]:
    """The body as a JSON object, and its token."""
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
    return document, token


def parse_submission(body: bytes, duration_seconds: float) -> Submission:
    """Validate *body* against a test of *duration_seconds*; raise :class:`SubmissionError`."""
    document, token = _document(body)
    duration_ms = duration_seconds * 1000
    return Submission(
        token=token,
        probes=_probes(document.get("probes"), duration_ms),
        windows=_windows(document.get("throughput"), duration_ms),
        streams=_streams(document.get("streams", {})),
        lags=_lags(document.get("lag", []), duration_ms),
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
    rows = _ping_rows(value, "probes", duration_ms, PHASES, PROBE_TIMEOUT_MS, server_timings=SERVER_TIMINGS)
    return tuple(ProbeSample(*row) for row in rows)


# What a probe row may carry after the client's own timing, in order.
SERVER_TIMINGS = ("server_rtt_ms", "ack_rtt_ms")


def _ping_rows(value: object, what: str, duration_ms: float, phases: tuple[str, ...],
               max_rtt_ms: float, server_timings: tuple[str, ...] = ()) -> tuple[tuple, ...]:
    """``[seq, phase, sent_ms, rtt_ms | null, ...]`` rows: seq unique, phase known, times in range.

    A row may carry the server's timings of the same round trip, named by
    *server_timings* (``server_rtt_ms``, then for a probe ``ack_rtt_ms``),
    each null when none came; a shorter row, as older clients send, reads as
    null there.  A row whose echo came after the client's deadline
    (``rtt_ms`` null) may still carry them: the echo reached the device in
    time, and the client was late to read it.
    """
    max_rows = int(duration_ms / PROBE_INTERVAL_MS * 1.5) + 50
    widths = range(4, 5 + len(server_timings))
    shape = "[" + ", ".join(("seq", "phase", "sent_ms", "rtt_ms", *server_timings)) + "]"
    rows, seen = [], set()
    for index, item in enumerate(_list(value, what, max_rows)):
        where = f"{what}[{index}]"
        if not isinstance(item, list) or len(item) not in widths:
            raise SubmissionError(f"{where} must be {shape}")
        seq, phase, sent_ms, rtt_ms = item[:4]
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= 10 * max_rows:
            raise SubmissionError(f"{where}: seq must be a whole number 0..{10 * max_rows}")
        if seq in seen:
            raise SubmissionError(f"{where}: seq {seq} appears twice")
        seen.add(seq)
        if phase not in phases:
            raise SubmissionError(f"{where}: unknown phase {str(phase)[:40]!r}")
        sent = _number_in(sent_ms, 0, duration_ms + SCHEDULE_SLACK_MS, f"{where}: sent_ms")
        rtt = None if rtt_ms is None else _number_in(rtt_ms, 0, max_rtt_ms, f"{where}: rtt_ms")
        timings = [*item[4:], *[None] * (4 + len(server_timings) - len(item))]
        rows.append((seq, phase, sent, rtt, *(
            None if timing is None else _number_in(timing, 0, max_rtt_ms, f"{where}: {name}")
            for name, timing in zip(server_timings, timings, strict=True))))
    return tuple(rows)


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


def _lags(value: object, duration_ms: float) -> tuple[ClientLag, ...]:
    """``[start_ms, lag_ms]`` rows, at most one per window of the test."""
    rows = _list(value, "lag", int(duration_ms / WINDOW_MS) + 8)
    lags = []
    for index, item in enumerate(rows):
        where = f"lag[{index}]"
        if not isinstance(item, list) or len(item) != 2:
            raise SubmissionError(f"{where} must be [start_ms, lag_ms]")
        start = _number_in(item[0], 0, duration_ms + SCHEDULE_SLACK_MS, f"{where}: start_ms")
        lags.append(ClientLag(start, min(_number_in(item[1], 0, 1e9, f"{where}: lag_ms"), MAX_LAG_MS)))
    return tuple(lags)


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


# --- a virtual household's submission ---
#
#   {"token": "...",
#    "personas": {"gaming": {"pings": [[seq, "baseline" | "load", sent_ms, rtt_ms_or_null,
#                                       server_rtt_ms_or_null]],   (the fifth item optional)
#                            "down": [[start_ms, bytes]],      1 s windows of the load
#                            "up_acks": [[t_ms, bytes]],       the server's upstream acks
#                            "bursts": [[n, seconds_or_null]], a bursty persona's bursts
#                            "interrupted": false}, ...}}

HOUSEHOLD_PHASES = ("baseline", "load")
MAX_PERSONA_DEADLINE_MS = 5000


@dataclass(frozen=True)
class HouseholdSubmission:
    token: str
    personas: dict[str, PersonaSamples]


def parse_household_submission(body: bytes, duration_seconds: float,
                               persona_names: tuple[str, ...]) -> HouseholdSubmission:
    document, token = _document(body)
    personas = document.get("personas")
    if not isinstance(personas, dict) or set(personas) != set(persona_names):
        raise SubmissionError(f"personas must have exactly these keys: {sorted(persona_names)}")
    duration_ms = duration_seconds * 1000
    return HouseholdSubmission(token, {
        name: _persona_samples(personas[name], f"personas.{name}", duration_ms) for name in persona_names
    })


def _persona_samples(value: object, what: str, duration_ms: float) -> PersonaSamples:
    if not isinstance(value, dict):
        raise SubmissionError(f"{what} must be an object")
    interrupted = value.get("interrupted", False)
    if not isinstance(interrupted, bool):
        raise SubmissionError(f"{what}.interrupted must be true or false")
    seconds = int(duration_ms / 1000) + 8
    return PersonaSamples(
        pings=_ping_rows(value.get("pings", []), f"{what}.pings", duration_ms, HOUSEHOLD_PHASES,
                         MAX_PERSONA_DEADLINE_MS, server_timings=("server_rtt_ms",)),
        down_windows=_pairs(value.get("down", []), f"{what}.down", seconds, duration_ms, MAX_WINDOW_BYTES * 4),
        up_acks=_pairs(value.get("up_acks", []), f"{what}.up_acks", seconds, duration_ms, 2**50),
        bursts=_bursts(value.get("bursts", []), f"{what}.bursts", seconds),
        interrupted=interrupted,
    )


def _pairs(value: object, what: str, max_items: int, duration_ms: float, max_bytes: int) -> tuple:
    pairs = []
    for index, item in enumerate(_list(value, what, max_items)):
        where = f"{what}[{index}]"
        if not isinstance(item, list) or len(item) != 2:
            raise SubmissionError(f"{where} must be [ms, bytes]")
        at = _number_in(item[0], 0, duration_ms + SCHEDULE_SLACK_MS, f"{where}: ms")
        count = item[1]
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= max_bytes:
            raise SubmissionError(f"{where}: bytes must be a whole number 0..{max_bytes}")
        pairs.append((at, count))
    return tuple(pairs)


def _bursts(value: object, what: str, max_items: int) -> tuple:
    bursts = []
    for index, item in enumerate(_list(value, what, max_items)):
        where = f"{what}[{index}]"
        if not isinstance(item, list) or len(item) != 2:
            raise SubmissionError(f"{where} must be [n, seconds]")
        number, seconds = item
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= max_items:
            raise SubmissionError(f"{where}: n must be a whole number 0..{max_items}")
        bursts.append((number, None if seconds is None else _number_in(seconds, 0, 60, f"{where}: seconds")))
    return tuple(bursts)
