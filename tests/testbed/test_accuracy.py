"""The test against ground truth on an emulated link: one bloated, one managed (short schedule).

`make accuracy` runs the full matrix with the standard schedule and prints
the table; this keeps two scenarios in every `make test`.
"""

from __future__ import annotations

import pytest

from accuracy import GIGABIT_FIBRE, HOUSEHOLD_SCENARIOS, format_household, format_report, measure_household, measure_scenario
from netlab import Link, kernel_can_emulate

# Every test here holds a client to ping and iperf3 on an emulated link.
# `make test` runs them after the tests that load the cores: the links below
# 100 Mbit/s side by side (marker `testbed`), the gigabit one alone.
pytestmark = pytest.mark.testbed


# Chosen so every phase's true increase sits well inside one grade (D for the
# bloated link, A for the managed one): a scenario whose truth lies on a grade
# boundary would make "the same grade" a coin toss, whatever the accuracy.
SCENARIOS = {
    "bloated": Link.with_queue_delay("20/5 deep", 20, 5, 250),
    "managed": Link.with_queue_delay("50/10 shallow", 50, 10, 12),
}

def require_the_testbed() -> None:
    reason = kernel_can_emulate()
    if reason:
        pytest.fail(f"the accuracy testbed cannot run here: {reason}")


def disagreements(report) -> list[str]:
    """How one client's test differs from ping and iperf3 on its link, one line each; none when it agrees.

    - its latency rise is within max(5 ms, 10%) of ping's in the same phase,
      and its grades (each phase, overall) are those of ping's rise;
    - its download and upload throughput are within 10% of iperf3 -P 4's
      goodput.  The bidirectional split is reported only: upload before
      download (lqos/sessions.py) brought the deep links' downloads there
      from 10-94% of the reference to 89-101% in `make accuracy`, but on the
      shallow links the reference does not hold it steady (four iperf3 flows
      each way, run twice back to back on one 10/2 8 ms link: 5.4 and 7.2
      Mbit/s of download);
    - its load fills the buffer as four bulk flows do (ping's rise in the
      test's phase at least 0.6 of that under iperf3, where iperf3 shows
      bloat): a load too light would hide the link's bloat.
    """
    found = []
    for phase in report.phases:
        where = f"{report.client} {phase.phase}"
        if not phase.latency_ok():
            found.append(f"{where}: test +{phase.measured_increase_ms} ms, ping +{phase.truth_increase_ms:.1f} ms")
        if phase.measured_grade != phase.truth_grade:
            found.append(f"{where}: grade {phase.measured_grade}, ping's {phase.truth_grade}")
        if phase.phase != "bidirectional" and not phase.throughput_ok():
            found.append(f"{where}: throughput {phase.measured_mbit} against iperf3's {phase.truth_goodput_mbit}")
        if phase.bulk_increase_ms > 50 and phase.truth_increase_ms < 0.6 * phase.bulk_increase_ms:
            found.append(f"{where}: the load raised ping {phase.truth_increase_ms:.1f} ms, "
                         f"four bulk flows {phase.bulk_increase_ms:.1f} ms")
    if report.overall_measured != report.overall_truth:
        found.append(f"{report.client} overall: {report.overall_measured}, ping's {report.overall_truth}")
    return found


# `make test` runs the five below 100 Mbit/s four at a time (pytest-xdist, four
# workers that take the fifth from whichever frees first, ``--dist worksteal``).
# The links are slow, and the measuring is in the kernel (tbf,
# ping's timestamps), timed by the server (WebSocket Pings behind the
# probes' echoes) or by the CLI's own process, so four beds at once keep
# their bounds (the largest error in two such runs: the CLI's 20/5 deep
# upload, +6.0 ms against a 23 ms bound).  The household in Chromium is graded
# on the page's own timing: on the shallow line, beside two other beds, its
# game read +15.6 ms at p95 where ping read +4.4 (one run in three), so that
# one runs with the cores to itself (marker `alone`); on the deep line the
# same few milliseconds are inside its 10% bound.  The delay line of the household's shallow link runs at
# real-time priority (netlab.py), so that a browser starting in another bed
# cannot hold it off a core.
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_cli_and_the_page_agree_with_ping_and_iperf3(scenario):
    require_the_testbed()
    reports = measure_scenario(SCENARIOS[scenario], "short", ("cli", "chromium"))
    table = format_report(reports)
    print("\n" + table)
    found = [line for report in reports for line in disagreements(report)]
    assert not found, "\n".join(found) + "\n" + table


