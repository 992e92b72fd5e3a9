"""Test sessions: who may load the server, for how long, and with which token.

A session is created by ``POST /api/tests``; its token is an HMAC over the
test id, the client's IP and the start time with the server's secret, so a
token cannot be forged, moved to another IP, or used after it expires.  The
progress endpoint and the result submission ask this registry; the child
processes (load workers, personas) check tokens of their own scope
(``scoped_token``), signed with the same secret, and need no shared state.

The registry holds no I/O: time comes from an ``IReactorTime`` passed in, so
tests drive it with a ``Clock``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections import deque
from dataclasses import dataclass, field

from lqos.measure.units import SECONDS, MINUTES, HOURS
from lqos.net.refusal import Refused


# Time after the schedule ends during which the result may still be sent.
SUBMIT_GRACE = 2 * MINUTES
# A load stream may start until the schedule ends plus this much, for a slow
# start; the session's token stays valid longer, but only to submit the result.
LOAD_SLACK = 10 * SECONDS
# A load worker reports at most this many tests' byte counts in one message.
MAX_COUNTED_TESTS_PER_MESSAGE = 500


@dataclass(frozen=True)
class Phase:
    """One phase of a schedule, as the server hands it to a client.

    ``load`` names the directions ("down", "up") the single-user test's bulk
    streams load in it, and ``warmup`` marks a phase in which the client finds
    how many streams fill the line; clients take both from the answer rather
    than from the phase's name.  A household's members follow their own
    plans, so its phases load nothing here.
    """

    name: str
    seconds: float
    load: tuple[str, ...] = ()
    warmup: bool = False

    def describe(self) -> dict:
        """The phase in the answer to ``POST /api/tests``."""
        return {"name": self.name, "seconds": self.seconds, "load": list(self.load), "warmup": self.warmup}


DOWN, UP = ("down",), ("up",)


# Schedules by mode: the LibreQoS test's 40 s single-user schedule and its
# household's 5 s idle baseline + 30 s of every persona at once; the short
# ones are for tests and quick checks.
#
# The single-user phases have the LibreQoS lengths, but upload comes before
# download, so that the download streams run on into the bidirectional phase
# and the uploads join them.  The other way round, the bidirectional phase's
# downloads start while the uplink FIFO is full: their ACKs wait behind it
# (250-300 ms on a bloated line) and their windows grow one slow round trip
# at a time, so a 5 s phase measured 30 of a 200 Mbit/s link's 191 (tests/
# testbed).  Uploads that join a full downlink reach their share in under a
# second, and the phase then shows the steady state of both at once.
SCHEDULES: dict[str, dict[str, tuple[Phase, ...]]] = {
    "single_user": {
        "standard": (
            Phase("baseline", 5), Phase("upload_warmup", 5, UP, warmup=True), Phase("upload", 10, UP),
            Phase("download_warmup", 5, DOWN, warmup=True), Phase("download", 10, DOWN),
            Phase("bidirectional", 5, DOWN + UP),
        ),
        "short": (
            Phase("baseline", 2), Phase("upload_warmup", 2, UP, warmup=True), Phase("upload", 3, UP),
            Phase("download_warmup", 2, DOWN, warmup=True), Phase("download", 3, DOWN),
            Phase("bidirectional", 3, DOWN + UP),
        ),
    },
    "virtual_household": {
        "standard": (Phase("baseline", 5), Phase("load", 30)),
        "short": (Phase("baseline", 2), Phase("load", 8)),
    },
}

# A schedule for checking an installation end to end in seconds: the
# project's own suite runs it on loopback, and an operator's monitoring may.
# A phase of a second or two holds too few probes and throughput windows to
# grade a real line well, so a server offers it only when its config says
# ``quick_schedule = on``.
QUICK_SCHEDULES: dict[str, tuple[Phase, ...]] = {
    "single_user": (
        Phase("baseline", 1.5), Phase("upload_warmup", 1, UP, warmup=True), Phase("upload", 1.5, UP),
        Phase("download_warmup", 1, DOWN, warmup=True), Phase("download", 1.5, DOWN),
        Phase("bidirectional", 1.5, DOWN + UP),
    ),
    "virtual_household": (Phase("baseline", 1.5), Phase("load", 4)),
}


def offered_schedules(quick: bool = False, household: bool = True) -> dict[str, dict[str, tuple[Phase, ...]]]:
    """The schedules a server runs, by mode: ``SCHEDULES``, "quick" when it is switched on, and
    no virtual household when that is switched off."""
    return {mode: {**schedules, "quick": QUICK_SCHEDULES[mode]} if quick else schedules
            for mode, schedules in SCHEDULES.items() if household or mode != "virtual_household"}


@dataclass(frozen=True)
class SessionLimits:
    concurrent_per_ip: int = 2
    per_hour_per_ip: int = 30
    concurrent_total: int = 200


class LimitExceeded(Exception):
    """Too many tests; ``retry_after`` is whole seconds until one may start."""

    def __init__(self, reason: str, retry_after: int):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = max(1, retry_after)


class SessionRefused(Refused):
    """A token that is wrong, expired, spent or from another IP."""


@dataclass
class TestSession:
    test_id: str
    client_ip: str
    mode: str
    schedule_name: str
    phases: tuple[Phase, ...]
    started_at: float
    token: str
    download_bytes: int = 0
    upload_bytes: int = 0
    active_streams: int = 0
    submitted: bool = False

    @property
    def duration(self) -> float:
        return sum(phase.seconds for phase in self.phases)

    @property
    def expires_at(self) -> float:
        return self.started_at + self.duration + SUBMIT_GRACE

    @property
    def load_until(self) -> int:
        """The last second at which a load worker accepts a new stream for this test."""
        return int(self.started_at + self.duration + LOAD_SLACK) + 1

    def phase_at(self, elapsed: float) -> str | None:
        """The phase the schedule is in *elapsed* seconds after the start."""
        for phase in self.phases:
            if elapsed < phase.seconds:
                return phase.name
            elapsed -= phase.seconds
        return None


def sign(secret: bytes, test_id: str, client_ip: str, started_at: float) -> str:
    message = f"{test_id}|{client_ip}|{started_at:.3f}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def scoped_token(secret: bytes, scope: str, test_id: str, expires_at: float) -> str:
    """A token for a child process's port, checked there with the same secret and no shared state.

    It is bound to the test, its *scope* (which kind of port) and its expiry,
    but not to the client's IP: the child ports see no proxy headers, and a
    dual-stack client may reach them over another address family.  The main
    port's session token, which is bound to the IP, still guards the result.
    """
    return sign(secret, f"{scope}:{test_id}", "", float(int(expires_at)))


def scoped_token_valid(secret: bytes, scope: str, test_id: str, expires_at: float, token: str,
                       now: float) -> bool:
    if not test_id or now > expires_at or len(token) > 128:
        return False
    expected = scoped_token(secret, scope, test_id, expires_at)
    return hmac.compare_digest(expected.encode(), token.encode())


def persona_token(secret: bytes, test_id: str, expires_at: float) -> str:
    """The token a household's persona connections present to the persona processes."""
    return scoped_token(secret, "household", test_id, expires_at)


