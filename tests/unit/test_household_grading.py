"""Household scoring: each persona on what it feels, fairness, the household grade."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lqos.grading import GRADES, grade_rank
from lqos.household_grading import PersonaSamples, jain_index, score_household, score_persona
from lqos.plugins.lqos_household import gaming, streaming, updates, video_call

PERSONAS = {p.name: p for p in (streaming, gaming, video_call, updates)}


def samples(baseline_ms=10.0, load_ms=(12.0,), lost=0, down_mbps=1.5, bursts=(), interrupted=False,
            pings=80) -> PersonaSamples:
    pings_list = [(i, "baseline", i * 100.0, baseline_ms) for i in range(20)]
    for i in range(pings):
        rtt = None if i < lost else load_ms[i % len(load_ms)]
        pings_list.append((100 + i, "load", 2000 + i * 100.0, rtt))
    window_bytes = int(down_mbps * 1e6 / 8)
    return PersonaSamples(
        pings=tuple(pings_list),
        down_windows=tuple((2000 + s * 1000.0, window_bytes) for s in range(8)),
        up_acks=tuple((s * 1000.0, s * 93_750) for s in range(9)),
        bursts=tuple(bursts),
        interrupted=interrupted,
    )


def test_gaming_graded_on_p95_increase_with_its_own_thresholds():
    score = score_persona(gaming, samples(load_ms=(20.0,)))
    assert score["latency"]["increase_p95_ms"] == 10.0
    assert score["grade"] == "A"  # gaming: A+ < 5, A < 15
    assert score["reason"] == "gaming: +10 ms at p95 while the household was busy"
    assert score["throughput"]["down_median_mbps"] == pytest.approx(1.5)
    assert score["throughput"]["up_median_mbps"] == pytest.approx(0.75)


def test_same_delay_grades_gaming_worse_than_video():
    gaming_grade = score_persona(gaming, samples(load_ms=(80.0,)))["grade"]
    video_grade = score_persona(video_call, samples(load_ms=(80.0,), down_mbps=2.5))["grade"]
    assert (gaming_grade, video_grade) == ("D", "C")


def test_missed_deadlines_drop_the_grade():
    assert score_persona(gaming, samples(lost=1))["grade"] == "D"  # 1.25% > 1%
    assert score_persona(gaming, samples(lost=8))["grade"] == "F"  # 10% > 2 x 1%


def test_slow_video_bursts_drop_streaming():
    fine = score_persona(streaming, samples(down_mbps=5, bursts=[(0, 1.1), (1, 1.2)]))
    slow = score_persona(streaming, samples(down_mbps=5, bursts=[(0, 1.1), (1, 3.5)]))
    unfinished = score_persona(streaming, samples(down_mbps=5, bursts=[(0, 1.1), (1, None)]))
    assert fine["grade"] == "A+"
    assert slow["grade"] == "C" and "3.5 s" in slow["reason"]
    assert unfinished["grade"] == "F"


def test_updates_graded_on_throughput_only():
    score = score_persona(updates, samples(load_ms=(900.0,), down_mbps=40))
    assert score["grade"] == "A"  # 40 of 50 = 0.8 >= 0.75
    assert "40.0 Mbit/s of the 50" in score["reason"]


def test_household_grade_is_the_worst_latency_sensitive_persona():
    result = score_household(PERSONAS, {
        "streaming": samples(down_mbps=5, bursts=[(0, 1.0)]),
        "gaming": samples(load_ms=(190.0,)),
        "video": samples(load_ms=(30.0,), down_mbps=2.5),
        "updates": samples(down_mbps=1),  # F, but not latency-sensitive
    })
    assert result["overall"] == {"grade": "F", "persona": "gaming",
                                 "reason": "gaming: +180 ms at p95 while the household was busy"}
    assert result["fairness"]["personas"] == 3
    assert result["fairness"]["jain_index"] == pytest.approx(1.0)


def test_interrupted_persona_is_marked_not_graded():
    result = score_household(PERSONAS, {
        "streaming": samples(down_mbps=5),
        "gaming": samples(interrupted=True),
        "video": samples(down_mbps=2.5),
        "updates": samples(down_mbps=50),
    })
    assert result["interrupted"] == ["gaming"]
    assert result["personas"]["gaming"]["grade"] is None
    assert result["overall"]["persona"] != "gaming"


def test_jain_index_extremes():
    assert jain_index([1, 1, 1]) == 1
    assert jain_index([1, 0, 0]) == pytest.approx(1 / 3)
    assert jain_index([]) is None


@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=8))
def test_jain_index_between_one_over_n_and_one(shares):
    index = jain_index(shares)
    if index is not None:
        assert 1 / len(shares) - 1e-9 <= index <= 1 + 1e-9


@given(st.floats(min_value=10, max_value=1500), st.floats(min_value=0, max_value=500))
def test_more_delay_never_grades_gaming_better(load_ms, extra_ms):
    better = score_persona(gaming, samples(load_ms=(load_ms,)))["grade"]
    worse = score_persona(gaming, samples(load_ms=(load_ms + extra_ms,)))["grade"]
    assert grade_rank(worse) >= grade_rank(better)
    assert worse in GRADES
