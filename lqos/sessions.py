"""Test sessions: who may load the server, for how long, and with which token.

A session is created by ``POST /api/tests``; its token is an HMAC over the
test id, the client's IP and the start time with the server's secret, so a
token cannot be forged, moved to another IP, or used after it expires.  The
load endpoints and the result submission both ask this registry.

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

SECONDS = 1.0
MINUTES = 60 * SECONDS
HOURS = 60 * MINUTES

# Time after the schedule ends during which the result may still be sent.
SUBMIT_GRACE = 2 * MINUTES


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float


# Schedules by mode: the LibreQoS test's 40 s single-user schedule and its
# household's 5 s idle baseline + 30 s of every persona at once; the short
# ones are for tests and quick checks.
SCHEDULES: dict[str, dict[str, tuple[Phase, ...]]] = {
    "single_user": {
        "standard": (
            Phase("baseline", 5), Phase("download_warmup", 5), Phase("download", 10),
            Phase("upload_warmup", 5), Phase("upload", 10), Phase("bidirectional", 5),
        ),
        "short": (
            Phase("baseline", 2), Phase("download_warmup", 2), Phase("download", 3),
            Phase("upload_warmup", 2), Phase("upload", 3), Phase("bidirectional", 3),
        ),
    },
    "virtual_household": {
        "standard": (Phase("baseline", 5), Phase("load", 30)),
        "short": (Phase("baseline", 2), Phase("load", 8)),
    },
}

MODES = tuple(SCHEDULES)


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


class SessionRefused(Exception):
    """A token that is wrong, expired, spent or from another IP; ``status`` is the HTTP code."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class TestSession:
    test_id: str
    client_ip: str
    mode: str
    schedule_name: str
    started_at: float
    token: str
    download_bytes: int = 0
    upload_bytes: int = 0
    active_streams: int = 0
    submitted: bool = False

    @property
    def phases(self) -> tuple[Phase, ...]:
        return SCHEDULES[self.mode][self.schedule_name]

    @property
    def duration(self) -> float:
        return sum(phase.seconds for phase in self.phases)

    @property
    def expires_at(self) -> float:
        return self.started_at + self.duration + SUBMIT_GRACE

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


def persona_token(secret: bytes, test_id: str, expires_at: float) -> str:
    """The token a household's persona connections present to the persona processes.

    It is checked there with the same secret and needs no shared state; it is
    bound to the test and its expiry (the persona ports see no proxy headers,
    so it is not bound to the client's IP).
    """
    return sign(secret, f"household:{test_id}", "", float(int(expires_at)))


def persona_token_valid(secret: bytes, test_id: str, expires_at: float, token: str, now: float) -> bool:
    if not test_id or now > expires_at or len(token) > 128:
        return False
    expected = persona_token(secret, test_id, expires_at)
    return hmac.compare_digest(expected.encode(), token.encode())


@dataclass
class SessionRegistry:
    """Every live test session, and the per-IP and global limits on starting one."""

    secret: bytes
    clock: object
    limits: SessionLimits = SessionLimits()
    _sessions: dict[str, TestSession] = field(default_factory=dict)
    _starts_by_ip: dict[str, deque] = field(default_factory=dict)

    def start(self, client_ip: str, mode: str = "single_user", schedule: str = "standard") -> TestSession:
        now = self.clock.seconds()
        self._forget_expired(now)
        self._check_limits(client_ip, now)
        test_id = secrets.token_urlsafe(12)
        token = sign(self.secret, test_id, client_ip, now)
        session = TestSession(test_id, client_ip, mode, schedule, now, token)
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
