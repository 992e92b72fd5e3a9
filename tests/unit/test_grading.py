"""Unit tests of lqos.measure.grading and lqos.measure.aim: hand-checked tables plus properties."""

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lqos.measure import aim
from lqos.measure.grading import (
    ACK_AGREEMENT_MS,
    GRADES,
    LOADED_PHASES,
    PHASES,
    GradeThresholds,
    ProbeSample,
    ThroughputWindow,
    compute_result,
    grade_for_increase,
    grade_rank,
    is_worse,
    worst_grade,
)

STEADY = 20  # answered probes per phase in the hand-made tests (short schedule: ~2 s)


def make_probes(rtts_by_phase):
    """ProbeSamples in schedule order, one every 100 ms; None = lost."""
    probes = []
    for phase in PHASES:
        for rtt in rtts_by_phase.get(phase, []):
            seq = len(probes)
            probes.append(ProbeSample(seq=seq, phase=phase, sent_ms=seq * 100.0, rtt_ms=rtt))
    return probes


def steady_test_with(**rtts_by_phase):
    """Every graded phase answers STEADY probes at 10 ms unless given otherwise."""
    rtts = {phase: [10.0] * STEADY for phase in ("baseline", *LOADED_PHASES)}
    rtts.update(rtts_by_phase)
    return make_probes(rtts)


def steady_test(baseline=10.0, download=10.0, upload=10.0, bidirectional=10.0):
    """STEADY answered probes per phase at one fixed RTT each."""
    return steady_test_with(
        baseline=[baseline] * STEADY,
        download=[download] * STEADY,
        upload=[upload] * STEADY,
        bidirectional=[bidirectional] * STEADY,
    )


def windows(phase, direction, byte_counts):
    return [
        ThroughputWindow(phase=phase, start_ms=i * 250.0, direction=direction, bytes=count)
        for i, count in enumerate(byte_counts)
    ]


# --- grades ---------------------------------------------------------------


def test_grades_are_ordered_best_to_worst():
    assert GRADES == ("A+", "A", "B", "C", "D", "F")
    assert [grade_rank(g) for g in GRADES] == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("grades", "worst"),
    [(["A+"], "A+"), (["A", "C", "B"], "C"), (["F", "A+"], "F"), (["B", "B"], "B")],
)
def test_worst_grade(grades, worst):
    assert worst_grade(grades) == worst


def test_worst_of_no_grades_and_unknown_grades_are_errors():
    with pytest.raises(ValueError):
        worst_grade([])
    with pytest.raises(ValueError, match="unknown grade"):
        grade_rank("E")


def test_is_worse():
    assert is_worse("B", "A")
    assert not is_worse("A", "B")
    assert not is_worse("C", "C")


# --- grade for an increase: the grade table and its boundaries ------------


@pytest.mark.parametrize(
    ("increase_ms", "grade"),
    [
        (-12.0, "A+"),  # loaded faster than idle still counts as A+
        (0.0, "A+"),
        (4.999, "A+"),
        (5.0, "A"),
        (29.999, "A"),
        (30.0, "B"),
        (35.0, "B"),
        (59.999, "B"),
        (60.0, "C"),
        (199.999, "C"),
        (200.0, "D"),
        (399.999, "D"),
        (400.0, "F"),
        (5000.0, "F"),
    ],
)
def test_grade_for_increase_default_table(increase_ms, grade):
    assert grade_for_increase(increase_ms) == grade


def test_grade_for_increase_uses_the_given_thresholds():
    strict = GradeThresholds.from_sequence([1, 2, 3, 4, 5])
    assert [grade_for_increase(x, strict) for x in (0.5, 1, 2, 3, 4, 5)] == list(GRADES)


@pytest.mark.parametrize("increase_ms", [math.nan, math.inf])
def test_grade_for_increase_rejects_non_finite(increase_ms):
    with pytest.raises(ValueError):
        grade_for_increase(increase_ms)


# --- thresholds -----------------------------------------------------------


def test_default_thresholds_are_the_libreqos_table():
    assert GradeThresholds().as_tuple() == (5.0, 30.0, 60.0, 200.0, 400.0)


