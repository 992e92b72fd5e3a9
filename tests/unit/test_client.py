"""Unit tests of the CLI client's pure parts: windows, warm-up, probe log, pacing, streams, report."""

from __future__ import annotations


import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer, task
from twisted.internet.testing import StringTransport
from twisted.web.http_headers import Headers

from lqos.client.http import ClientError, Reply, describe_error
from lqos.client.load import RateCeiling, RepeatingBodyProducer, StreamPool, UploadMeter
from lqos.client.probe import ProbeLog, next_probe_time
from lqos.client.report import render
from lqos.client.runner import CEILING_MBPS, LoadPhases, WarmupDriver, ceilings_mbps
from lqos.client.schedule import Schedule
from lqos.client.windows import (WarmupRule, WindowCounter, counter_at, counter_windows,
                                 should_add_stream, throughput_rows, window_index, window_start)
from lqos.measure.grading import ProbeSample, ThroughputWindow, compute_result
from lqos.measure.submission import MAX_STREAMS
from lqos.sessions import SCHEDULES

# The server's single-user schedules, as POST /api/tests hands them out.
SHORT_PHASES = [phase.describe() for phase in SCHEDULES["single_user"]["short"]]
STANDARD_PHASES = [phase.describe() for phase in SCHEDULES["single_user"]["standard"]]
SHORT = Schedule.from_phases(SHORT_PHASES)
STANDARD = Schedule.from_phases(STANDARD_PHASES)
times = st.floats(min_value=0.0, max_value=60_000.0, allow_nan=False)
rates = st.floats(min_value=0.0, max_value=1e10, allow_nan=False)


class FakeClock:
    """A test clock whose milliseconds follow a twisted ``task.Clock``."""

    def __init__(self, reactor: task.Clock):
        self._reactor = reactor

    def now_ms(self) -> float:
        return self._reactor.seconds() * 1000.0


# --- schedule --------------------------------------------------------------------


def test_schedule_spans_follow_each_other():
    assert [(s.name, s.start_ms, s.end_ms) for s in SHORT.spans[:3]] == [
        ("baseline", 0, 2000), ("upload_warmup", 2000, 4000), ("upload", 4000, 7000)]
    assert SHORT.duration_ms == 15_000
    assert STANDARD.duration_ms == 40_000
    assert SHORT.phase_at(6999.9) == "upload"
    assert SHORT.phase_at(15_000) is None
    assert SHORT.phase_at(-1) is None


def test_what_each_phase_loads_comes_from_the_servers_answer():
    assert SHORT.directions("baseline") == set()
    assert SHORT.directions("download_warmup") == {"down"}
    assert SHORT.directions("upload") == {"up"}
    assert SHORT.directions("bidirectional") == {"down", "up"}
    assert SHORT.directions(None) == set()
    assert [span.name for span in SHORT.spans if span.warmup] == ["upload_warmup", "download_warmup"]
    # A schedule the server changes is followed: the client knows no phase by its name.
    renamed = Schedule.from_phases([{"name": "idle", "seconds": 1}, {"name": "fill", "seconds": 1, "load": ["up"]}])
    assert renamed.directions("fill") == {"up"} and renamed.directions("idle") == set()
    with pytest.raises(ValueError, match="sideways"):
        Schedule.from_phases([{"name": "odd", "seconds": 1, "load": ["sideways"]}])


# --- windows ---------------------------------------------------------------------


@given(times)
def test_a_moment_falls_in_the_window_that_contains_it(t):
    index = window_index(t)
    assert window_start(index) <= t < window_start(index + 1)


@given(st.lists(st.tuples(times, st.integers(0, 10**9)), max_size=50))
def test_window_counter_keeps_every_byte_in_its_window(arrivals):
    counter = WindowCounter()
    for t, size in arrivals:
        counter.add(t, size)
    indexes = {window_index(t) for t, _ in arrivals}
    assert sum(counter.bytes_in(i) for i in indexes) == sum(size for _, size in arrivals)
    for index in indexes:
        assert counter.bytes_in(index) == sum(size for t, size in arrivals if window_index(t) == index)


