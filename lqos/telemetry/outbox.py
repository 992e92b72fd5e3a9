"""The outbox service: delivers queued webhook and central reports, with retries.

Rows are queued by the store in the same transaction as the result, so a
delivery is owed from the moment the customer is answered.  This service
works them off independently of any request: the customer never waits for
a receiver.

Delivery is at-least-once.  A row is deleted only after a 2xx answer, and a
row being attempted is never handed out again, so duplicates happen only
when the daemon dies between the receiver's 2xx and the delete committing.
For that case every attempt carries ``X-LQoS-Delivery`` (the test id): a
receiver that keeps the ids it has seen gets exactly-once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import treq.client
from twisted.application.internet import backoffPolicy
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool, _HTTP11ClientFactory

from lqos import __version__
from lqos.measure.units import SECONDS, MINUTES
from lqos.telemetry.payloads import delivery_headers
from lqos.telemetry.store import OutboxRow, OutboxTick

log = Logger()

MAX_RETRY_DELAY = 10 * MINUTES
# With a short first delay (tests) the ceiling shrinks too: 7 doublings.
MAX_RETRY_FACTOR = 2 ** 7
MAX_POLL_INTERVAL = 1 * SECONDS
REQUEST_TIMEOUT = 10 * SECONDS
CONCURRENT_DELIVERIES = 4
USER_AGENT = f"lqos-bufferbloat/{__version__}"


@dataclass(frozen=True)
class RetryPolicy:
    """How often to retry a failed delivery, and how many may run at once."""

    first_delay: float = 5 * SECONDS
    max_delay: float = MAX_RETRY_DELAY
    request_timeout: float = REQUEST_TIMEOUT
    concurrency: int = CONCURRENT_DELIVERIES

    @classmethod
    def starting_at(cls, first_delay: float) -> "RetryPolicy":
        """The policy for ``outbox_retry_seconds``: 5 s gives 5, 10, 20 ... 600 s."""
        return cls(first_delay=first_delay, max_delay=min(MAX_RETRY_DELAY, first_delay * MAX_RETRY_FACTOR))

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the *attempts*-th failure in a row: doubling from first_delay up to max_delay."""
        backoff = backoffPolicy(self.first_delay, self.max_delay, factor=2.0, jitter=lambda: 0.0)
        return backoff(max(0, attempts - 1))

    @property
    def poll_interval(self) -> float:
        return min(MAX_POLL_INTERVAL, self.first_delay)


@dataclass(frozen=True)
class Destination:
    """Where one target's rows go, and the secret that signs them."""

    url: str
    secret: str


# (url, body, headers, timeout seconds) -> Deferred firing with the status code
Post = Callable[[str, bytes, Mapping[str, str], float], defer.Deferred]


