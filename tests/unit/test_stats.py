"""Unit tests of lqos.measure.stats: hand-checked tables plus a few properties."""

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lqos.measure import stats

rtt = st.floats(min_value=0.0, max_value=10_000.0, allow_nan=False)
rtt_or_lost = st.one_of(st.none(), rtt)
percent = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)


# --- percentile: numpy's 'linear' method, checked by hand -------------------


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 25, 1.75),  # rank 0.75
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),  # rank 1.5
        ([1.0, 2.0, 3.0, 4.0], 75, 3.25),  # rank 2.25
        ([1.0, 2.0, 3.0, 4.0], 90, 3.7),  # rank 2.7
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([4.0, 1.0, 3.0, 2.0], 25, 1.75),  # order of input does not matter
        ([10.0, 20.0], 50, 15.0),
        ([7.0], 99, 7.0),
        ([0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0], 95, 95.0),
        ([5.0, 5.0, 5.0, 100.0], 50, 5.0),
    ],
)
def test_percentile_linear_interpolation(values, q, expected):
    assert stats.percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        stats.percentile([], 50)


@pytest.mark.parametrize("q", [-0.1, 100.1, math.nan])
def test_percentile_rejects_q_outside_0_to_100(q):
    with pytest.raises(ValueError, match="0..100"):
        stats.percentile([1.0, 2.0], q)


@pytest.mark.parametrize(
    ("values", "expected"),
    [([3.0, 1.0, 2.0], 2.0), ([1.0, 2.0, 3.0, 10.0], 2.5), ([42.0], 42.0)],
)
def test_median(values, expected):
    assert stats.median(values) == expected


def test_mean():
    assert stats.mean([10.0, 20.0, 60.0]) == 30.0
    with pytest.raises(ValueError):
        stats.mean([])


# --- jitter and loss ------------------------------------------------------


@pytest.mark.parametrize(
    ("rtts", "expected"),
    [
        ([10.0, 12.0, 9.0], 2.5),  # |12-10| + |9-12| over 2 steps
        ([10.0, 10.0, 10.0], 0.0),
        ([10.0, None, 14.0, 13.0], 2.5),  # the loss is skipped: 10->14, 14->13
        ([None, 20.0, None, None, 30.0, None], 10.0),
        ([1.0, 2.0], 1.0),
    ],
)
def test_jitter_is_mean_absolute_step_between_answered_probes(rtts, expected):
    assert stats.jitter(rtts) == pytest.approx(expected)


@pytest.mark.parametrize("rtts", [[], [10.0], [None, 10.0, None]])
def test_jitter_needs_two_answered_probes(rtts):
    with pytest.raises(ValueError, match="two"):
        stats.jitter(rtts)


@pytest.mark.parametrize(
    ("rtts", "expected"),
    [
        ([1.0, None, 2.0, None], 50.0),
        ([1.0, 2.0], 0.0),
        ([None], 100.0),
        ([None] + [1.0] * 9, 10.0),
    ],
)
def test_loss_percent(rtts, expected):
    assert stats.loss_percent(rtts) == expected


def test_loss_of_no_probes_is_an_error():
    with pytest.raises(ValueError):
        stats.loss_percent([])


def test_answered_drops_lost_probes_and_keeps_order():
    assert stats.answered([3.0, None, 1.0, None, 2.0]) == [3.0, 1.0, 2.0]


# --- properties -----------------------------------------------------------


@given(st.lists(rtt, min_size=1), percent, percent)
def test_percentile_is_monotone_in_q(values, q1, q2):
    low, high = sorted((q1, q2))
    assert stats.percentile(values, low) <= stats.percentile(values, high)


@given(st.lists(rtt, min_size=1), percent)
def test_percentile_stays_within_the_data(values, q):
    assert min(values) <= stats.percentile(values, q) <= max(values)


@given(st.lists(rtt, min_size=2), st.integers(min_value=1, max_value=99))
def test_percentile_agrees_with_stdlib_inclusive_quantiles(values, k):
    # statistics.quantiles(method="inclusive") is the same definition as numpy's 'linear'.
    cut_points = statistics.quantiles(values, n=100, method="inclusive")
    assert stats.percentile(values, k) == pytest.approx(cut_points[k - 1], rel=1e-9, abs=1e-9)


@given(st.lists(rtt, min_size=1))
def test_median_agrees_with_stdlib(values):
    assert stats.median(values) == pytest.approx(statistics.median(values), rel=1e-9, abs=1e-9)


@given(st.lists(rtt_or_lost).filter(lambda rtts: len(stats.answered(rtts)) >= 2))
def test_jitter_is_never_negative(rtts):
    assert stats.jitter(rtts) >= 0.0


@given(rtt, st.integers(min_value=2, max_value=50))
def test_jitter_of_a_steady_link_is_zero(value, count):
    assert stats.jitter([value] * count) == 0.0


@given(st.lists(rtt_or_lost, min_size=1))
def test_loss_percent_is_between_0_and_100(rtts):
    assert 0.0 <= stats.loss_percent(rtts) <= 100.0
