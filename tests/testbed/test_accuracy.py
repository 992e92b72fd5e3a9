"""The test against ground truth on an emulated link: one bloated, one managed (short schedule).

`make accuracy` runs the full matrix with the standard schedule and prints
the table; this keeps two scenarios in every `make test`.
"""

from __future__ import annotations

import pytest

from accuracy import format_report, measure_scenario
from netlab import Link, kernel_can_emulate

# Chosen so every phase's true increase sits well inside one grade (D for the
# bloated link, A for the managed one): a scenario whose truth lies on a grade
# boundary would make "the same grade" a coin toss, whatever the accuracy.
SCENARIOS = {
    "bloated": Link.with_queue_delay("20/5 deep", 20, 5, 250),
    "managed": Link.with_queue_delay("50/10 shallow", 50, 10, 12),
}


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def reports(request):
    reason = kernel_can_emulate()
    if reason:
        pytest.fail(f"the accuracy testbed cannot run here: {reason}")
    measured = measure_scenario(SCENARIOS[request.param], "short", ("cli", "browser"))
    print("\n" + format_report(measured))
    return measured


def test_latency_increase_matches_ping_in_the_same_phase(reports):
    for report in reports:
        for phase in report.phases:
            assert phase.latency_ok(), (f"{report.client} {phase.phase}: test {phase.measured_increase_ms} ms, "
                                        f"ping {phase.truth_increase_ms:.1f} ms\n{format_report(reports)}")


def test_grades_equal_the_grade_of_the_ground_truth(reports):
    for report in reports:
        assert [p.measured_grade for p in report.phases] == [p.truth_grade for p in report.phases], \
            format_report(reports)
        assert report.overall_measured == report.overall_truth


def test_throughput_matches_iperf3_in_each_direction(reports):
    """Download and upload phases; the bidirectional split depends on how ACKs queue and is reported only."""
    for report in reports:
        for phase in report.phases:
            if phase.phase != "bidirectional":
                assert phase.throughput_ok(), f"{report.client} {phase.phase}\n{format_report(reports)}"


def test_the_load_fills_the_buffer_like_four_bulk_flows(reports):
    """The second way a test can be wrong: a load too light to show the link's bloat."""
    for report in reports:
        for phase in report.phases:
            if phase.bulk_increase_ms > 50:
                assert phase.truth_increase_ms >= 0.6 * phase.bulk_increase_ms, format_report(reports)


def test_gaming_persona_grades_a_bloated_link_d_or_worse():
    """DESIGN 5: what the gaming persona feels grades the link as a gamer would.

    Only the bloated link is asserted.  On the managed (shallow tail-drop)
    link the gaming persona's p50 increase is right (~11 ms) but its p95 is
    80-90 ms: a dropped segment of its TCP connection delays the pings behind
    it until the retransmission (head-of-line blocking), which a UDP game
    would feel as a loss, not as delay.  It grades D there today; see the
    household issue's notes.  `tests/testbed/accuracy.py --household` prints both.
    """
    from accuracy import format_household, measure_household

    record = measure_household(SCENARIOS["bloated"], "short")
    print("\n" + format_household(SCENARIOS["bloated"], record))
    gaming = record["result"]["personas"]["gaming"]
    assert gaming["grade"] in ("D", "F"), format_household(SCENARIOS["bloated"], record)