def test_thresholds_from_config_strings():
    text = "5,30,60,200,400"
    assert GradeThresholds.from_sequence(text.split(",")) == GradeThresholds()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([5, 30, 30, 200, 400], "strictly increasing"),
        ([5, 60, 30, 200, 400], "strictly increasing"),
        ([-1, 30, 60, 200, 400], "negative"),
        ([5, 30, 60, 200, math.nan], "finite"),
        ([5, 30, 60, 200, math.inf], "finite"),
        ([5, 30, 60, 200], "expected 5"),
        ([5, 30, 60, 200, 400, 800], "expected 5"),
        (["5", "x", "60", "200", "400"], "numbers"),
    ],
)
def test_bad_thresholds_are_rejected_with_a_clear_message(values, message):
    with pytest.raises(ValueError, match=message):
        GradeThresholds.from_sequence(values)


def test_zero_is_an_allowed_first_threshold():
    assert grade_for_increase(0.0, GradeThresholds(0, 30, 60, 200, 400)) == "A"


# --- input model ----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seq": -1},
        {"seq": True},
        {"seq": 1.5},
        {"phase": "warmup"},
        {"sent_ms": math.nan},
        {"rtt_ms": -0.1},
        {"rtt_ms": math.inf},
        {"rtt_ms": "12"},
    ],
)
def test_probe_sample_rejects_bad_fields(kwargs):
    fields = {"seq": 0, "phase": "baseline", "sent_ms": 0.0, "rtt_ms": 10.0, **kwargs}
    with pytest.raises(ValueError):
        ProbeSample(**fields)


def test_lost_probe():
    assert ProbeSample(0, "download", 0.0, None).lost
    assert not ProbeSample(0, "download", 0.0, 0.0).lost


@pytest.mark.parametrize(
    "kwargs",
    [{"phase": "nope"}, {"direction": "sideways"}, {"bytes": -1}, {"bytes": 1.5}, {"start_ms": math.inf}],
)
def test_throughput_window_rejects_bad_fields(kwargs):
    fields = {"phase": "download", "start_ms": 0.0, "direction": "down", "bytes": 0, **kwargs}
    with pytest.raises(ValueError):
        ThroughputWindow(**fields)


def test_window_rate_is_megabits_per_second_over_250_ms():
    assert ThroughputWindow("download", 0.0, "down", 31_250).mbps == pytest.approx(1.0)


# --- compute_result: hand-checked examples --------------------------------


def test_baseline_10_download_45_is_grade_b():
    result = compute_result(steady_test(baseline=10.0, download=45.0), [])
    download = result["phases"]["download"]
    assert result["baseline"]["median_ms"] == 10.0
    assert download["p50_ms"] == 45.0
    assert download["latency_increase_ms"] == 35.0
    assert download["grade"] == "B"
    assert result["overall"] == {
        "grade": "B",
        "phase": "download",
        "reason": None,
        "ungraded_phases": [],
        "caveats": [],
    }
    assert result["reliable"] is True


@pytest.mark.parametrize(
    ("loaded_ms", "grade"),
    [(14.9, "A+"), (15.0, "A"), (40.0, "B"), (70.0, "C"), (210.0, "D"), (410.0, "F")],
)
def test_phase_grade_boundaries_through_compute_result(loaded_ms, grade):
    # Baseline 10 ms: the loaded RTTs above sit at increases 4.9, 5, 30, 60, 200, 400.
    result = compute_result(steady_test(baseline=10.0, upload=loaded_ms), [])
    assert result["phases"]["upload"]["grade"] == grade


def test_overall_is_the_worst_phase_and_names_it():
    result = compute_result(steady_test(download=20.0, upload=300.0, bidirectional=80.0), [])
    grades = {name: phase["grade"] for name, phase in result["phases"].items()}
    assert grades == {"download": "A", "upload": "D", "bidirectional": "C"}
    assert result["overall"]["grade"] == "D"
    assert result["overall"]["phase"] == "upload"


def test_a_tie_names_the_first_phase_of_the_schedule():
    result = compute_result(steady_test(download=50.0, upload=50.0, bidirectional=12.0), [])
    assert result["overall"]["grade"] == "B"
    assert result["overall"]["phase"] == "download"


