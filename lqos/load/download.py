"""``GET /download``: a paced stream of incompressible bytes."""

from __future__ import annotations

from typing import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer


@implementer(IPushProducer)
class DownloadStream:
    """Write *block* again and again while the transport has room, until time or bytes run out.

    The request's transport pauses this producer as soon as its buffer holds
    more than Twisted's ``bufferSize`` and resumes it when the buffer has
    drained, so a client that stops reading stops the writing: memory stays
    at one block.  The stream ends with a clean chunked terminator when its
    duration or byte budget is spent, and stops at once when the client goes.
    """

    def __init__(self, request, block: bytes, byte_budget: int, count_bytes: Callable[[int], None]):
        self._request = request
        self._block = block
        self._remaining = byte_budget
        self._count_bytes = count_bytes
        self._paused = False
        self._finished = False
        self._timer = None
        self._done: Deferred | None = None

    def start(self, clock, seconds: float) -> Deferred:
        """Begin writing; the Deferred fires when the stream has ended on its own."""
        self._done = Deferred(canceller=lambda ignored: self._stop())
        self._timer = clock.callLater(seconds, self._end)
        self._request.registerProducer(self, True)
        self.resumeProducing()
        return self._done

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        while not (self._paused or self._finished):
            self._write_block()

    def stopProducing(self) -> None:
        """The connection is gone: write nothing more."""
        self._stop()

    def _write_block(self) -> None:
        data = self._block if self._remaining >= len(self._block) else self._block[: self._remaining]
        self._remaining -= len(data)
        self._count_bytes(len(data))
        self._request.write(data)
        if self._remaining <= 0:
            self._end()

    def _end(self) -> None:
        """Time or bytes are spent: let the route finish the response normally."""
        if self._stop():
            self._done.callback(None)

    def _stop(self) -> bool:
        """Stop writing and give the transport back; False when already stopped."""
        if self._finished:
            return False
        self._finished = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if self._request.producer is self and self._request.channel is not None:
            self._request.unregisterProducer()
        return True