@pytest.mark.parametrize("schedule", [SHORT, STANDARD], ids=["short", "standard"])
def test_throughput_rows_cover_the_phases_of_their_direction_exactly(schedule):
    rows = throughput_rows(lambda index: index, "down", schedule)
    for span in schedule.spans:
        starts = [row[1] for row in rows if row[0] == span.name]
        if "down" in span.load:
            assert starts == [span.start_ms + 250 * i for i in range(int((span.end_ms - span.start_ms) / 250))]
        else:
            assert starts == []
    assert all(row[2] == "down" and row[3] == window_index(row[1]) for row in rows)


def test_short_test_stays_within_the_submission_bounds():
    rows = throughput_rows(lambda i: 0, "down", SHORT) + throughput_rows(lambda i: 0, "up", SHORT)
    assert len(rows) == 64  # 8 s of each direction
    assert len(rows) <= 2 * (15_000 / 250 + 8)


monotonic_samples = st.lists(st.tuples(st.floats(1, 1000), st.integers(0, 10**8)), min_size=1, max_size=20).map(
    lambda steps: [(sum(dt for dt, _ in steps[: i + 1]), sum(dc for _, dc in steps[: i + 1]))
                   for i in range(len(steps))])


@given(monotonic_samples, st.integers(0, 80), st.integers(1, 40))
def test_counter_windows_add_up_to_the_counters_growth(samples, first, count):
    sizes = counter_windows(samples, first, first + count)
    assert len(sizes) == count
    assert all(size >= 0 for size in sizes)
    growth = round(counter_at(samples, window_start(first + count))) - round(counter_at(samples, window_start(first)))
    assert sum(sizes) == growth


def test_counter_is_read_linearly_between_samples_and_flat_outside():
    samples = [(100.0, 1000), (300.0, 3000)]
    assert counter_at(samples, 0) == 1000
    assert counter_at(samples, 200) == 2000
    assert counter_at(samples, 1000) == 3000
    assert counter_windows(samples, 0, 2) == [1500, 500]


# --- warm-up ---------------------------------------------------------------------


def test_warmup_adds_while_growth_is_above_five_percent():
    rule = WarmupRule(MAX_STREAMS)
    assert [rule.step(r) for r in (100, 200, 260, 270, 999)] == [2, 3, 4, 4, 4]
    assert rule.settled


def test_five_percent_exactly_is_not_growth():
    assert should_add_stream(3, 100.0, 105.0, MAX_STREAMS) is False
    assert should_add_stream(3, 100.0, 105.1, MAX_STREAMS) is True
    assert should_add_stream(1, None, 0.0, MAX_STREAMS) is True
    assert should_add_stream(MAX_STREAMS, 1.0, 1e9, MAX_STREAMS) is False


def test_the_warmup_stops_at_the_servers_limit():
    rule = WarmupRule(max_streams=3)
    assert [rule.step(r) for r in (100, 200, 400, 800)] == [2, 3, 3, 3]


@given(st.lists(rates, max_size=60))
def test_warmup_rule_never_exceeds_16_streams_nor_adds_after_a_flat_step(step_rates):
    rule = WarmupRule(MAX_STREAMS)
    counts, flat_seen, previous = [], False, None
    for rate in step_rates:
        before = rule.streams
        after = rule.step(rate)
        counts.append(after)
        assert 1 <= after <= MAX_STREAMS
        assert after - before in (0, 1)
        if previous is not None and rate <= previous * 1.05:
            flat_seen = True
        if flat_seen:
            assert after == before
        previous = rate
    assert counts == sorted(counts)


class FakePool:
    def __init__(self):
        self.sizes = []
        self.count = 1

    def resize(self, count):
        self.sizes.append(count)
        self.count = count


def test_warmup_driver_steps_every_two_windows_and_freezes_at_the_end():
    span = SHORT.span("download_warmup")  # 2 s: eight windows, four steps
    first = window_index(span.start_ms)
    pool = FakePool()
    driver = WarmupDriver(span, pool, MAX_STREAMS)
    for index, size in zip(range(first, first + 8), [10, 10, 30, 30, 60, 60, 120, 120]):
        driver.on_window(index, size)
    # Steps 1-3 resize; the fourth still grows but the saturation phase keeps the count.
    assert pool.sizes == [2, 3, 4]
    assert driver.rule.streams == 5
    driver.on_window(first - 1, 10**9)
    driver.on_window(first + 8, 10**9)
    assert pool.sizes == [2, 3, 4]


