"""The responsiveness draft's arithmetic (lqos/rpm/responsiveness.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lqos.rpm.responsiveness import Probes, is_stable, rpm, trimmed_mean

latencies = st.lists(st.floats(min_value=0.01, max_value=10_000), min_size=1, max_size=200)


def test_the_trimmed_mean_drops_the_slowest_five_percent():
    values = [10.0] * 19 + [1000.0]
    assert trimmed_mean(values) == 10.0
    assert trimmed_mean([7.0]) == 7.0
    assert trimmed_mean([]) is None


@given(latencies)
def test_the_trimmed_mean_lies_between_the_fastest_and_the_median_or_above(values):
    mean = trimmed_mean(values)
    assert min(values) - 1e-9 <= mean <= sum(values) / len(values) + 1e-6


def test_a_flat_series_is_stable_once_there_are_enough_intervals():
    assert not is_stable([100.0] * 6)
    assert is_stable([100.0] * 7)


def test_a_growing_series_is_not_stable_and_a_settled_one_becomes_so():
    growing = [10.0 * i for i in range(1, 12)]
    assert not is_stable(growing)
    assert is_stable(growing + [110.0] * 7)


@given(st.lists(st.floats(min_value=1, max_value=1e6), min_size=7, max_size=40), st.floats(min_value=0.01, max_value=100))
def test_stability_does_not_depend_on_the_unit(series, scale):
    assert is_stable(series) == is_stable([value * scale for value in series])


def test_rpm_combines_foreign_and_loaded_as_the_draft_says():
    probes = Probes()
    for _ in range(20):
        probes.add_foreign(tcp_ms=10.0, tls_ms=20.0, http_ms=30.0)
        probes.loaded.append(100.0)
    summary = probes.summary()
    assert summary["foreign_rpm"] == pytest.approx(60000 / 20)
    assert summary["loaded_rpm"] == pytest.approx(600)
    assert summary["rpm"] == pytest.approx((3000 + 600) / 2)
    assert summary["probes"] == {"foreign": 20, "self": 20}


def test_no_rpm_without_both_kinds_of_probe():
    probes = Probes()
    probes.loaded.append(50.0)
    assert probes.summary()["rpm"] is None and probes.summary()["loaded_rpm"] == 1200
    assert rpm(0) is None
