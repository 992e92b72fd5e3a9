"""Mbit/s and bytes, written once: the conversions every rate in the product goes through."""

from hypothesis import given
from hypothesis import strategies as st
import pytest

from lqos.measure.units import bytes_per_second, mbps


def test_a_megabit_a_second_is_125000_bytes_a_second():
    assert mbps(125_000, 1.0) == pytest.approx(1.0)
    assert mbps(31_250, 0.25) == pytest.approx(1.0)
    assert bytes_per_second(1.0) == pytest.approx(125_000)


@given(st.floats(min_value=1, max_value=1e12), st.floats(min_value=1e-3, max_value=1e4))
def test_a_rate_turned_back_into_bytes_gives_the_bytes_it_came_from(byte_count, seconds):
    assert bytes_per_second(mbps(byte_count, seconds)) * seconds == pytest.approx(byte_count)