# --- probe log -------------------------------------------------------------------


def test_probe_log_keeps_lost_probes_as_none_and_ignores_late_replies():
    log = ProbeLog(timeout_ms=2000)
    log.sent(0, "baseline", 0.0)
    log.sent(1, "baseline", 100.0)
    log.sent(2, "download", 200.0)
    assert log.answered(0, 1.5) == pytest.approx(1.5)
    assert log.answered(0, 3.0) is None  # a duplicate changes nothing
    assert log.answered(1, 2100.5) is None  # 2000.5 ms: too late, lost
    log.expire(2300.0)
    assert log.answered(2, 2300.0) is None
    assert log.answered(99, 50.0) is None
    log.expire(4300.5)  # no report came within the timeout after an echo (seq 0, 1 and 2)
    assert log.rows() == [[0, "baseline", 0.0, 1.5, None], [1, "baseline", 100.0, None, None],
                          [2, "download", 200.0, None, None]]
    assert log.pending == 0


def test_a_late_echo_stays_lost_but_keeps_the_servers_timing_of_it():
    """The server's Pong says the echo reached this machine in 3 ms: the client was busy, not the line."""
    log = ProbeLog(timeout_ms=250)
    log.sent(0, "load", 0.0)
    log.sent(1, "load", 100.0)
    log.expire(350.0)               # both lost on the client's clock
    assert log.answered(0, 400.0) is None
    assert log.pending == 1         # its report is awaited
    log.reported(0, 3.0)
    log.reported(1, 3.0)            # seq 1's echo never came: its report is not believed
    assert log.rows() == [[0, "load", 0.0, None, 3.0], [1, "load", 100.0, None, None]]
    assert log.pending == 0


def test_probe_log_keeps_the_servers_timing_beside_the_clients_own():
    log = ProbeLog(timeout_ms=2000)
    for seq in range(4):
        log.sent(seq, "download", 100.0 * seq)
    log.answered(0, 14.0)
    log.reported(0, 1.25)
    log.reported(1, 3.0)          # no echo yet: a report cannot come first, so it is ignored
    log.answered(1, 120.0)
    log.reported(1, "fast")       # not a number: the probe keeps only the client's timing
    log.answered(2, 230.0)
    assert log.pending == 2       # seq 2 waits for its report, seq 3 for its echo
    log.reported(2, 2500.0)       # beyond the timeout: not believed
    log.reported(2, 1.0)          # settled already
    assert log.rows()[:3] == [[0, "download", 0.0, 14.0, 1.25], [1, "download", 100.0, 20.0, None],
                              [2, "download", 200.0, 30.0, None]]
    assert log.pending == 1
    log.answered(3, 340.0)
    log.reported(3, 5.0, ack_rtt_ms=0.4)  # the kernel's acknowledgement: a sixth item
    assert log.rows()[3] == [3, "download", 300.0, 40.0, 5.0, 0.4]


@given(times)
def test_next_probe_time_is_the_next_slot_of_the_grid(now):
    slot = next_probe_time(now)
    assert now < slot <= now + 100
    assert slot % 100 == 0


# --- pacing and streams ----------------------------------------------------------


def test_rate_ceiling_holds_a_window_then_releases_at_the_next():
    reactor = task.Clock()
    ceiling = RateCeiling(reactor, FakeClock(reactor), bytes_per_window=1000)
    released = []
    ceiling.spend(600)
    assert ceiling.allows()
    ceiling.spend(600)
    assert not ceiling.allows()
    ceiling.wait(lambda: released.append(reactor.seconds()))
    reactor.advance(0.1)
    assert released == []
    reactor.advance(0.15)
    assert released == [0.25]
    assert ceiling.allows()