def persona_token_valid(secret: bytes, test_id: str, expires_at: float, token: str, now: float) -> bool:
    return scoped_token_valid(secret, "household", test_id, expires_at, token, now)


def load_token(secret: bytes, session: TestSession) -> str:
    """The token a test's load URLs carry to the load workers, valid until ``load_until``."""
    return scoped_token(secret, "load", session.test_id, session.load_until)


def load_token_valid(secret: bytes, test_id: str, until: float, token: str, now: float) -> bool:
    return scoped_token_valid(secret, "load", test_id, until, token, now)


@dataclass
class SessionRegistry:
    """Every live test session, and the per-IP and global limits on starting one."""

    secret: bytes
    clock: object
    limits: SessionLimits = SessionLimits()
    schedules: dict[str, dict[str, tuple[Phase, ...]]] = field(default_factory=offered_schedules)
    _sessions: dict[str, TestSession] = field(default_factory=dict)
    _starts_by_ip: dict[str, deque] = field(default_factory=dict)

    def start(self, client_ip: str, mode: str = "single_user", schedule: str = "standard") -> TestSession:
        """A new session on one of ``schedules``; KeyError for a mode or schedule this server does not run."""
        phases = self.schedules[mode][schedule]
        now = self.clock.seconds()
        self._forget_expired(now)
        self._check_limits(client_ip, now)
        test_id = secrets.token_urlsafe(12)
        token = sign(self.secret, test_id, client_ip, now)
        session = TestSession(test_id, client_ip, mode, schedule, phases, now, token)
        self._sessions[test_id] = session
        self._starts_by_ip.setdefault(client_ip, deque()).append(now)
        return session

    def authorize(self, test_id: str, token: str, client_ip: str) -> TestSession:
        """The session *token* opens, for the load endpoints and the submission."""
        session = self._sessions.get(test_id)
        if session is None or not hmac.compare_digest(token.encode(), session.token.encode()):
            raise SessionRefused(403, "unknown test or wrong token")
        if session.client_ip != client_ip:
            raise SessionRefused(403, "this test was started from another IP address")
        if self.clock.seconds() > session.expires_at:
            raise SessionRefused(410, "this test has expired")
        if session.submitted:
            raise SessionRefused(409, "this test's result was already submitted")
        return session

    def find(self, test_id: str) -> TestSession:
        session = self._sessions.get(test_id)
        if session is None:
            raise SessionRefused(403, "unknown test or wrong token")
        return session

    def count_load_bytes(self, counts: object) -> None:
        """Add a load worker's report ``{test_id: [upload_bytes, download_bytes]}`` to the sessions.

        The report comes from a child process over its pipe, so it is checked
        as any outside input is: an ill-formed entry is skipped, not trusted.
        """
        if not isinstance(counts, dict):
            return
        for test_id, pair in list(counts.items())[:MAX_COUNTED_TESTS_PER_MESSAGE]:
            session = self._sessions.get(test_id)
            if session is None or not _is_byte_pair(pair):
                continue
            session.upload_bytes += pair[0]
            session.download_bytes += pair[1]

    def active(self) -> list[TestSession]:
        now = self.clock.seconds()
        return [s for s in self._sessions.values() if not s.submitted and now <= s.expires_at]

    def _check_limits(self, client_ip: str, now: float) -> None:
        active = self.active()
        if len(active) >= self.limits.concurrent_total:
            raise LimitExceeded("the server is running as many tests as it can", 30)
        mine = [s for s in active if s.client_ip == client_ip]
        if len(mine) >= self.limits.concurrent_per_ip:
            soonest = min(s.started_at + s.duration for s in mine)
            raise LimitExceeded("a test from this address is already running", int(soonest - now) + 1)
        starts = self._starts_by_ip.get(client_ip, ())
        if len(starts) >= self.limits.per_hour_per_ip:
            raise LimitExceeded("too many tests from this address this hour", int(starts[0] + HOURS - now) + 1)

    def _forget_expired(self, now: float) -> None:
        for test_id in [t for t, s in self._sessions.items() if now > s.expires_at or s.submitted]:
            del self._sessions[test_id]
        for ip in list(self._starts_by_ip):
            starts = self._starts_by_ip[ip]
            while starts and starts[0] <= now - HOURS:
                starts.popleft()
            if not starts:
                del self._starts_by_ip[ip]


def _is_byte_pair(value: object) -> bool:
    return (isinstance(value, list) and len(value) == 2
            and all(type(count) is int and 0 <= count < 2**53 for count in value))
