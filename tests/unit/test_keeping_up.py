"""A phase the client could not fill is marked, with a sentence that says so."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lqos.measure.grading import (
    LATE_MS, ClientLag, ProbeSample, ThroughputWindow, client_keeping_up, compute_result, plateau_reached,
)
from lqos.measure.submission import SubmissionError, parse_submission

PHASE_ORDER = ("baseline", "download", "upload", "bidirectional")
PROBES_PER_PHASE = 30  # 3 s at 100 ms
WINDOWS_PER_PHASE = 12  # 3 s of 250 ms windows


def phase_start(phase: str) -> float:
    return PHASE_ORDER.index(phase) * PROBES_PER_PHASE * 100.0


def probes(late_in: str | None = None):
    """Probes every 100 ms; in *late_in* every other one leaves 80 ms late (a stalled thread)."""
    rows, sent = [], 0.0
    for phase in PHASE_ORDER:
        for i in range(PROBES_PER_PHASE):
            sent += 100.0 + (80.0 if phase == late_in and i % 2 else 0.0)
            rows.append(ProbeSample(len(rows), phase, sent, 12.0 if phase != "baseline" else 10.0))
    return rows


def windows(phase: str, direction: str, rates: list[int]):
    return [ThroughputWindow(phase, phase_start(phase) + i * 250.0, direction, count) for i, count in enumerate(rates)]


def steady_load():
    return (windows("download", "down", [1_000_000] * WINDOWS_PER_PHASE)
            + windows("upload", "up", [200_000] * WINDOWS_PER_PHASE)
            + windows("bidirectional", "down", [900_000] * WINDOWS_PER_PHASE)
            + windows("bidirectional", "up", [180_000] * WINDOWS_PER_PHASE))


def lags(phase: str, late_share: float):
    late = round(WINDOWS_PER_PHASE * late_share)
    return [ClientLag(phase_start(phase) + i * 250.0, 120.0 if i < late else 3.0) for i in range(WINDOWS_PER_PHASE)]


def test_a_client_that_kept_up_gets_no_caveat():
    result = compute_result(probes(), steady_load(), lags=lags("download", 0.0))
    for phase in ("download", "upload", "bidirectional"):
        assert result["phases"][phase]["keeping_up"]["client_limited"] is False
        assert result["phases"][phase]["caveat"] is None
    assert result["overall"]["caveats"] == []


def test_late_timers_mark_the_phase_but_keep_its_grade():
    result = compute_result(probes(), steady_load(), lags=lags("download", 0.5))
    download = result["phases"]["download"]
    assert download["keeping_up"]["client_limited"] is True
    assert download["keeping_up"]["late_windows"] == 6
    assert download["grade"] == "A+"  # an upper bound now, and the sentence says so
    assert download["caveat"] == ("This device could not keep up while downloading: download reached 32 Mbit/s. "
                                  "The line may not have been full, so that grade may be too good.")
    assert result["overall"]["caveats"] == [download["caveat"]]
    assert result["phases"]["upload"]["caveat"] is None


def test_a_few_late_timers_are_not_enough():
    result = compute_result(probes(), steady_load(), lags=lags("download", 0.15))
    assert result["phases"]["download"]["keeping_up"]["client_limited"] is False


def test_probes_sent_late_against_their_schedule_mark_the_phase():
    result = compute_result(probes(late_in="upload"), steady_load())
    upload = result["phases"]["upload"]
    assert upload["keeping_up"]["late_probes"] == 15
    assert upload["keeping_up"]["client_limited"] is True
    assert result["phases"]["download"]["keeping_up"]["client_limited"] is False


def test_throughput_still_climbing_at_the_end_never_reached_a_plateau():
    climbing = windows("download", "down", [100_000 * (i + 1) for i in range(WINDOWS_PER_PHASE)])
    result = compute_result(probes(), climbing + steady_load()[WINDOWS_PER_PHASE:])
    download = result["phases"]["download"]
    assert download["keeping_up"]["plateau"]["download"] is False
    assert download["caveat"].startswith("The speed was still rising when the test stopped downloading: download reached")
    assert result["phases"]["upload"]["keeping_up"]["plateau"] == {"download": None, "upload": True}


@given(st.lists(st.integers(0, 10**7), min_size=9, max_size=60))
def test_a_flat_or_falling_series_always_reached_its_plateau(rates):
    falling = sorted(rates, reverse=True)
    assert plateau_reached(windows("download", "down", falling), "download", "down") is True


@given(st.lists(st.floats(0, LATE_MS - 0.01), max_size=40))
def test_lag_below_the_threshold_never_limits(values):
    found = client_keeping_up("download", probes(), steady_load(),
                              [ClientLag(phase_start("download") + i * 250.0, lag) for i, lag in enumerate(values)])
    assert found["client_limited"] is False


def submission(**extra) -> bytes:
    return json.dumps({"token": "t", "probes": [], "throughput": [], **extra}).encode()


def test_the_lag_rows_are_optional_and_bounded():
    assert parse_submission(submission(), 15).lags == ()
    parsed = parse_submission(submission(lag=[[0, 1.5], [250, 10**8]]), 15)
    assert parsed.lags == (ClientLag(0.0, 1.5), ClientLag(250.0, 60_000.0))
    for bad, message in (([[0]], "must be \\[start_ms, lag_ms\\]"), ([[0, -1]], "lag_ms -1 is outside"),
                         ([[10**9, 1]], "start_ms"), ("x", "lag must be a list"),
                         ([[0, 1]] * 200, "at most")):
        with pytest.raises(SubmissionError, match=message):
            parse_submission(submission(lag=bad), 15)
