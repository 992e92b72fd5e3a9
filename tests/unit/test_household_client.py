"""The household client's pure parts and its driver on a fake clock: windows, bursts,
pings, the load, interruptions, the submission, and the readable report."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from autobahn.twisted.websocket import WebSocketClientProtocol
from twisted.internet import task

from lqos.client.household import (SegmentTimer, DownWindows, HouseholdRun, PersonaMember, PersonaPlan,
                                   household_schedule, persona_plans, submission)
from lqos.client.household_report import render_household
from lqos.client.http import ClientError
from lqos.measure.household_grading import PersonaSamples, score_household
from lqos.measure.submission import parse_household_submission
from lqos.personas.model import MAX_ECHO_COPIES
from lqos.plugins.lqos_household import gaming, streaming, updates, video_call

SCHEDULE = household_schedule({"phases": [{"name": "baseline", "seconds": 1}, {"name": "load", "seconds": 2}]})


# --- 1 s windows of the load ---

def test_down_windows_start_at_the_load_and_keep_empty_windows():
    windows = DownWindows(load_start_ms=2000.0, load_seconds=3)
    windows.add(1999.9, 500)  # before the load: no window
    windows.add(2000.0, 10)
    windows.add(2999.999, 5)
    windows.add(3000.0, 7)
    windows.add(5000.0, 900)  # after the last window
    assert windows.rows() == [[2000.0, 15], [3000.0, 7], [4000.0, 0]]


@given(st.lists(st.tuples(st.floats(0, 9_999.999), st.integers(0, 10**6)), max_size=50))
def test_every_byte_of_the_load_lands_in_exactly_one_window(arrivals):
    windows = DownWindows(load_start_ms=2000.0, load_seconds=8)
    for t_ms, size in arrivals:
        windows.add(t_ms, size)
    rows = windows.rows()
    assert [start for start, _ in rows] == [2000.0 + 1000 * k for k in range(8)]
    assert sum(size for _, size in rows) == sum(size for t, size in arrivals if 2000 <= t < 10_000)


def test_a_load_of_fractional_seconds_has_a_last_partial_window():
    assert len(DownWindows(0.0, 2.5).rows()) == 3


# --- video segments ---

def test_a_segment_is_timed_from_when_it_was_due_to_its_end_marker():
    """Segment n is due n x 5 s into the load (which starts at 2000 ms on the test clock);
    the wait behind the previous segment counts, as a player waits it too."""
    segments = SegmentTimer(2000.0, 5.0)
    segments.marker(0, "start", 2010.0)
    segments.marker(0, "end", 3020.5)
    segments.marker(1, "start", 8500.0)  # held back 1.5 s behind segment 0 or the queue
    segments.marker(1, "end", 9000.0)
    segments.marker(2, "start", 12010.0)  # its end never came
    assert segments.rows() == [[0, 1.0205], [1, 2.0], [2, None]]


def test_stray_and_repeated_segment_markers_change_nothing():
    segments = SegmentTimer(0.0, 5.0)
    segments.marker(3, "end", 100.0)  # an end without a start
    segments.marker(0, "start", 0.0)
    segments.marker(0, "start", 500.0)
    segments.marker(0, "end", 1000.0)
    segments.marker(0, "end", 4000.0)  # a repeated end keeps the first
    segments.marker(1, "middle", 10.0)
    assert segments.rows() == [[0, 1.0]]


# --- the server's answer ---

def _entry(persona, url="ws://127.0.0.1:1/ws/virtual-household/t?token=k"):
    return dict(persona.profile(), url=url)


def test_plans_come_from_the_servers_answer():
    plans = persona_plans({"personas": [_entry(p) for p in (streaming, gaming, updates)]})
    assert [(p.name, p.bulk, p.segment_seconds, p.tick_hz, p.up_bytes_per_tick) for p in plans] == [
        ("streaming", False, 5.0, 50, 250), ("gaming", False, None, 60, 1563), ("updates", True, None, 20, 12500)]


@pytest.mark.parametrize("change", [
    {"deadline_ms": 0}, {"deadline_ms": 60_000}, {"traffic": {"tick_hz": 0}}, {"name": None, "url": None},
    {"echo_copies": 0}, {"echo_copies": 50}, {"echo_copies": True}, {"echo_copies": "2"},
    {"traffic": {"period_seconds": 0}}, {"traffic": {"period_seconds": 1e9}}, {"traffic": {"period_seconds": "x"}},
])
def test_a_malformed_or_unbounded_persona_is_refused(change):
    entry = _entry(gaming)
    if "traffic" in change:
        entry["traffic"] = dict(entry["traffic"], **change["traffic"])
    else:
        entry.update(change)
        if change.get("url", "") is None:
            del entry["url"]
    with pytest.raises(ClientError):
        persona_plans({"personas": [entry]})


def test_every_member_but_updates_echoes_on_connections_of_its_own_and_none_can_ask_for_too_many():
    plans = persona_plans({"personas": [_entry(p) for p in (streaming, gaming, video_call, updates)]})
    assert {p.name: p.echo_copies for p in plans} == {"streaming": 2, "gaming": 3, "video": 3, "updates": 1}
    for copies in (0, MAX_ECHO_COPIES + 1):
        with pytest.raises(ValueError, match="echo_copies"):
            dataclasses.replace(gaming, echo_copies=copies)


def test_a_household_needs_its_two_phases_and_distinct_personas():
    with pytest.raises(ClientError, match="baseline"):
        household_schedule({"phases": [["download", 3]]})
    with pytest.raises(ClientError, match="twice"):
        persona_plans({"personas": [_entry(gaming), _entry(gaming)]})
    with pytest.raises(ClientError, match="no personas"):
        persona_plans({"personas": []})


# --- the driver, on a fake clock ---

class FakeClock:
    def __init__(self, reactor: task.Clock):
        self._reactor = reactor

    def now_ms(self) -> float:
        return self._reactor.seconds() * 1000.0


class FakeTransport:
    def __init__(self):
        self.paused = 0

    def pauseProducing(self):
        self.paused += 1

    def resumeProducing(self):
        pass


class FakeConnection:
    """Collects what a member sends; ``texts`` decoded (sent at ``text_times_ms``), ``binary`` as sizes."""

    def __init__(self):
        self.texts: list[dict] = []
        self.text_times_ms: list[float] = []
        self.binary: list[tuple[float, int]] = []
        self.closed = False
        self.transport = FakeTransport()
        self.reactor = None

    state = WebSocketClientProtocol.STATE_OPEN

    def sendMessage(self, payload: bytes, isBinary: bool = False):
        if isBinary:
            self.binary.append((self.reactor.seconds(), len(payload)))
        else:
            self.texts.append(json.loads(payload))
            self.text_times_ms.append(self.reactor.seconds() * 1000.0)

    def sendClose(self):
        self.closed = True


def _fake_connection(reactor) -> FakeConnection:
    connection = FakeConnection()
    connection.reactor = reactor
    return connection


def _member(reactor, persona, clock, max_bulk_mbps=None) -> tuple[PersonaMember, FakeConnection]:
    """A member on fake connections: its own (returned), and its echo-only ones if it has copies."""
    member = PersonaMember(reactor, PersonaPlan.from_answer(_entry(persona)), SCHEDULE, b"x" * 65536)
    member.protocol = _fake_connection(reactor)
    if persona.echo_copies > 1:
        member.echo_protocols = [_fake_connection(reactor) for _ in range(persona.echo_copies)]
    member.attach(clock, max_bulk_mbps)
    return member, member.protocol


def _pongs(member: PersonaMember, connection: FakeConnection, answered: set, skip=(), older_than_ms=0.0):
    """Answer every ping copy sent at least *older_than_ms* ago whose ping is not yet
    answered (except *skip*), on the connection it came by."""
    now = connection.reactor.seconds() * 1000.0
    for copy_connection, answer in [(connection, member.on_text),
                                    *((echo, member.on_echo) for echo in member.echo_protocols if echo)]:
        for message, sent_ms in zip(copy_connection.texts, copy_connection.text_times_ms):
            if message["type"] != "ping" or now - sent_ms < older_than_ms - 1e-6:
                continue
            if message["seq"] not in answered and message["seq"] not in skip:
                answered.add(message["seq"])
                answer(json.dumps({"type": "pong", "seq": message["seq"], "t": message["t"]}).encode())


def _household(personas):
    reactor = task.Clock()
    clock = FakeClock(reactor)
    pairs = [_member(reactor, persona, clock) for persona in personas]
    run = HouseholdRun(reactor, [member for member, _ in pairs], clock, SCHEDULE)
    return reactor, pairs, run


def test_pings_the_load_and_the_upstream_ticks_follow_the_schedule():
    reactor, [(member, connection)], run = _household([gaming])
    finished = run.start()
    answered: set = set()
    while reactor.seconds() < 3.0:
        reactor.advance(0.004)
        _pongs(member, connection, answered, skip={3}, older_than_ms=4.0)  # each pong 4 ms after its ping
    member.on_text(b'{"type":"ack","t_ms":2000,"up_bytes":187560}')
    member.on_text(b'{"type":"done","down_bytes":1,"dropped_bytes":0}')
    reactor.advance(0.3)  # past gaming's 250 ms deadline for the last pings
    assert finished.called

    rows = member.pings.rows()
    assert [row[1] for row in rows] == ["baseline"] * 10 + ["load"] * 20
    assert [row[2] for row in rows] == pytest.approx([100.0 * i for i in range(30)])
    assert rows[3][3] is None  # never answered: lost, no made-up RTT
    assert all(row[3] == pytest.approx(4.0) for i, row in enumerate(rows) if i != 3)
    starts = [m for m in connection.texts if m["type"] == "start"]
    assert starts == [{"type": "start", "seconds": 2.0}]
    # 60 Hz for the 2 s of the load, from its first instant, never outside it
    times = [t for t, _ in connection.binary]
    assert len(times) == pytest.approx(120, abs=1)
    assert min(times) == pytest.approx(1.0, abs=0.005) and max(times) < 3.0
    assert {size for _, size in connection.binary} == {gaming.traffic.up_bytes_per_tick()}
    assert member.samples()["up_acks"] == [[2000, 187560]]
    assert connection.closed


def test_a_pong_later_than_the_deadline_is_a_loss():
    reactor, [(member, connection)], run = _household([gaming])
    run.start()
    reactor.pump([0.1] * 3)  # seq 0..3 sent; seq 0 is 300 ms old: past gaming's 250 ms
    member.on_text(b'{"type":"pong","seq":0,"t":0}')
    member.on_text(b'{"type":"pong","seq":2,"t":200}')
    member.on_text(b'{"type":"timing","seq":0,"t":0,"server_rtt_ms":2.5}')  # the line was fast: this CLI was late
    rows = member.pings.rows()
    assert rows[0][3] is None and rows[0][4] == 2.5 and rows[2][3] == pytest.approx(100.0)
    run.stop()


def _pong(seq: int, t: float) -> bytes:
    return json.dumps({"type": "pong", "seq": seq, "t": t}).encode()


def test_gaming_sends_each_ping_as_copies_a_tick_apart_on_connections_that_carry_nothing_else():
    reactor, [(member, own)], run = _household([gaming])
    run.start()
    reactor.pump([0.001] * 150)  # pings 0 and 1 and all their copies
    echoes = member.echo_protocols
    assert [m for m in own.texts if m["type"] == "ping"] == []  # its traffic connection carries no pings
    copies = sorted((sent_ms, message["seq"], echoes.index(echo), message["t"])
                    for echo in echoes for message, sent_ms in zip(echo.texts, echo.text_times_ms))
    assert [(seq, connection) for _, seq, connection, _ in copies] == [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (1, 0)]
    assert all(t == pytest.approx(sent_ms, abs=0.001) for sent_ms, _, _, t in copies)  # each stamped with its own time
    assert [sent_ms for sent_ms, *_ in copies[:3]] == pytest.approx([0, 1000 / 60, 2000 / 60], abs=1.0)
    reactor.advance(1.2)  # into the load: the traffic goes on the persona's own connection only
    assert [m for m in own.texts if m["type"] == "start"] and not any(echo.binary for echo in echoes)
    run.stop()


def _copy_of(member, seq: int, copy: int) -> dict:
    return member.echo_protocols[(seq + copy) % len(member.echo_protocols)].texts[-1 if seq else 0]


def test_the_first_copy_back_answers_the_ping_with_its_own_rtt():
    reactor, [(member, _)], run = _household([gaming])
    run.start()
    reactor.pump([0.001] * 40)  # ping 0: copies at 0, ~17 and ~33 ms
    first = _copy_of(member, 0, 0)
    member.on_echo(_pong(0, first["t"]))  # copy 0 back at 40 ms
    member.on_echo(_pong(0, _copy_of(member, 0, 1)["t"]))  # a later copy of an answered ping: ignored
    reactor.pump([0.001] * 90)  # ping 1 at 100 ms; its copy 0 is held back by a retransmission
    overtaking = _copy_of(member, 1, 1)  # sent at ~117 ms
    member.on_echo(_pong(1, overtaking["t"]))  # back at 130 ms, before copy 0
    member.on_echo(_pong(1, _copy_of(member, 1, 0)["t"]))  # copy 0 at last: ignored
    member.on_echo(_pong(2, 5.0))  # not a copy that was sent: ignored
    rows = member.pings.rows()
    assert rows[0][3] == pytest.approx(40.0, abs=0.01)
    assert rows[1][3] == pytest.approx(130.0 - overtaking["t"], abs=0.01)  # ~13 ms: the FIFO's delay, not TCP's
    run.stop()


def test_a_broken_echo_connection_does_not_interrupt_the_persona():
    reactor, [(member, own)], run = _household([gaming])
    finished = run.start()
    broken, *others = member.echo_protocols
    answered: set = set()
    while reactor.seconds() < 3.0:
        reactor.advance(0.01)
        _pongs(member, own, answered)
        if broken in member.echo_protocols and reactor.seconds() >= 0.5:
            member.on_echo_close(broken)
            copies_before = len(broken.texts)
    member.on_text(b'{"type":"done"}')
    reactor.advance(0.3)
    assert finished.called and not member.interrupted
    assert len(broken.texts) == copies_before  # nothing more to the broken one
    assert all(echo.closed for echo in others)
    rows = member.pings.rows()
    assert len(rows) == 30 and all(row[3] is not None for row in rows)  # the other copies answered


def test_a_broken_connection_interrupts_only_its_persona():
    reactor, [(gamer, gamer_connection), (video, video_connection)], run = _household([gaming, video_call])
    finished = run.start()
    answered: dict = {id(gamer): set(), id(video): set()}
    while reactor.seconds() < 1.5:
        reactor.advance(0.01)
        for member, connection in ((gamer, gamer_connection), (video, video_connection)):
            _pongs(member, connection, answered[id(member)])
    video.on_close()  # the persona's process died mid-load
    sent_before = len(video_connection.texts)
    while reactor.seconds() < 3.0:
        reactor.advance(0.01)
        _pongs(gamer, gamer_connection, answered[id(gamer)])
    gamer.on_text(b'{"type":"done"}')
    reactor.advance(0.3)
    assert finished.called
    assert len(video_connection.texts) == sent_before  # nothing more to the broken one
    body = submission("tok", [gamer, video])
    assert body["personas"]["video"]["interrupted"] is True
    assert body["personas"]["gaming"]["interrupted"] is False
    assert len(body["personas"]["gaming"]["pings"]) == 30
    assert all(row[3] is not None for row in body["personas"]["gaming"]["pings"])


def test_a_persona_that_never_says_done_is_interrupted_once_the_wait_is_over():
    reactor, [(member, connection)], run = _household([gaming])
    finished = run.start()
    reactor.advance(3.0 + 0.25 + 2.9)
    assert not finished.called
    reactor.advance(0.2)  # load end + deadline + DONE_SLACK_MS
    assert finished.called and member.interrupted


def test_the_bulk_cap_pauses_only_the_bulk_persona():
    reactor = task.Clock()
    clock = FakeClock(reactor)
    bulk, bulk_connection = _member(reactor, updates, clock, max_bulk_mbps=8)
    gamer, gamer_connection = _member(reactor, gaming, clock, max_bulk_mbps=8)
    for _ in range(10):
        bulk.on_binary(65536)  # 8 Mbit/s is 250 kB per 250 ms window
        gamer.on_binary(65536)
    assert bulk_connection.transport.paused >= 1
    assert gamer_connection.transport.paused == 0


def test_the_submission_is_what_the_server_parses():
    reactor, pairs, run = _household([streaming, gaming])
    run.start()
    (stream, stream_connection), (gamer, gamer_connection) = pairs
    reactor.advance(1.0)
    stream.on_text(b'{"type":"burst","n":0,"edge":"start","bytes":3125000}')
    stream.on_binary(65536)
    reactor.advance(1.0)
    stream.on_text(b'{"type":"burst","n":0,"edge":"end"}')
    reactor.advance(1.0)
    for member in (stream, gamer):
        member.on_text(b'{"type":"ack","t_ms":2000,"up_bytes":5}')
        member.on_text(b'{"type":"done"}')
    reactor.advance(2.5)
    body = submission("tok", [stream, gamer])
    assert body["personas"]["streaming"]["bursts"] == [[0, 1.0]]
    assert body["personas"]["streaming"]["down"] == [[1000.0, 65536], [2000.0, 0]]
    assert body["personas"]["gaming"]["bursts"] == []
    parsed = parse_household_submission(json.dumps(body).encode(), 3.0, ("streaming", "gaming"))
    assert parsed.personas["streaming"].bursts == ((0, 1.0),)


# --- the readable report ---

def _samples(baseline_ms, load_ms, down_mbps, bursts=(), interrupted=False):
    window = int(down_mbps * 1e6 / 8)
    return PersonaSamples(
        pings=tuple([(i, "baseline", i * 100.0, baseline_ms) for i in range(20)]
                    + [(20 + i, "load", 2000 + i * 100.0, load_ms) for i in range(80)]),
        down_windows=tuple((2000 + k * 1000.0, window) for k in range(8)),
        up_acks=(), bursts=tuple(bursts), interrupted=interrupted)


def test_report_shows_the_household_grade_who_set_it_and_every_persona():
    personas = {p.name: p for p in (streaming, gaming, video_call, updates)}
    result = score_household(personas, {
        "streaming": _samples(10, 12, 5, bursts=[(0, 1.02), (1, 1.4)]),
        "gaming": _samples(10, 190, 1.5),
        "video": _samples(10, 11, 2.5, interrupted=True),
        "updates": _samples(10, 40, 812),
    }, 8.0)
    text = render_household({"result": result, "share_id": "abc"}, "https://test.example")
    lines = text.splitlines()
    said = ("Game updates arrived up to 180 ms later than on an idle line while the household was busy "
            "(95th percentile)")
    assert lines[0] == f"Household Grade: F  (set by gaming: {said})"
    assert lines[1].startswith("Network fairness (Jain's index") and "1.00 over 2 personas" in lines[1]
    gaming_row = next(line for line in lines if line.startswith("  gaming "))
    assert "F" in gaming_row and "+180.00 ms" in gaming_row and "0.0%" in gaming_row
    assert "1.5 Mbit/s / 1.5 Mbit/s" in gaming_row
    streaming_row = next(line for line in lines if line.startswith("  streaming "))
    assert "2 of 2 on time, slowest 1.4 of 5 s" in streaming_row
    assert "interrupted" in next(line for line in lines if line.startswith("  video "))
    updates_row = next(line for line in lines if line.startswith("  updates "))
    assert "812.0 Mbit/s / 50.0 Mbit/s" in updates_row and "+30.00 ms" not in updates_row
    assert f"  gaming (Alex, competitive gaming): {said}." in lines
    assert ("  streaming (Jake, HD streaming): All 2 video segments arrived in time: the slowest took 1.4 s "
            "of the 5 s it had.") in lines
    assert "Interrupted (not graded): video" in lines
    assert lines[-1] == "Share: https://test.example/r/abc"


def test_report_says_when_this_device_could_not_keep_up():
    """Game updates the server timed at 2 ms that this CLI read 300 ms later: not graded, and said."""
    personas = {p.name: p for p in (streaming, gaming)}
    held = _samples(2, 2, 1.5)
    held = PersonaSamples(pings=tuple(row[:3] + (300.0 if row[1] == "load" else 2.0, 2.0) for row in held.pings),
                          down_windows=held.down_windows, up_acks=(), bursts=(), interrupted=False)
    result = score_household(personas, {"streaming": _samples(10, 12, 5, bursts=[(0, 1.02)]), "gaming": held}, 8.0)
    lines = render_household({"result": result, "share_id": None}, "https://test.example").splitlines()
    assert ("  gaming (Alex, competitive gaming): Not graded: 80 of 80 game updates reached this device in time, "
            "but it handled them late.") in lines
    assert ("  ! This device could not keep up: 80 of 80 game updates reached it in time, but it handled "
            "them late, so they are not graded.") in lines
    assert "  ! Another device or browser would show what your line does." in lines
