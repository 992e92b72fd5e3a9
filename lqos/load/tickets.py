"""What a load worker knows of the tests it serves: only what their signed URLs say.

The main process starts a test and hands the client load URLs carrying
``?test=ID&until=T&token=K``, where K is an HMAC over the test id and T with
the server's secret (``lqos.sessions.load_token``).  A worker checks K with
the same secret, so it needs no shared state to admit a stream, and keeps a
small record per test: its open streams and the bytes it has counted.  The
counts go back to the main process as deltas over the worker's pipe
(``take_unreported``), where the test's progress endpoint and the stored
result read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lqos.net.refusal import Refused
from lqos.sessions import MAX_COUNTED_TESTS_PER_MESSAGE, load_token_valid

# A worker forgets a test this long after its last stream may start and once
# nothing of it is open or unreported.
FORGET_AFTER_SECONDS = 60.0


class TicketRefused(Refused):
    """A load URL that does not open a stream."""


@dataclass
class LoadSession:
    """One test as a load worker sees it: until when it may load, and what it has moved."""

    test_id: str
    until: float
    upload_bytes: int = 0
    download_bytes: int = 0
    active_streams: int = 0
    _reported: tuple[int, int] = (0, 0)

    def take_unreported(self) -> tuple[int, int]:
        """The bytes counted since the last call, as (upload, download)."""
        delta = (self.upload_bytes - self._reported[0], self.download_bytes - self._reported[1])
        self._reported = (self.upload_bytes, self.download_bytes)
        return delta


@dataclass
class LoadTickets:
    """The tests this worker has admitted streams for, checked against the server's secret."""

    secret: bytes
    clock: object
    _sessions: dict[str, LoadSession] = field(default_factory=dict)

    def admit(self, test_id: str, until_text: str, token: str) -> LoadSession:
        """The test a load URL names, if its token is genuine and its time not over."""
        try:
            until = float(int(until_text))
        except ValueError:
            raise TicketRefused(403, "a load URL needs ?test=ID&until=T&token=K from POST /api/tests") from None
        now = self.clock.seconds()
        # Expiry is checked below, to answer it with its own status.
        if not load_token_valid(self.secret, test_id, until, token, now=0.0):
            raise TicketRefused(403, "unknown test or wrong token")
        if now > until:
            raise TicketRefused(410, "this test's schedule is over: start a new test")
        session = self._sessions.get(test_id)
        if session is None:
            session = self._sessions[test_id] = LoadSession(test_id, until)
        return session

    def take_unreported(self) -> list[dict[str, list[int]]]:
        """Reports for the main process, ``{test_id: [upload, download]}`` deltas, in bounded pieces.

        Tests long over, with no open stream and nothing left to report, are forgotten here.
        """
        now = self.clock.seconds()
        counts: dict[str, list[int]] = {}
        for test_id, session in list(self._sessions.items()):
            upload, download = session.take_unreported()
            if upload or download:
                counts[test_id] = [upload, download]
            elif session.active_streams == 0 and now > session.until + FORGET_AFTER_SECONDS:
                del self._sessions[test_id]
        items = list(counts.items())
        return [dict(items[start:start + MAX_COUNTED_TESTS_PER_MESSAGE])
                for start in range(0, len(items), MAX_COUNTED_TESTS_PER_MESSAGE)]

    def __len__(self) -> int:
        return len(self._sessions)