def test_phase_percentiles_mean_and_jitter():
    ramp = [float(ms) for ms in range(20, 40)]  # 20..39 ms
    result = compute_result(steady_test_with(download=ramp), [])
    download = result["phases"]["download"]
    # 20 values, rank = 19 * q / 100 above 20 ms.
    assert download["p25_ms"] == pytest.approx(24.75)
    assert download["p50_ms"] == pytest.approx(29.5)
    assert download["p75_ms"] == pytest.approx(34.25)
    assert download["p90_ms"] == pytest.approx(37.1)
    assert download["p95_ms"] == pytest.approx(38.05)
    assert download["p99_ms"] == pytest.approx(38.81)
    assert download["mean_ms"] == pytest.approx(29.5)
    assert download["jitter_ms"] == pytest.approx(1.0)
    assert download["latency_increase_ms"] == pytest.approx(19.5)
    assert download["grade"] == "A"


def test_jitter_follows_probe_order_not_upload_order():
    probes = make_probes({"baseline": [10.0, 20.0] * 10})
    shuffled = probes[1::2] + probes[0::2]  # all 20 ms probes first
    result = compute_result(shuffled, [])
    assert result["baseline"]["jitter_ms"] == pytest.approx(10.0)


def test_the_grade_uses_the_servers_timing_and_shows_what_the_client_added():
    """A browser that took 15 ms to hand each echo to its page must not lose a grade for it."""
    probes = [
        ProbeSample(p.seq, p.phase, p.sent_ms, p.rtt_ms + (15.0 if p.phase == "download" else 0.5), p.rtt_ms)
        for p in steady_test(baseline=10.0, download=12.0)
    ]
    result = compute_result(probes, [])
    download = result["phases"]["download"]
    assert download["latency_increase_ms"] == pytest.approx(2.0)
    assert download["grade"] == "A+"
    assert download["server_timed"] == STEADY
    assert download["client_delay_p50_ms"] == pytest.approx(15.0)
    assert result["baseline"]["client_delay_p50_ms"] == pytest.approx(0.5)
    client_timed = compute_result([ProbeSample(p.seq, p.phase, p.sent_ms, p.rtt_ms) for p in probes], [])
    assert client_timed["phases"]["download"]["latency_increase_ms"] == pytest.approx(16.5)
    assert client_timed["phases"]["download"]["client_delay_p50_ms"] is None


def astuple_of(probe):
    return (probe.seq, probe.phase, probe.sent_ms, probe.rtt_ms, probe.server_rtt_ms, probe.ack_rtt_ms)


def timed_probes(network_ms, pong_hold_ms, ack_ms=None):
    """A steady test whose Pongs come *pong_hold_ms(phase, i)* after the network's round trip.

    *network_ms* maps a phase to its round trip; the kernel's acknowledgement
    times *ack_ms(phase)* when given, else the network's.
    """
    probes = []
    for phase in ("baseline", *LOADED_PHASES):
        for i in range(STEADY):
            network = network_ms[phase]
            pong = network + pong_hold_ms(phase, i)
            ack = network if ack_ms is None else ack_ms(phase)
            probes.append(ProbeSample(len(probes), phase, len(probes) * 100.0, pong + 1.0, pong, ack))
    return probes


def firefox_hold(phase, i):
    """Firefox's network thread on a gigabit download: most Pongs 4 ms late, some on time."""
    return 0.1 if phase != "download" or i % 5 == 0 else 4.0


def test_the_kernels_acknowledgement_grades_what_a_busy_browser_held_back():
    network = {"baseline": 10.0, "download": 10.3, "upload": 10.2, "bidirectional": 10.4}
    result = compute_result(timed_probes(network, firefox_hold), [])
    download = result["phases"]["download"]
    assert result["graded_by"] == "acknowledgement"
    assert download["latency_increase_ms"] == pytest.approx(0.3)
    assert download["grade"] == "A+"
    assert download["ack_timed"] == STEADY
    assert download["client_delay_p50_ms"] == pytest.approx(5.0)  # the echo's 1 ms and the Pong's 4
    pong_only = compute_result([ProbeSample(*astuple_of(p)[:5]) for p in timed_probes(network, firefox_hold)], [])
    assert pong_only["graded_by"] == "pong"
    assert pong_only["phases"]["download"]["latency_increase_ms"] == pytest.approx(4.2)


def test_one_pong_close_to_its_acknowledgement_per_phase_shows_the_same_path():
    """A browser that held every Pong of the download but one by 8 ms is still graded by the kernel."""
    network = {"baseline": 10.0, "download": 10.3, "upload": 10.2, "bidirectional": 10.4}
    hold = lambda phase, i: 8.0 if phase == "download" and i else 0.1  # noqa: E731
    result = compute_result(timed_probes(network, hold), [])
    assert result["graded_by"] == "acknowledgement"
    assert result["phases"]["download"]["latency_increase_ms"] == pytest.approx(0.3)