class Outbox(Service):
    """Works off the outbox table; see the module docstring for the guarantees."""

    name = "outbox"

    def __init__(self, store, destinations: Mapping[str, Destination], clock: IReactorTime,
                 post: Post, policy: RetryPolicy = RetryPolicy()):
        self._store = store
        self._destinations = dict(destinations)
        self._clock = clock
        self._post = post
        self._policy = policy
        self._loop: LoopingCall | None = None
        self._in_flight: dict[int, defer.Deferred] = {}
        self._attempts: dict[int, defer.Deferred] = {}
        self._ticking = False
        self._tick_again = False
        self.depth: dict[str, int] = {}  # cached for /metrics, refreshed by every tick

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.wake)
        self._loop.clock = self._clock
        self._loop.start(self._policy.poll_interval, now=True)

    def stopService(self) -> defer.Deferred:
        """Stop polling, abandon attempts in progress (they stay queued), wait for their rows."""
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        for attempt in list(self._attempts.values()):
            attempt.cancel()
        return defer.DeferredList(list(self._in_flight.values()), consumeErrors=True)

    def wake(self) -> None:
        """Look for due rows now (also called by the store after each save)."""
        if not self.running:
            return
        if self._ticking:
            self._tick_again = True
            return
        self._ticking = True
        d = self._store.outbox_tick(tuple(self._destinations), self._free_slots(), tuple(self._in_flight))
        d.addCallback(self._ticked)
        d.addErrback(lambda failure: log.failure("outbox tick failed", failure))
        d.addBoth(self._tick_finished)

    def _free_slots(self) -> int:
        return max(0, self._policy.concurrency - len(self._in_flight))

    def _ticked(self, tick: OutboxTick) -> None:
        self.depth = tick.depth
        if tick.expired:
            log.warn("dropped {count} deliveries that could not be made within their lifetime",
                     count=tick.expired)
        for row in tick.due[: self._free_slots()]:
            if self.running and row.id not in self._in_flight:
                self._start_delivery(row)

    def _start_delivery(self, row: OutboxRow) -> None:
        """Mark *row* in flight before anything can fire, so no tick hands it out twice."""
        self._in_flight[row.id] = finished = defer.Deferred()
        self._deliver(row).addBoth(self._delivery_finished, row.id, finished)

    def _delivery_finished(self, _, row_id: int, finished: defer.Deferred) -> None:
        self._in_flight.pop(row_id, None)
        finished.callback(None)
        self.wake()

    def _tick_finished(self, _) -> None:
        self._ticking = False
        if self._tick_again:
            self._tick_again = False
            self.wake()

    @defer.inlineCallbacks
    def _deliver(self, row: OutboxRow):
        """Attempt *row* once; delete it on 2xx, else schedule its next attempt."""
        try:
            status, error = yield self._attempt(row)
            if status is not None and 200 <= status < 300:
                yield self._store.delivered(row.id)
            else:
                yield self._schedule_retry(row, error or f"HTTP {status}")
        except Exception:
            log.failure("outbox row {id} could not be updated", id=row.id)

    @defer.inlineCallbacks
    def _attempt(self, row: OutboxRow):
        """One POST; fires with (status, None) or (None, why it failed)."""
        destination = self._destinations[row.target]
        headers = delivery_headers(row.test_id, row.body, int(self._clock.seconds()),
                                   destination.secret, USER_AGENT)
        attempt = self._post(destination.url, row.body, headers, self._policy.request_timeout)
        self._attempts[row.id] = attempt
        try:
            status = yield attempt
            return status, None
        except Exception as error:
            return None, f"{type(error).__name__}: {error}"
        finally:
            self._attempts.pop(row.id, None)

    def _schedule_retry(self, row: OutboxRow, error: str) -> defer.Deferred:
        attempts = row.attempts + 1
        delay = self._policy.delay(attempts)
        if attempts == 1:
            log.warn("{target} delivery of test {test_id} failed ({error}); retrying with backoff",
                     target=row.target, test_id=row.test_id, error=error)
        return self._store.retry_later(row.id, attempts, self._clock.seconds() + delay, error)


class _DiscardBody(Protocol):
    """Drops a receiver's response body unread: only its status counts."""

    def connectionMade(self) -> None:
        self.transport.stopProducing()


class _QuietClientFactory(_HTTP11ClientFactory):
    """The pool's connection factory without a log line per connection (one per attempt)."""

    noisy = False


class HttpPoster:
    """POSTs with treq on a private, non-persistent connection pool (no shared state)."""

    def __init__(self, reactor):
        self._reactor = reactor
        pool = HTTPConnectionPool(reactor, persistent=False)
        pool._factory = _QuietClientFactory  # per pool; the documented class attribute is global
        agent = Agent(reactor, connectTimeout=REQUEST_TIMEOUT, pool=pool)
        self._client = treq.client.HTTPClient(agent)

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> defer.Deferred:
        d = self._client.post(url, data=body, headers=dict(headers), allow_redirects=False,
                              unbuffered=True)
        d.addTimeout(timeout, self._reactor)
        d.addCallback(self._status)
        return d

    @staticmethod
    def _status(response) -> int:
        response.deliverBody(_DiscardBody())
        return response.code