@pytest.mark.alone  # both directions at 1 Gbit/s keep the two cores busy on their own
def test_a_gigabit_fibre_line_grades_a_plus_with_the_line_full():
    """1000/1000 Mbit/s, 250 kB FIFO each way, tbf alone: four iperf3 flows raise ping
    by under 2 ms.  The CLI and the page in Chromium (driven bare, as a customer's
    browser runs) must see the same in every phase, and carry at least 90% of
    iperf3's goodput (issue 19's bound) in the download and upload phases.

    iperf3 runs one way at a time here (`make accuracy` runs it both ways at
    once too); each client is held to ping in its own window.  Until tbf's
    bucket grew to a millisecond of the rate (netlab.py), this row swung
    widely on two cores: the CLI read 774 to 937 Mbit/s, Chromium's page 754
    to 882, and Chromium's probes +4 to +6 ms where ping read +0.3 with both
    directions loaded, so the suite held them to 75% and left that phase out.
    In two runs since, every phase of both read 933 to 963 Mbit/s (98% of
    iperf3 at worst) and within 0.2 ms of ping."""
    require_the_testbed()
    reports = measure_scenario(GIGABIT_FIBRE, "short", ("cli", "chromium"), reference_directions=("down", "up"))
    table = format_report(reports)
    print("\n" + table)
    for report in reports:
        assert report.short_of_iperf3(0.90) == [], table
        assert all(phase.latency_ok() and phase.measured_grade == phase.truth_grade for phase in report.phases), table


# The household on the well-managed line of issue 15 (50/10 Mbit/s, 30/15 kB
# FIFOs, 10 ms base RTT: ping rises a few ms under load) and on a deep one.
HOUSEHOLD_EXPECTATIONS = {
    "shallow": (HOUSEHOLD_SCENARIOS[0], ("A+", "A")),
    "deep": (SCENARIOS["bloated"], ("D", "F")),
}


# The household in Chromium on the shallow line runs alone; on the deep one beside the other beds (above).
@pytest.mark.parametrize("fifo, client", [
    ("deep", "cli"), ("shallow", "cli"), ("deep", "chromium"),
    pytest.param("shallow", "chromium", marks=pytest.mark.alone),
])
def test_the_household_grades_a_well_managed_line_a_and_a_deep_fifo_d_or_worse(fifo, client):
    """What each member feels grades the line as its application would.

    On the shallow line every member whose grade counts gets A or A+, and so
    does the household: streaming is judged on its segments arriving in
    time, not on the queue behind its own bursts (which read +476 ms at p95
    on this line), and the game and the call echo on connections of their
    own.  On the deep one the game and the household get D or F, and the
    game and the call are held to ping in the same window (their p95 rise
    within max(5 ms, 10%)).  Not on the shallow one here: over the short
    schedule's 8 s, the p95 of 80 samples from any two 10 Hz samplers on that
    link differs by up to 5 ms (ping +7.5 ms, the game +2.6 in one run).
    `make accuracy` judges every household link on the standard schedule,
    with irtt's view beside ping's.
    """
    link, expected = HOUSEHOLD_EXPECTATIONS[fifo]
    report = measure_household(link, "short", client)
    table = format_household([report])
    print("\n" + table)
    personas = report.result["personas"]
    assert report.result["overall"]["grade"] in expected, table
    if fifo == "shallow":
        assert all(score["grade"] in expected for score in personas.values() if score["sets_household_grade"]), table
    else:
        assert personas["gaming"]["grade"] in expected, table
    if fifo == "deep":
        assert all(member.latency_ok() for member in report.members), table
    assert report.streaming_ok(), table
