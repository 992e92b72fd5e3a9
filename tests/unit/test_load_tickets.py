"""Load workers admit streams from signed URLs alone, and report what they count to the main process."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from lqos.load.tickets import FORGET_AFTER_SECONDS, LoadTickets, TicketRefused
from lqos.sessions import LOAD_SLACK, SessionRegistry, load_token

SECRET = b"s" * 32


def started(schedule: str = "short"):
    clock = Clock()
    registry = SessionRegistry(SECRET, clock)
    session = registry.start("192.0.2.1", schedule=schedule)
    return registry, session, clock


def test_a_worker_admits_the_url_the_main_process_signed():
    _, session, clock = started()
    tickets = LoadTickets(SECRET, clock)
    admitted = tickets.admit(session.test_id, str(session.load_until), load_token(SECRET, session))
    assert admitted.test_id == session.test_id
    assert admitted.until == session.load_until >= session.started_at + session.duration + LOAD_SLACK


@pytest.mark.parametrize("change", ["test", "until", "token", "secret"])
def test_any_changed_part_of_the_url_is_refused_403(change):
    _, session, clock = started()
    test_id, until, token = session.test_id, str(session.load_until), load_token(SECRET, session)
    secret = SECRET
    if change == "test":
        test_id = test_id + "x"
    elif change == "until":
        until = str(session.load_until + 3600)  # a longer life is not for the client to choose
    elif change == "token":
        token = token[:-1] + ("A" if token[-1] != "A" else "B")
    else:
        secret = b"t" * 32
    with pytest.raises(TicketRefused) as refused:
        LoadTickets(secret, clock).admit(test_id, until, token)
    assert refused.value.status == 403


@pytest.mark.parametrize("until", ["", "soon", "1e400", "nan"])
def test_a_malformed_until_is_403(until):
    _, session, clock = started()
    with pytest.raises(TicketRefused) as refused:
        LoadTickets(SECRET, clock).admit(session.test_id, until, load_token(SECRET, session))
    assert refused.value.status == 403


def test_after_its_time_a_url_is_410():
    _, session, clock = started()
    tickets = LoadTickets(SECRET, clock)
    clock.advance(session.load_until + 1 - clock.seconds())
    with pytest.raises(TicketRefused) as refused:
        tickets.admit(session.test_id, str(session.load_until), load_token(SECRET, session))
    assert refused.value.status == 410


def test_counts_reach_the_session_once_as_deltas():
    registry, session, clock = started()
    tickets = LoadTickets(SECRET, clock)
    load = tickets.admit(session.test_id, str(session.load_until), load_token(SECRET, session))
    load.upload_bytes += 1000
    load.download_bytes += 5
    for report in tickets.take_unreported():
        registry.count_load_bytes(report)
    load.upload_bytes += 24
    for report in tickets.take_unreported():
        registry.count_load_bytes(report)
    assert tickets.take_unreported() == []
    assert (session.upload_bytes, session.download_bytes) == (1024, 5)


def test_a_worker_forgets_a_test_long_over_with_nothing_open():
    _, session, clock = started()
    tickets = LoadTickets(SECRET, clock)
    load = tickets.admit(session.test_id, str(session.load_until), load_token(SECRET, session))
    load.active_streams = 1
    clock.advance(session.load_until + FORGET_AFTER_SECONDS + 1)
    tickets.take_unreported()
    assert len(tickets) == 1  # a stream is still open
    load.active_streams = 0
    tickets.take_unreported()
    assert len(tickets) == 0


def test_reports_for_many_tests_come_in_bounded_pieces():
    clock = Clock()
    tickets = LoadTickets(SECRET, clock)
    sessions = [SessionRegistry(SECRET, clock).start("192.0.2.1") for _ in range(1200)]
    for session in sessions:
        tickets.admit(session.test_id, str(session.load_until), load_token(SECRET, session)).upload_bytes = 1
    reports = tickets.take_unreported()
    assert [len(report) for report in reports] == [500, 500, 200]


@given(st.one_of(st.none(), st.integers(), st.text(), st.lists(st.integers()),
                 st.dictionaries(st.text(), st.one_of(st.lists(st.integers()), st.text(), st.floats()))))
def test_a_malformed_report_changes_nothing(report):
    registry, session, _ = started()
    registry.count_load_bytes(report)
    registry.count_load_bytes({session.test_id: [1, -1]})
    registry.count_load_bytes({session.test_id: [1.5, 2]})
    registry.count_load_bytes({session.test_id: [True, 2]})
    registry.count_load_bytes({session.test_id: [1, 2, 3]})
    assert (session.upload_bytes, session.download_bytes) == (0, 0)
