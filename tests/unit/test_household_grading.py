"""Household scoring: each member on what its application feels, fairness, the household grade."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lqos.measure.grading import GRADES, grade_rank
from lqos.measure.household_grading import (
    PersonaSamples, held_by_device, jain_index, score_household, score_persona,
)
from lqos.personas.model import PersonaScoring
from lqos.plugins.lqos_household import gaming, streaming, updates, video_call

PERSONAS = {p.name: p for p in (streaming, gaming, video_call, updates)}
LOAD_SECONDS = 8.0


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


def score(persona, member_samples, load_seconds=LOAD_SECONDS):
    return score_persona(persona, member_samples, load_seconds)


def test_gaming_graded_on_p95_increase_with_its_own_thresholds():
    result = score(gaming, samples(load_ms=(20.0,)))
    assert result["latency"]["increase_p95_ms"] == 10.0
    assert result["grade"] == "A"  # gaming: A+ < 5, A < 15
    assert result["reason"] == ("gaming: Game updates arrived up to 10 ms later than on an idle line "
                                "while the household was busy (95th percentile)")
    assert result["throughput"]["down_median_mbps"] == pytest.approx(1.5)
    assert result["throughput"]["up_median_mbps"] == pytest.approx(0.75)


def test_no_rise_is_said_plainly():
    assert score(gaming, samples(load_ms=(10.2,)))["reason"] == (
        "gaming: Game updates arrived as fast as on an idle line while the household was busy")


def test_same_delay_grades_gaming_worse_than_video():
    gaming_grade = score(gaming, samples(load_ms=(80.0,)))["grade"]
    video_grade = score(video_call, samples(load_ms=(80.0,), down_mbps=2.5))["grade"]
    assert (gaming_grade, video_grade) == ("D", "C")


def test_missed_deadlines_drop_the_grade_and_say_what_the_player_would_feel():
    assert score(gaming, samples(lost=1))["grade"] == "D"  # 1.25% > 1%
    lossy = score(gaming, samples(lost=8))
    assert lossy["grade"] == "F"  # 10% > 2 x 1%
    assert lossy["reason"] == "gaming: 10.0% of game updates were lost or later than 250 ms: the game would stutter"
    nearly_all_lost = score(gaming, samples(lost=78))  # 2 of 80 answered: too few for a rise, not for a grade
    assert nearly_all_lost["grade"] == "F" and "97.5% of game updates" in nearly_all_lost["reason"]


def test_streaming_is_judged_on_its_segments_not_its_latency():
    """A segment that arrives within its 5 s is not felt, whatever the delay of any one packet."""
    result = score(streaming, samples(load_ms=(900.0,), down_mbps=5, bursts=[(0, 1.9), (1, 2.1)]))
    assert result["grade"] == "A+"  # the slowest used 2.1 of its 5 s
    assert result["segments"]["late"] == 0 and result["segments"]["startup_s"] == 1.9
    assert result["reason"] == "streaming: all 2 video segments arrived in time: the slowest took 2.1 s of the 5 s it had"
    assert score(streaming, samples(down_mbps=5, bursts=[(0, 1.1), (1, 3.5)]))["grade"] == "A"
    assert score(streaming, samples(down_mbps=5, bursts=[(0, 1.1), (1, 4.5)]))["grade"] == "B"


def test_each_late_segment_is_a_pause():
    segments = [(0, 1.0), (1, 6.0), (2, 1.0), (3, 1.0), (4, 7.5), (5, 1.0)]
    result = score(streaming, samples(down_mbps=5, bursts=segments), load_seconds=30)
    assert result["reason"] == "streaming: 2 of 6 video segments arrived late: the picture would have paused twice"
    assert result["grade"] == "D"  # a third of the segments: above 20%, not above 50%
    one_late = score(streaming, samples(down_mbps=5, bursts=segments[:1] + [(1, 6.0)] + [(n, 1.0) for n in range(2, 6)]),
                     load_seconds=30)
    assert one_late["grade"] == "C" and one_late["reason"].endswith("paused once")


def test_a_segment_that_never_arrived_is_late_only_if_it_was_due_within_the_test():
    due = score(streaming, samples(down_mbps=5, bursts=[(0, None)]), load_seconds=8)
    assert due["grade"] == "F" and due["segments"]["never_arrived"] == 1
    cut_short = score(streaming, samples(down_mbps=5, bursts=[(0, 1.2), (1, None)]), load_seconds=8)
    assert cut_short["segments"]["count"] == 1 and cut_short["grade"] == "A+"
    assert score(streaming, samples(down_mbps=5), load_seconds=8)["grade"] is None


def test_a_bursty_rate_is_counted_over_whole_periods():
    """8 one-second windows holding two 1 s bursts of 25 Mbit/s: 5 Mbit/s over the first 5 s, not 6.25."""
    bursts = PersonaSamples(pings=samples().pings, up_acks=(), bursts=(), interrupted=False,
                            down_windows=tuple((2000 + s * 1000.0, 3_125_000 if s in (0, 5) else 0) for s in range(8)))
    throughput = score(streaming, bursts)["throughput"]
    assert throughput["down_median_mbps"] == pytest.approx(5.0)
    assert throughput["down_windows"] == 5


def test_updates_are_shown_with_their_share_and_set_no_household_grade():
    result = score_household(PERSONAS, {
        "streaming": samples(down_mbps=5, bursts=[(0, 1.0)]),
        "gaming": samples(down_mbps=1.5),
        "video": samples(down_mbps=2.5),
        "updates": samples(load_ms=(900.0,), down_mbps=41),
    }, LOAD_SECONDS)
    updates_score = result["personas"]["updates"]
    assert updates_score["grade"] == "A"  # 41 of 50 = 0.82 >= 0.75
    assert updates_score["reason"] == ("updates: Updates downloaded at 41.0 Mbit/s, 82% of what reached the "
                                       "household (they ask for 50)")
    assert not updates_score["sets_household_grade"] and result["overall"]["persona"] != "updates"


def test_household_grade_is_the_worst_member_that_sets_it():
    result = score_household(PERSONAS, {
        "streaming": samples(down_mbps=5, bursts=[(0, 1.0)]),
        "gaming": samples(load_ms=(190.0,)),
        "video": samples(load_ms=(30.0,), down_mbps=2.5),
        "updates": samples(down_mbps=1),  # F, but it sets no household grade
    }, LOAD_SECONDS)
    assert result["overall"] == {"grade": "F", "persona": "gaming", "reason": (
        "gaming: Game updates arrived up to 180 ms later than on an idle line while the household was busy "
        "(95th percentile)"), "caveats": []}
    assert result["fairness"]["personas"] == 3
    assert result["fairness"]["jain_index"] == pytest.approx(1.0)


def test_interrupted_persona_is_marked_not_graded():
    result = score_household(PERSONAS, {
        "streaming": samples(down_mbps=5),
        "gaming": samples(interrupted=True),
        "video": samples(down_mbps=2.5),
        "updates": samples(down_mbps=50),
    }, LOAD_SECONDS)
    assert result["interrupted"] == ["gaming"]
    assert result["personas"]["gaming"]["grade"] is None
    assert result["overall"]["persona"] != "gaming"


def test_a_persona_judged_on_something_unknown_is_refused():
    with pytest.raises(ValueError):
        PersonaScoring("vibes", "things", "nothing")
    with pytest.raises(ValueError):
        PersonaScoring("latency", "things", "nothing")  # no thresholds


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
    better = score(gaming, samples(load_ms=(load_ms,)))["grade"]
    worse = score(gaming, samples(load_ms=(load_ms + extra_ms,)))["grade"]
    assert grade_rank(worse) >= grade_rank(better)
    assert worse in GRADES


segment_times = st.one_of(st.none(), st.floats(min_value=0, max_value=60))


@given(st.lists(segment_times, min_size=1, max_size=8), st.integers(min_value=0, max_value=7),
       st.floats(min_value=0, max_value=30))
def test_a_slower_segment_never_grades_streaming_better(times, which, extra):
    """Hypothesis: making any one segment slower (or lost) never improves the grade."""
    load_seconds = 5.0 * len(times)
    before = list(enumerate(times))
    n = which % len(times)
    slower = None if times[n] is None else times[n] + extra
    after = before[:n] + [(n, slower)] + before[n + 1:]
    better = score(streaming, samples(down_mbps=5, bursts=before), load_seconds)["grade"]
    worse = score(streaming, samples(down_mbps=5, bursts=after), load_seconds)["grade"]
    if better is not None:
        assert worse is not None and grade_rank(worse) >= grade_rank(better)


def test_the_servers_timing_is_reported_beside_the_grade_which_stays_on_the_clients():
    """Rows with the server's timing (12 ms under load, where the client read 42): the grade and
    its figures stay on the client's round trips, and the server's rise is reported on its own."""
    rows = [(i, "baseline", i * 100.0, 10.0, 10.0) for i in range(20)]
    rows += [(100 + i, "load", 2000 + i * 100.0, 42.0, 12.0) for i in range(70)]
    rows += [(200 + i, "load", 9000 + i * 100.0, None, None) for i in range(2)]
    rows += [(300 + i, "load", 9200 + i * 100.0, 42.0) for i in range(8)]  # a client without the timing
    timed = samples()
    timed = PersonaSamples(pings=tuple(rows), down_windows=timed.down_windows, up_acks=timed.up_acks,
                           bursts=(), interrupted=False)
    latency = score(gaming, timed)["latency"]
    assert latency["increase_p95_ms"] == 32.0 and latency["samples"] == 78 and latency["sent"] == 80
    assert latency["server_timed"] == 90 and latency["server_increase_p95_ms"] == 2.0
    assert score(gaming, samples())["latency"]["server_increase_p95_ms"] is None


def with_rows(rows) -> PersonaSamples:
    base = samples()
    return PersonaSamples(pings=tuple(rows), down_windows=base.down_windows, up_acks=base.up_acks,
                          bursts=(), interrupted=False)


def test_a_member_whose_echoes_the_device_held_back_is_not_graded_and_says_why():
    """A browser too busy to read its game updates (the server's Pong at 2 ms, the page at 300 ms or
    never): not an F for the line, but no grade, and the device named as the reason."""
    rows = [(i, "baseline", i * 100.0, 1.0, 1.0) for i in range(20)]
    rows += [(100 + i, "load", 2000 + i * 100.0, 300.0, 2.0) for i in range(40)]
    rows += [(200 + i, "load", 6000 + i * 100.0, None, 2.0) for i in range(30)]
    rows += [(300 + i, "load", 9000 + i * 100.0, 3.0, 2.0) for i in range(10)]
    members = {"gaming": with_rows(rows), "streaming": samples(down_mbps=5, bursts=[(0, 1.0)])}
    household = score_household(PERSONAS, members, LOAD_SECONDS)
    result = household["personas"]["gaming"]
    assert result["grade"] is None
    assert result["reason"] == "gaming: not graded: 70 of 80 game updates reached this device in time, but it handled them late"
    assert result["latency"]["loss_percent"] == 0 and result["latency"]["increase_p95_ms"] == 2.0
    assert result["keeping_up"] == {"held_echoes": 70, "sent": 80, "client_limited": True}
    assert result["caveat"] == ("This device could not keep up: 70 of 80 game updates reached it in time, "
                                "but it handled them late, so they are not graded.")
    assert household["overall"]["persona"] == "streaming"
    assert household["overall"]["caveats"] == [result["caveat"], "Another device or browser would show what your line does."]


def test_a_deep_queue_between_the_two_timings_is_not_taken_for_a_busy_device():
    """On the deep testbed link the client read the call 10 to 13% over the server's timing: both
    are the line's, and the grade stays on the client's."""
    rows = [(i, "baseline", i * 100.0, 30.0, 28.0) for i in range(20)]
    rows += [(100 + i, "load", 2000 + i * 100.0, 290.0, 255.0) for i in range(80)]
    result = score(video_call, with_rows(rows))
    assert result["latency"]["increase_p95_ms"] == 260.0
    assert result["keeping_up"]["held_echoes"] == 0 and result["caveat"] is None


def test_a_few_held_echoes_are_corrected_without_a_caveat():
    rows = [(i, "baseline", i * 100.0, 1.0, 1.0) for i in range(20)]
    rows += [(100 + i, "load", 2000 + i * 100.0, None if i < 5 else 2.0, 2.0) for i in range(80)]
    result = score(gaming, with_rows(rows))
    assert result["latency"]["loss_percent"] == 0 and result["grade"] == "A+"
    assert result["keeping_up"]["client_limited"] is False and result["caveat"] is None


@given(client=st.one_of(st.none(), st.floats(0, 2000)), server=st.one_of(st.none(), st.floats(0, 2000)))
def test_held_by_device_needs_the_servers_timing_and_a_client_well_behind_it(client, server):
    held = held_by_device(client, server, 250)
    seen = 250 if client is None else client  # a ping lost on the client's clock: at least its deadline
    assert held == (server is not None and seen - server >= 50 and seen >= 1.5 * server)


def test_a_ping_the_line_made_late_stays_lost_whatever_the_server_timed():
    """Lost at gaming's 250 ms deadline: a server timing of 240 ms is the line's lateness, not the device's."""
    assert held_by_device(None, 240.0, 250) is False
    assert held_by_device(None, 150.0, 250) is True


@given(load_ms=st.lists(st.one_of(st.none(), st.floats(1, 240)), min_size=10, max_size=80),
       server_ms=st.floats(0, 240))
def test_the_servers_timing_never_grades_a_member_worse(load_ms, server_ms):
    """It can only show that the device held echoes back: a better grade, or none for a device
    that held back too many."""
    rows = [(i, "baseline", i * 100.0, 5.0) for i in range(20)]
    client_only = rows + [(100 + i, "load", 2000 + i * 100.0, rtt) for i, rtt in enumerate(load_ms)]
    timed = rows + [(100 + i, "load", 2000 + i * 100.0, rtt, server_ms) for i, rtt in enumerate(load_ms)]
    before = score(gaming, with_rows(client_only))["grade"]
    after = score(gaming, with_rows(timed))
    if after["keeping_up"]["client_limited"]:
        assert after["grade"] is None and after["caveat"]
    elif before is not None:
        assert after["grade"] is not None and grade_rank(after["grade"]) <= grade_rank(before)
