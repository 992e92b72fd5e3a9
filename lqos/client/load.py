"""Bulk load: download and upload streams, and the server's count of upload bytes.

- A download stream is a streaming ``GET download_url``; its body protocol
  only counts bytes as they arrive (no buffering, no parsing).
- An upload stream is a ``POST upload_url`` whose body producer writes one
  reused random block under the transport's flow control.
- Upload throughput is what the *server* says it received:
  ``progress_url`` is polled on every window boundary and its
  ``upload_bytes``, read between samples, gives each window's bytes.
- A :class:`StreamPool` keeps N streams of one kind open and opens a new one
  when a stream ends while the phase still runs.
- A :class:`RateCeiling` keeps each direction within what one 250 ms window
  may hold (the server rejects windows above 100 Gbit/s as made up).
"""

from __future__ import annotations

import os
from typing import Callable

from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import PotentialDataLoss, ResponseDone, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from lqos.client.http import USER_AGENT, ClientError, Http, Reply, describe_error
from lqos.client.schedule import TestClock
from lqos.client.windows import counter_windows, window_index, window_start
from lqos.measure.units import SECONDS

BLOCK_BYTES = 256 * 1024
# The server takes at most 256 MiB per upload body (lqos.load.limits); a stream
# whose body is spent is simply re-opened.
UPLOAD_BODY_BYTES = 256 * 1024 * 1024
POLL_TIMEOUT = 2 * SECONDS
# With no answer from the progress counter for this long, the server is gone.
POLL_GIVE_UP_MS = 4000.0
FINAL_POLL_ATTEMPTS = 3


class RateCeiling:
    """At most *bytes_per_window* bytes per 250 ms window of the test clock, over
    all streams of one direction; None means no ceiling.

    Streams ask :meth:`allows` before moving more and :meth:`wait` for the next
    window when it says no; the ceiling only delays, it never drops a byte.
    """

    def __init__(self, reactor, clock: TestClock, bytes_per_window: int | None):
        self._reactor = reactor
        self._clock = clock
        self.bytes_per_window = bytes_per_window
        self._window = None
        self._used = 0
        self._waiting: list[Callable[[], None]] = []
        self._timer = None

    def _current(self) -> None:
        index = window_index(self._clock.now_ms())
        if index != self._window:
            self._window, self._used = index, 0

    def allows(self) -> bool:
        if self.bytes_per_window is None:
            return True
        self._current()
        return self._used < self.bytes_per_window

    def spend(self, byte_count: int) -> None:
        if self.bytes_per_window is not None:
            self._current()
            self._used += byte_count

    def wait(self, resume: Callable[[], None]) -> None:
        """Call *resume* at the start of the next window."""
        self._waiting.append(resume)
        if self._timer is None:
            delay = (window_start(window_index(self._clock.now_ms()) + 1) - self._clock.now_ms()) / 1000.0
            self._timer = self._reactor.callLater(max(0.0, delay), self._release)

    def _release(self) -> None:
        self._timer = None
        waiting, self._waiting = self._waiting, []
        for resume in waiting:
            resume()

    def stop(self) -> None:
        self._waiting = []
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class _CountingBody(Protocol):
    """A response body that is counted and dropped as it arrives."""

    def __init__(self, on_bytes: Callable[[int], None], ceiling: RateCeiling, finished: defer.Deferred):
        self._on_bytes = on_bytes
        self._ceiling = ceiling
        self._finished = finished

    def dataReceived(self, data: bytes) -> None:
        size = len(data)
        self._on_bytes(size)
        self._ceiling.spend(size)
        if not self._ceiling.allows():
            self.transport.pauseProducing()
            self._ceiling.wait(self.transport.resumeProducing)

    def connectionLost(self, reason: Failure) -> None:
        if self._finished.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self._finished.callback(None)
        else:
            self._finished.errback(reason)


async def _refused(response, what: str) -> ClientError:
    body = await readBody(response)
    return ClientError(f"the server refused the {what}: {Reply(response.code, response.headers, body).error_text()}")


def download_stream(agent, url: str, on_bytes: Callable[[int], None], ceiling: RateCeiling) -> defer.Deferred:
    """One streaming GET; fires when the server ends the body.  Cancel to stop it."""
    headers = Headers({b"user-agent": [USER_AGENT], b"accept-encoding": [b"identity"]})
    d = agent.request(b"GET", url.encode(), headers)
    return d.addCallback(_receive_download, on_bytes, ceiling)


def _receive_download(response, on_bytes, ceiling):
    if response.code != 200:
        return defer.ensureDeferred(_refused(response, "download")).addCallback(_raise)
    body = None
    finished = defer.Deferred(lambda _: body.transport.stopProducing())
    body = _CountingBody(on_bytes, ceiling, finished)
    response.deliverBody(body)
    return finished


def _raise(problem: Exception):
    raise problem


@implementer(IBodyProducer)
class RepeatingBodyProducer:
    """*length* bytes made of one block written again and again, as fast as the
    transport takes them (it pauses us when its buffer is full) and the
    ceiling allows."""

    def __init__(self, block: bytes, length: int, ceiling: RateCeiling):
        self.length = length
        self._block = block
        self._ceiling = ceiling
        self._remaining = length
        self._paused = False
        self._gated = False
        self._stopped = False
        self._consumer = None
        self._done: defer.Deferred | None = None

    def startProducing(self, consumer) -> defer.Deferred:
        self._consumer = consumer
        self._done = defer.Deferred()
        self._write()
        return self._done

    def _write(self) -> None:
        while not (self._paused or self._gated or self._stopped) and self._remaining > 0:
            if not self._ceiling.allows():
                self._gated = True
                self._ceiling.wait(self._ungate)
                return
            chunk = self._block if self._remaining >= len(self._block) else self._block[: self._remaining]
            self._remaining -= len(chunk)
            self._ceiling.spend(len(chunk))
            self._consumer.write(chunk)
        if self._remaining == 0 and not self._stopped and not self._done.called:
            self._done.callback(None)

    def _ungate(self) -> None:
        self._gated = False
        self._write()

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        if self._consumer is not None:
            self._write()

    def stopProducing(self) -> None:
        self._stopped = True