def test_producer_writes_exactly_its_length_under_flow_control_and_ceiling():
    reactor = task.Clock()
    ceiling = RateCeiling(reactor, FakeClock(reactor), bytes_per_window=25)
    producer = RepeatingBodyProducer(b"0123456789", 35, ceiling)
    consumer = StringTransport()
    done = producer.startProducing(consumer)
    assert consumer.value() == b"0123456789" * 3  # 30 bytes: the ceiling of 25 is passed, then it waits
    producer.pauseProducing()
    reactor.advance(0.25)
    assert len(consumer.value()) == 30  # paused by the transport: the new window does not resume it
    producer.resumeProducing()
    assert consumer.value() == b"0123456789" * 3 + b"01234"
    assert done.called


def test_stream_pool_reopens_ended_streams_and_reports_one_failure():
    opened, failures = [], []
    pool = StreamPool(lambda: opened.append(defer.Deferred()) or opened[-1], failures.append)
    pool.resize(2)
    assert len(opened) == 2
    opened[0].callback(None)
    assert len(opened) == 3
    opened[1].errback(ClientError("connection refused"))
    assert failures == ["connection refused"] and not pool.running
    assert opened[2].called  # stopped: the other stream was cancelled
    pool.resize(1)
    pool.stop()
    assert failures == ["connection refused"]


class CountingPools:
    """Real stream pools whose streams are Deferreds that never end on their own."""

    def __init__(self):
        self.opened = {"down": [], "up": []}
        self.pools = {direction: StreamPool(self._opener(direction), lambda detail: None)
                      for direction in self.opened}

    def _opener(self, direction):
        def open_stream():
            self.opened[direction].append(defer.Deferred())
            return self.opened[direction][-1]
        return open_stream

    def running(self, direction):
        return [d for d in self.opened[direction] if not d.called]


@pytest.mark.parametrize("first, second", [("download", "upload"), ("upload", "download")])
def test_the_bidirectional_phase_keeps_the_streams_of_the_phase_before_it(first, second):
    """Entering the bidirectional phase adds the other direction and leaves the streams
    that already run alone: restarting them would make the phase count their slow start
    (seconds on a bloated link) instead of the link's steady state."""
    direction_of = {"download": "down", "upload": "up"}
    phases = [{"name": "baseline", "seconds": 1}]
    for loaded in (first, second):
        phases += [{"name": f"{loaded}_warmup", "seconds": 1, "load": [direction_of[loaded]], "warmup": True},
                   {"name": loaded, "seconds": 1, "load": [direction_of[loaded]]}]
    phases.append({"name": "bidirectional", "seconds": 1, "load": ["down", "up"]})
    answer = {"download_url": "http://x/download", "upload_url": "http://x/upload",
              "progress_url": "http://x/progress", "phases": phases, "limits": {"min_streams": 4}}
    reactor = task.Clock()
    load = LoadPhases(reactor, type("Http", (), {"load_agent": None})(), answer, FakeClock(reactor),
                      Schedule.from_phases(phases), {"down": 100.0, "up": 100.0})
    fake = CountingPools()
    load.pools = fake.pools
    for name in (phase["name"] for phase in phases):
        load._enter(name)
        if name.endswith("_warmup"):
            load.pools[direction_of[name.removesuffix("_warmup")]].resize(5)  # what the warm-up found
    carried = direction_of[second]
    assert len(fake.opened[carried]) == 5, "the carried-over direction opened no new stream"
    assert len(fake.running(carried)) == 5
    assert len(fake.running(direction_of[first])) == 5
    load._enter(None)
    assert fake.running("down") == fake.running("up") == []


class FakeHttp:
    def __init__(self, reactor, answers):
        self.reactor = reactor
        self._answers = list(answers)

    def request_json(self, method, url, timeout):
        answer = self._answers.pop(0)
        self.reactor.advance(0.002)  # the answer comes back 2 ms later
        if isinstance(answer, Exception):
            return defer.fail(answer)
        body = f'{{"upload_bytes": {answer}, "download_bytes": 0}}'.encode()
        return defer.succeed(Reply(200, Headers(), body))