def test_behind_a_proxy_the_acknowledgement_is_not_trusted():
    """A proxy ends TCP: its acknowledgements time the hop to it, the Pongs the whole path."""
    network = {"baseline": 10.0, "download": 60.0, "upload": 10.0, "bidirectional": 60.0}
    result = compute_result(timed_probes(network, lambda phase, i: 0.1, ack_ms=lambda phase: 0.05), [])
    assert result["graded_by"] == "pong"
    assert result["phases"]["download"]["latency_increase_ms"] == pytest.approx(50.0)
    assert result["overall"]["grade"] == "B"


def test_a_client_close_to_its_proxy_is_off_by_less_than_the_agreement_bound():
    network = {"baseline": 1.5, "download": 1.5, "upload": 1.5, "bidirectional": 1.5}
    result = compute_result(timed_probes(network, lambda phase, i: 0.1, ack_ms=lambda phase: 0.05), [])
    assert result["graded_by"] == "acknowledgement"
    assert abs(result["phases"]["download"]["latency_increase_ms"]) < ACK_AGREEMENT_MS



@given(st.lists(st.tuples(st.sampled_from(("baseline", *LOADED_PHASES)), st.floats(0, 500), st.floats(0, 50),
                          st.booleans()), min_size=1, max_size=80))
def test_acknowledgements_only_ever_lower_what_the_pongs_would_grade(rows):
    """Each probe: (phase, Pong ms, how much earlier its acknowledgement came, whether it has one)."""
    probes = [ProbeSample(i, phase, i * 100.0, pong + 1.0, pong, max(pong - earlier, 0.0) if acked else None)
              for i, (phase, pong, earlier, acked) in enumerate(rows)]
    with_acks = compute_result(probes, [])
    pongs_only = compute_result([ProbeSample(*astuple_of(p)[:5]) for p in probes], [])
    if with_acks["graded_by"] == "pong":
        for phase in LOADED_PHASES:
            pongs_only["phases"][phase].pop("ack_timed")
            with_acks["phases"][phase].pop("ack_timed")
        assert with_acks["phases"] == pongs_only["phases"]
    else:
        assert with_acks["graded_by"] == "acknowledgement"
        for phase in ("baseline", *LOADED_PHASES):
            graded = [p for p in probes if p.phase == phase]
            if graded:
                figures = with_acks["phases"][phase] if phase != "baseline" else with_acks["baseline"]
                before = pongs_only["phases"][phase] if phase != "baseline" else pongs_only["baseline"]
                key = "median_ms" if phase == "baseline" else "p50_ms"
                assert figures[key] <= before[key] + 1e-9


def test_lost_probes_never_count_as_rtt():
    baseline = [10.0] * STEADY + [None] * 3
    download = [40.0] * STEADY + [None] * 2
    result = compute_result(steady_test_with(baseline=baseline, download=download), [])
    assert result["baseline"] == {
        "median_ms": 10.0,
        "jitter_ms": 0.0,
        "samples": STEADY,
        "sent": STEADY + 3,
        "lost": 3,
        "loss_percent": pytest.approx(300 / 23),
        "server_timed": 0,
        "ack_timed": 0,
        "client_delay_p50_ms": None,
        "reliable": True,
        "reason": None,
    }
    download_phase = result["phases"]["download"]
    assert download_phase["p99_ms"] == 40.0
    assert download_phase["mean_ms"] == 40.0
    assert (download_phase["samples"], download_phase["sent"], download_phase["lost"]) == (20, 22, 2)
    assert download_phase["loss_percent"] == pytest.approx(100 * 2 / 22)
    assert download_phase["grade"] == "B"


def test_warmups_are_not_graded():
    probes = steady_test_with(download_warmup=[900.0] * STEADY, upload_warmup=[None] * STEADY)
    result = compute_result(probes, [])
    assert set(result["phases"]) == set(LOADED_PHASES)
    assert result["overall"]["grade"] == "A+"
    assert result["use_cases"]["inputs"]["packet_loss_percent"] == 0.0


