"""Test sessions: tokens, expiry, one submission, and the per-IP limits."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from lqos.sessions import (
    QUICK_SCHEDULES,
    SCHEDULES,
    SUBMIT_GRACE,
    LimitExceeded,
    SessionLimits,
    SessionRefused,
    SessionRegistry,
    offered_schedules,
    sign,
)

SECRET = b"s" * 32


def registry(**limits) -> tuple[SessionRegistry, Clock]:
    clock = Clock()
    return SessionRegistry(SECRET, clock, SessionLimits(**limits)), clock


def test_token_opens_its_session_from_its_ip_only():
    sessions, _ = registry()
    session = sessions.start("192.0.2.1", schedule="short")
    assert sessions.authorize(session.test_id, session.token, "192.0.2.1") is session
    with pytest.raises(SessionRefused) as refused:
        sessions.authorize(session.test_id, session.token, "192.0.2.2")
    assert refused.value.status == 403


def test_forged_token_is_refused():
    sessions, _ = registry()
    session = sessions.start("192.0.2.1")
    forged = sign(b"another secret" * 3, session.test_id, "192.0.2.1", session.started_at)
    with pytest.raises(SessionRefused):
        sessions.authorize(session.test_id, forged, "192.0.2.1")
    with pytest.raises(SessionRefused):
        sessions.authorize("no-such-test", session.token, "192.0.2.1")


def test_token_expires_after_the_schedule_and_grace():
    sessions, clock = registry()
    session = sessions.start("192.0.2.1", schedule="short")
    clock.advance(session.duration + SUBMIT_GRACE + 1)
    with pytest.raises(SessionRefused) as refused:
        sessions.authorize(session.test_id, session.token, "192.0.2.1")
    assert refused.value.status == 410


def test_submitted_session_cannot_be_replayed():
    sessions, _ = registry()
    session = sessions.start("192.0.2.1")
    session.submitted = True
    with pytest.raises(SessionRefused) as refused:
        sessions.authorize(session.test_id, session.token, "192.0.2.1")
    assert refused.value.status == 409


def test_concurrent_limit_per_ip_says_when_to_retry():
    sessions, clock = registry(concurrent_per_ip=1)
    first = sessions.start("192.0.2.1", schedule="short")
    sessions.start("192.0.2.9")  # another address is not affected
    clock.advance(5)
    with pytest.raises(LimitExceeded) as limit:
        sessions.start("192.0.2.1")
    assert limit.value.retry_after == int(first.duration - 5) + 1
    first.submitted = True
    sessions.start("192.0.2.1")


def test_hourly_limit_per_ip():
    sessions, clock = registry(per_hour_per_ip=3, concurrent_per_ip=10)
    for _ in range(3):
        sessions.start("2001:db8::1").submitted = True
        clock.advance(60)
    with pytest.raises(LimitExceeded) as limit:
        sessions.start("2001:db8::1")
    assert limit.value.retry_after == 3600 - 180 + 1
    clock.advance(3600 - 180)
    sessions.start("2001:db8::1")


def test_global_limit():
    sessions, _ = registry(concurrent_total=2)
    sessions.start("192.0.2.1")
    sessions.start("192.0.2.2")
    with pytest.raises(LimitExceeded):
        sessions.start("192.0.2.3")


def test_phase_at_follows_the_schedule():
    sessions, _ = registry()
    session = sessions.start("192.0.2.1")
    assert [session.phase_at(t) for t in (0, 4.9, 5, 14.9, 39.9, 40)] == [
        "baseline", "baseline", "upload_warmup", "upload", "bidirectional", None]


def test_the_quick_schedule_runs_only_where_it_is_offered():
    plain, _ = registry()
    with pytest.raises(KeyError):
        plain.start("192.0.2.1", schedule="quick")
    clock = Clock()
    quick = SessionRegistry(SECRET, clock, SessionLimits(), offered_schedules(quick=True))
    session = quick.start("192.0.2.1", schedule="quick")
    assert session.phases == QUICK_SCHEDULES["single_user"] and session.duration < 10
    assert quick.start("192.0.2.2", "virtual_household", "quick").duration < 6
    assert quick.start("192.0.2.3", schedule="standard").duration == 40


def test_without_the_household_only_single_user_sessions_start():
    offered = offered_schedules(quick=True, household=False)
    assert list(offered) == ["single_user"] and "quick" in offered["single_user"]
    single_user_only = SessionRegistry(SECRET, Clock(), SessionLimits(), offered)
    with pytest.raises(KeyError):
        single_user_only.start("192.0.2.1", "virtual_household", "standard")
    assert single_user_only.start("192.0.2.1", "single_user", "quick").duration < 10


def test_the_quick_schedule_has_every_phase_of_the_standard_one_in_its_order():
    for mode, phases in QUICK_SCHEDULES.items():
        standard = SCHEDULES[mode]["standard"]
        assert [(p.name, p.load, p.warmup) for p in phases] == [(p.name, p.load, p.warmup) for p in standard]