def random_block(size: int = BLOCK_BYTES) -> bytes:
    """Incompressible bytes, so nothing on the path can shrink the upload."""
    return os.urandom(size)


def upload_stream(agent, url: str, block: bytes, ceiling: RateCeiling,
                  length: int = UPLOAD_BODY_BYTES) -> defer.Deferred:
    """One POST of *length* bytes; fires with the server's answer.  Cancel to stop it."""
    headers = Headers({b"user-agent": [USER_AGENT], b"content-type": [b"application/octet-stream"]})
    d = agent.request(b"POST", url.encode(), headers, RepeatingBodyProducer(block, length, ceiling))
    return d.addCallback(lambda response: defer.ensureDeferred(_upload_answer(response)))


async def _upload_answer(response) -> None:
    if response.code != 200:
        raise await _refused(response, "upload")
    await readBody(response)


class StreamPool:
    """Keeps ``count`` streams open while running; re-opens a stream that ends.

    A stream that fails while the pool runs is reported once through
    *on_failure* and the pool stops; failures after :meth:`stop` (the
    cancellations themselves) are expected and dropped.
    """

    def __init__(self, open_stream: Callable[[], defer.Deferred], on_failure: Callable[[str], None]):
        self._open_stream = open_stream
        self._on_failure = on_failure
        self._streams: set[defer.Deferred] = set()
        self.count = 0
        self.running = False

    def resize(self, count: int) -> None:
        self.count = count
        self.running = True
        while self.running and len(self._streams) < count:
            self._open()

    def _open(self) -> None:
        d = self._open_stream()
        self._streams.add(d)
        d.addBoth(self._ended, d)

    def _ended(self, result, d: defer.Deferred) -> None:
        self._streams.discard(d)
        if not self.running:
            return None
        if isinstance(result, Failure):
            self.stop()
            self._on_failure(describe_error(result.value))
        elif len(self._streams) < self.count:
            self._open()
        return None

    def stop(self) -> None:
        self.running = False
        for d in list(self._streams):
            d.cancel()
        self._streams.clear()


class UploadMeter:
    """Upload bytes per window, from the server's counter (its ``upload_bytes``).

    Each poll's answer is a sample of the counter at the midpoint of the
    request; a window's bytes are the counter's growth between its edges,
    read linearly between samples.  A window is reported (``on_window``) as
    soon as a sample after its end exists.  One poll at a time.
    """

    def __init__(self, http: Http, url: str, clock: TestClock,
                 on_window: Callable[[int, int], None], on_failure: Callable[[str], None]):
        self._http = http
        self._url = url
        self._clock = clock
        self._on_window = on_window
        self._on_failure = on_failure
        self.samples: list[tuple[float, int]] = []
        self._next_window: int | None = None
        self._in_flight: defer.Deferred | None = None
        self._last_answer_ms = clock.now_ms()
        self.stopped = False

    def poll(self, boundary: int) -> defer.Deferred | None:
        """Sample the counter (unless a poll is still out); *boundary* is this tick's window."""
        if self._in_flight is not None or self.stopped:
            return self._in_flight
        if self._next_window is None:
            self._next_window = boundary
        sent = self._clock.now_ms()
        d = self._http.request_json("GET", self._url, timeout=POLL_TIMEOUT)
        self._in_flight = d
        d.addCallback(self._answered, sent)
        d.addErrback(self._failed)
        d.addBoth(self._settled)
        return d

    def _answered(self, reply: Reply, sent: float) -> None:
        if reply.status != 200:
            raise ClientError(f"the progress counter answered {reply.error_text()}")
        total = reply.json().get("upload_bytes") if isinstance(reply.json(), dict) else None
        if not isinstance(total, int):
            raise ClientError("the progress counter has no upload_bytes")
        now = self._clock.now_ms()
        self._last_answer_ms = now
        self.samples.append(((sent + now) / 2.0, total))
        self._report_windows()

    def _report_windows(self) -> None:
        latest = self.samples[-1][0]
        stop = self._next_window
        while window_start(stop + 1) <= latest:
            stop += 1
        for offset, size in enumerate(counter_windows(self.samples, self._next_window, stop)):
            self._on_window(self._next_window + offset, size)
        self._next_window = stop

    def _failed(self, failure: Failure) -> None:
        silent = self._clock.now_ms() - self._last_answer_ms
        if isinstance(failure.value, ClientError) or silent > POLL_GIVE_UP_MS:
            self.stopped = True
            self._on_failure(describe_error(failure.value))

    def _settled(self, result) -> None:
        self._in_flight = None

    def window_bytes(self, index: int) -> int:
        if not self.samples:
            return 0
        return counter_windows(self.samples, index, index + 1)[0]

    async def finish(self, end_ms: float) -> None:
        """After the load: make sure a sample after *end_ms* covers the last window."""
        if self._in_flight is not None:
            await self._in_flight
        for _ in range(FINAL_POLL_ATTEMPTS):
            if self.stopped or self._next_window is None or (self.samples and self.samples[-1][0] >= end_ms):
                return
            await self.poll(window_index(end_ms))

    def stop(self) -> None:
        self.stopped = True