def test_too_few_samples_make_a_phase_unreliable_and_ungraded():
    result = compute_result(steady_test_with(upload=[500.0] * 9), [])
    upload = result["phases"]["upload"]
    assert upload["reliable"] is False
    assert upload["grade"] is None
    assert "only 9 answered probes, need at least 10" in upload["reason"]
    assert upload["p50_ms"] == 500.0  # the figures are still reported
    assert result["overall"]["grade"] == "A+"  # set by the reliable phases only
    assert result["overall"]["ungraded_phases"] == ["upload"]


def test_too_much_loss_makes_a_phase_unreliable():
    lossy = [30.0] * 20 + [None] * 6  # 6 / 26 = 23 % lost
    result = compute_result(steady_test_with(download=lossy), [])
    download = result["phases"]["download"]
    assert download["reliable"] is False
    assert download["grade"] is None
    assert "loss 23.1% is above 20%" in download["reason"]


def test_loss_exactly_at_the_limit_is_still_reliable():
    lossy = [30.0] * 16 + [None] * 4  # exactly 20 %
    result = compute_result(steady_test_with(download=lossy), [])
    assert result["phases"]["download"]["reliable"] is True
    assert result["phases"]["download"]["grade"] == "A"


def test_limits_are_configurable():
    probes = steady_test_with(download=[30.0] * 5 + [None] * 5)
    relaxed = compute_result(probes, [], min_samples=5, max_loss_percent=50)
    assert relaxed["phases"]["download"]["grade"] == "A"
    assert relaxed["limits"] == {"min_samples": 5, "max_loss_percent": 50}
    with pytest.raises(ValueError):
        compute_result(probes, [], min_samples=0)
    with pytest.raises(ValueError):
        compute_result(probes, [], max_loss_percent=101)


def test_a_phase_without_probes_is_unreliable():
    probes = make_probes({"baseline": [10.0] * STEADY, "download": [20.0] * STEADY})
    result = compute_result(probes, [])
    for phase in ("upload", "bidirectional"):
        assert result["phases"][phase]["reason"] == "no probes were sent"
        assert result["phases"][phase]["p50_ms"] is None
        assert result["phases"][phase]["loss_percent"] is None
    assert result["overall"]["grade"] == "A"


def test_unreliable_baseline_makes_the_whole_result_unreliable():
    result = compute_result(steady_test_with(baseline=[10.0] * 5, download=[400.0] * STEADY), [])
    assert result["reliable"] is False
    assert result["baseline"]["reliable"] is False
    assert result["overall"]["grade"] is None
    assert result["reason"].startswith("baseline unreliable: only 5 answered probes")
    assert all(phase["grade"] is None for phase in result["phases"].values())
    assert result["use_cases"]["ratings"] == {"streaming": None, "gaming": None, "video_calls": None}


def test_no_reliable_loaded_phase_means_no_overall_grade():
    result = compute_result(make_probes({"baseline": [10.0] * STEADY}), [])
    assert result["reliable"] is False
    assert result["overall"]["grade"] is None
    assert result["overall"]["phase"] is None
    assert "no loaded phase" in result["reason"]
    assert result["overall"]["ungraded_phases"] == list(LOADED_PHASES)


def test_throughput_is_the_median_window_per_direction_with_its_count():
    mbps_bytes = 31_250  # 1 Mbit/s in a 250 ms window
    flows = (
        windows("download", "down", [m * mbps_bytes for m in (90, 100, 95, 10)])
        + windows("download", "up", [mbps_bytes])
        + windows("bidirectional", "down", [50 * mbps_bytes] * 3)
        + windows("bidirectional", "up", [20 * mbps_bytes] * 3)
        + windows("download_warmup", "down", [1])
    )
    result = compute_result(steady_test(), flows)
    phases = result["phases"]
    assert phases["download"]["throughput_mbps"] == {
        "download": {"median": pytest.approx(92.5), "windows": 4},
        "upload": {"median": pytest.approx(1.0), "windows": 1},
    }
    assert phases["upload"]["throughput_mbps"]["upload"] == {"median": None, "windows": 0}
    assert phases["bidirectional"]["throughput_mbps"]["download"]["median"] == pytest.approx(50.0)
    assert phases["bidirectional"]["throughput_mbps"]["upload"]["median"] == pytest.approx(20.0)


def test_result_records_thresholds_and_is_strict_json():
    result = compute_result(steady_test(), [], GradeThresholds(1, 2, 3, 4, 5))
    assert result["grade_thresholds_ms"] == [1, 2, 3, 4, 5]
    assert json.loads(json.dumps(result, allow_nan=False))["overall"]["grade"] == "A+"