def test_upload_meter_reports_windows_from_the_servers_counter():
    reactor = task.Clock()
    windows, failures = [], []
    http = FakeHttp(reactor, [0, 1000, 3000])
    meter = UploadMeter(http, "http://x/progress", FakeClock(reactor), lambda i, n: windows.append((i, n)),
                        failures.append)
    for boundary in (4, 5, 6):
        reactor.advance(boundary * 0.25 - reactor.seconds())
        meter.poll(boundary)
    # Samples at 1001, 1251 and 1501 ms: window 4 is [1000, 1250), window 5 [1250, 1500).
    assert [i for i, _ in windows] == [4, 5]
    assert sum(n for _, n in windows) == meter.window_bytes(4) + meter.window_bytes(5)
    assert 900 <= windows[0][1] <= 1000 and windows[1][1] >= 1900
    assert failures == []


def test_upload_meter_gives_up_on_a_refusal():
    reactor = task.Clock()
    failures = []
    http = FakeHttp(reactor, [ClientError("403 unknown test or wrong token")])
    meter = UploadMeter(http, "http://x/progress", FakeClock(reactor), lambda i, n: None, failures.append)
    meter.poll(0)
    assert failures == ["403 unknown test or wrong token"] and meter.stopped


# --- errors and report -----------------------------------------------------------


def test_describe_error_is_one_short_phrase():
    from twisted.internet import error
    from twisted.python.failure import Failure
    from twisted.web.client import ResponseNeverReceived

    assert describe_error(error.ConnectionRefusedError()) == "connection refused"
    assert describe_error(defer.TimeoutError()) == "no answer in time (timed out)"
    wrapped = ResponseNeverReceived([Failure(error.ConnectionDone())])
    assert describe_error(wrapped) == "the server closed the connection"


def _result_record(loss_in_upload: bool = False) -> dict:
    probes, seq = [], 0
    for phase, rtt in (("baseline", 1.0), ("download", 12.0), ("upload", 40.0), ("bidirectional", 80.0)):
        for i in range(20):
            lost = loss_in_upload and phase == "upload" and i < 10
            probes.append(ProbeSample(seq, phase, seq * 100.0, None if lost else rtt + i * 0.02))
            seq += 1
    windows = [ThroughputWindow(phase, i * 250.0, direction, 31_250_000)
               for phase, direction in (("download", "down"), ("upload", "up"), ("bidirectional", "down"))
               for i in range(12)]
    return {"share_id": "abc", "streams": {"download": 3, "upload": 2},
            "result": compute_result(probes, windows)}


def test_report_shows_the_grade_the_phase_that_set_it_and_the_figures():
    text = render(_result_record(), "https://test.example", {"down": 1000, "up": 5000})
    assert "Bufferbloat Grade: C  (set by the bidirectional phase)" in text
    assert "Idle latency (baseline): 1.19 ms median" in text
    assert "+11.00 ms" in text and "1.00 Gbit/s* (12 win)" in text
    assert "at this client's ceiling (download 1.00 Gbit/s)" in text
    assert "streaming" in text and "gaming" in text and "video calls" in text
    assert "Share: https://test.example/r/abc" in text


def test_report_marks_an_unreliable_phase():
    text = render(_result_record(loss_in_upload=True), "http://x")
    assert "upload        unreliable" in text
    assert "upload: unreliable, loss 50.0% is above 20%" in text


# --- pacing plan -----------------------------------------------------------------


def test_upload_is_paced_so_the_servers_allowance_lasts_the_whole_schedule():
    standard = {"phases": STANDARD_PHASES}
    short = {"phases": SHORT_PHASES}
    # Without a stated allowance only the ceiling applies.
    assert ceilings_mbps(standard) == {"down": CEILING_MBPS, "up": CEILING_MBPS}
    # 16 GiB over the 20 s that carry upload, less a 10% margin and one body in flight.
    plan = ceilings_mbps(dict(standard, limits={"upload_bytes_per_test": 16 * 1024**3}))
    assert plan["down"] == CEILING_MBPS and 5000 < plan["up"] < 6500
    stated = dict(short, limits={"upload_bytes_per_test": 2 * 1024**3})
    assert ceilings_mbps(stated)["up"] < 2 * 1024**3 * 8 / 8 / 1e6
    assert ceilings_mbps(standard, max_mbps=500) == {"down": 500, "up": 500}