def test_custom_thresholds_change_the_grade():
    result = compute_result(steady_test(download=45.0), [], GradeThresholds(1, 2, 3, 4, 5))
    assert result["overall"]["grade"] == "F"


# --- use cases: Cloudflare AIM tables -------------------------------------


@pytest.mark.parametrize(
    ("metric", "value", "points"),
    [
        ("latency", 9.99, 20),
        ("latency", 10, 10),  # a value on a breakpoint takes the bucket above
        ("latency", 20, 5),
        ("latency", 50, 0),
        ("latency", 100, -10),
        ("latency", 500, -20),
        ("loaded_latency_increase", 0, 20),
        ("loaded_latency_increase", 499, -10),
        ("jitter", 9, 10),
        ("jitter", 10, 5),
        ("jitter", 20, 0),
        ("jitter", 100, -10),
        ("jitter", 500, -20),
        ("packet_loss", 0.0, 10),
        ("packet_loss", 0.01, 5),
        ("packet_loss", 0.05, 0),
        ("packet_loss", 0.25, -10),
        ("packet_loss", 0.5, -20),
        ("download", 0.5e6, 0),
        ("download", 1e6, 5),
        ("download", 10e6, 10),
        ("download", 50e6, 20),
        ("download", 100e6, 30),
        ("upload", 99e6, 20),
    ],
)
def test_aim_metric_points(metric, value, points):
    assert aim.METRIC_SCALES[metric].points_for(value) == points


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        # 20 + 10 + 30 + 20 = 80 streaming; 50 gaming; 20 + 10 + 10 + 20 = 60 video calls
        (
            aim.AimInputs(latency=5, jitter=2, packet_loss=0, loaded_latency_increase=3, download=200e6),
            {"streaming": ("great", 80), "gaming": ("great", 50), "video_calls": ("great", 60)},
        ),
        # 5 + 5 + 10 + 5 = 25 streaming; 15 gaming; 5 + 5 + 5 + 5 = 20 video calls
        (
            aim.AimInputs(latency=30, jitter=15, packet_loss=0.02, loaded_latency_increase=25, download=20e6),
            {"streaming": ("average", 25), "gaming": ("average", 15), "video_calls": ("average", 20)},
        ),
        # everything awful: sums below zero are clamped to 0
        (
            aim.AimInputs(latency=600, jitter=600, packet_loss=0.6, loaded_latency_increase=600, download=0),
            {"streaming": ("bad", 0), "gaming": ("bad", 0), "video_calls": ("bad", 0)},
        ),
        # 10 + 10 + 10 = 30 gaming: exactly on the "great" breakpoint
        (
            aim.AimInputs(latency=10, jitter=10, packet_loss=0, loaded_latency_increase=10, download=1e6),
            {"streaming": ("average", 35), "gaming": ("great", 30), "video_calls": ("good", 35)},
        ),
    ],
)
def test_aim_use_case_ratings(inputs, expected):
    ratings = aim.rate_use_cases(inputs)
    assert {name: (r["rating"], r["points"]) for name, r in ratings.items()} == expected


def test_aim_missing_metric_leaves_its_use_cases_unrated():
    ratings = aim.rate_use_cases(aim.AimInputs(latency=5, jitter=2, loaded_latency_increase=3))
    assert ratings["streaming"] is None  # needs download
    assert ratings["gaming"]["points_by_metric"]["packet_loss"] == 0  # Cloudflare's default
    assert ratings["video_calls"]["points"] == 50  # 20 + 10 + 0 + 20
    assert ratings["video_calls"]["rating"] == "great"


def test_use_cases_in_compute_result():
    probes = steady_test_with(
        baseline=[12.0] * 19 + [None],  # 12 ms idle: latency 10 points, jitter 0 -> 10 points
        download=[40.0] * STEADY,  # +28 ms
        bidirectional=[70.0] * STEADY,  # +58 ms, the worst: 0 points
    )
    flows = windows("download", "down", [60 * 31_250] * 8) + windows("upload", "up", [5 * 31_250] * 8)
    uses = compute_result(probes, flows)["use_cases"]
    assert uses["inputs"] == {
        "latency_ms": 12.0,
        "jitter_ms": 0.0,
        "packet_loss_percent": pytest.approx(100 / 80),  # 1 lost of 80 sent -> 5 points
        "probes_sent": 80,
        "loaded_latency_increase_ms": 58.0,
        "loaded_phase": "bidirectional",
        "download_mbps": pytest.approx(60.0),  # 20 points
        "upload_mbps": pytest.approx(5.0),
    }
    ratings = uses["ratings"]
    assert (ratings["streaming"]["points"], ratings["streaming"]["rating"]) == (35, "average")
    assert (ratings["gaming"]["points"], ratings["gaming"]["rating"]) == (15, "average")
    assert (ratings["video_calls"]["points"], ratings["video_calls"]["rating"]) == (25, "good")


# --- properties -----------------------------------------------------------

increase = st.floats(min_value=-1_000.0, max_value=10_000.0, allow_nan=False)
bound = st.floats(min_value=0.0, max_value=1_000.0, allow_nan=False)
threshold_lists = st.lists(bound, min_size=5, max_size=5, unique=True).map(sorted)
thresholds = threshold_lists.map(GradeThresholds.from_sequence)


@given(increase, increase, thresholds)
def test_more_latency_never_gives_a_better_grade(a, b, limits):
    less, more = sorted((a, b))
    assert grade_rank(grade_for_increase(more, limits)) >= grade_rank(grade_for_increase(less, limits))


@given(increase, threshold_lists, threshold_lists)
def test_raising_thresholds_never_makes_a_grade_worse(x, first, second):
    # Elementwise min/max of two strictly increasing lists are strictly increasing too.
    lower = GradeThresholds.from_sequence([min(p) for p in zip(first, second, strict=True)])
    higher = GradeThresholds.from_sequence([max(p) for p in zip(first, second, strict=True)])
    assert grade_rank(grade_for_increase(x, higher)) <= grade_rank(grade_for_increase(x, lower))


@given(increase, threshold_lists, st.integers(min_value=0, max_value=4), st.floats(0.0, 500.0))
def test_raising_any_single_threshold_never_makes_a_grade_worse(x, bounds, index, raise_by):
    raised = list(bounds)
    ceiling = bounds[index + 1] if index < 4 else math.inf
    raised[index] = min(bounds[index] + raise_by, math.nextafter(ceiling, -math.inf))
    before = grade_for_increase(x, GradeThresholds.from_sequence(bounds))
    after = grade_for_increase(x, GradeThresholds.from_sequence(raised))
    assert not is_worse(after, before)


phase_rtts = st.lists(
    st.one_of(st.none(), st.floats(min_value=0.0, max_value=2_000.0, allow_nan=False)),
    max_size=40,
)


@given(phase_rtts, phase_rtts, phase_rtts, phase_rtts, phase_rtts)
def test_overall_is_the_worst_graded_phase(baseline, download, upload, bidirectional, warmup):
    probes = make_probes(
        {
            "baseline": baseline,
            "download_warmup": warmup,
            "download": download,
            "upload": upload,
            "bidirectional": bidirectional,
        }
    )
    result = compute_result(probes, [])
    json.dumps(result, allow_nan=False)
    grades = [p["grade"] for p in result["phases"].values() if p["grade"] is not None]
    overall = result["overall"]
    if grades:
        assert overall["grade"] == worst_grade(grades)
        assert result["phases"][overall["phase"]]["grade"] == overall["grade"]
    else:
        assert overall["grade"] is None and overall["reason"]
    assert result["reliable"] == (overall["grade"] is not None)
    for phase in result["phases"].values():
        assert phase["samples"] + phase["lost"] == phase["sent"]
        assert (phase["grade"] is None) or phase["reliable"]


@given(st.floats(0.0, 1_000.0), st.floats(0.0, 1_000.0), st.floats(0.0, 1_000.0))
def test_slower_loaded_phase_never_grades_better(baseline, faster, extra):
    graded = [
        compute_result(steady_test(baseline=baseline, download=rtt), [])["phases"]["download"]["grade"]
        for rtt in (faster, faster + extra)
    ]
    assert not is_worse(graded[0], graded[1])


@given(st.floats(0.0, 1_000.0), st.floats(0.0, 1_000.0))
def test_more_loaded_latency_never_raises_aim_points(less, extra):
    def points(lli):
        inputs = aim.AimInputs(latency=10, jitter=1, packet_loss=0, loaded_latency_increase=lli, download=1e8)
        return [r["points"] for r in aim.rate_use_cases(inputs).values()]

    assert all(a >= b for a, b in zip(points(less), points(less + extra), strict=True))
