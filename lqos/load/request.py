"""A ``Request`` that decides where a body goes before the body is read.

Twisted reads a whole request body before routing it, into memory or a
temporary file, with no size limit.  ``LoadAwareRequest`` looks at the
method and path as soon as the headers are in (``gotLength``) and installs a
sink: for ``POST /upload`` one that authorizes the test, then counts and
drops every byte; for anything else a buffer capped at 1 MiB.  A body that
is refused gets its JSON error at once, without being read.  The main
process, which serves no uploads, holds every body to the small cap.
"""

from __future__ import annotations

from io import BytesIO
from urllib.parse import parse_qs, unquote_to_bytes

from twisted.logger import Logger
from twisted.web import server
from twisted.web.iweb import INonQueuedRequestFactory
from zope.interface import implementer

from lqos.load.admission import LoadRefused, authorize, open_stream
from lqos.load.limits import LoadLimits
from lqos.load.tickets import LoadTickets
from lqos.load.upload import BoundedBody, UploadSink
from lqos.net.connections import connection_guard
from lqos.net.refusal import raw_response

log = Logger()

UPLOAD_PATH = b"/upload"


def refusal_response(refused: LoadRefused) -> bytes:
    """A complete HTTP response for a refusal made before the request is routed."""
    # The page reads a load refusal across origins (the load port is not the
    # page's); the body is only the reason, so any origin may read it.
    return raw_response(refused, [(b"Access-Control-Allow-Origin", b"*")])


@implementer(INonQueuedRequestFactory)
class LoadRequestFactory:
    """The Site's ``requestFactory``: what a ``LoadAwareRequest`` needs to choose its sink.

    *tickets* admits uploads (a load worker); without them (the main process)
    ``/upload`` is an ordinary path and every body is held to the small cap.
    """

    def __init__(self, clock, tickets: LoadTickets | None = None, limits: LoadLimits = LoadLimits()):
        self.tickets = tickets
        self.clock = clock
        self.limits = limits

    def __call__(self, channel) -> LoadAwareRequest:
        return LoadAwareRequest(channel, self)

    def open_sink(self, request: LoadAwareRequest, method: bytes, target: bytes, length: int | None):
        """The sink for this body; raises ``LoadRefused`` to refuse it unread."""
        path, _, query = target.partition(b"?")
        if method == b"POST" and path == UPLOAD_PATH and self.tickets is not None:
            return self._open_upload(request, query, length)
        sink = BoundedBody(request.content, self.limits.other_body_bytes)
        sink.check_declared_length(length)
        return sink

    def _open_upload(self, request: LoadAwareRequest, query: bytes, length: int | None) -> UploadSink:
        session = authorize(self.tickets, parse_qs(query))
        slot = open_stream(session, self.limits, self.clock.seconds())
        sink = UploadSink(session, slot, self.limits)
        try:
            sink.check_declared_length(length)
        except LoadRefused:
            slot.release()
            raise
        return sink


def routable(target: bytes, host: bytes) -> bool:
    """Whether a request's %-decoded path is UTF-8 without NUL and its Host is UTF-8."""
    path = unquote_to_bytes(target.partition(b"?")[0])
    try:
        path.decode("utf-8")
        host.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in path


class LoadAwareRequest(server.Request):
    """A request whose body goes to a sink chosen from its method and path.

    ``upload`` is the ``UploadSink`` of an accepted ``POST /upload``, for the
    route to answer how many bytes arrived.
    """

    def __init__(self, channel, factory: LoadRequestFactory):
        # No endpoint takes HTML forms, so never parse a body into ``args``.
        super().__init__(channel, parsePOSTFormSubmission=False)
        self._factory = factory
        self._sink = None
        self._refused = False
        self._body_deadline = None
        self._linger = None
        self._described = "?"
        self.upload: UploadSink | None = None

    def gotLength(self, length: int | None) -> None:
        """Headers are in, the body is not: choose its sink, or refuse it now."""
        self.content = BytesIO()
        guard = connection_guard(self.channel.transport)
        if guard is not None:
            guard.request_head_received()
            self.notifyFinish().addBoth(lambda ignored: guard.response_done())
        # The request line is parsed but not yet handed to the request; the
        # channel keeps it in these attributes until the body is complete.
        # (HTTP/2 streams have no such attributes; Site serves HTTP/2 only when
        # the h2 package is installed and TLS offers it, and then every body is
        # held to the small cap.)
        method = getattr(self.channel, "_command", b"")
        target = getattr(self.channel, "_path", b"")
        self._described = f"{method.decode('ascii', 'replace')} {target.partition(b'?')[0].decode('ascii', 'replace')}"
        try:
            self._sink = self._factory.open_sink(self, method, target, length)
        except LoadRefused as refused:
            self._refuse(refused)
            return
        self.notifyFinish().addBoth(lambda ignored: self._sink.close())
        if isinstance(self._sink, UploadSink):
            self.upload = self._sink
        if length != 0:
            clock = self._factory.clock
            self._body_deadline = clock.callLater(self._factory.limits.stream_seconds, self._body_too_slow)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        try:
            self._sink.write(data)
        except LoadRefused as refused:
            self._refuse(refused)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        self._cancel(self._body_deadline)
        if self._refused:
            self._hang_up()
            return
        if not routable(path, self.requestHeaders.getRawHeaders(b"host", [b""])[0]):
            # Unrouted, Klein answers a non-UTF-8 path or Host with 400 and a logged
            # traceback, and twisted.web.static a NUL in the path with 500 and another.
            self._refuse(LoadRefused(400, "the path must be UTF-8 without NUL, and the Host UTF-8"), body_read=True)
            return
        super().requestReceived(command, path, version)

    def connectionLost(self, reason) -> None:
        self._cancel(self._body_deadline)
        self._cancel(self._linger)
        super().connectionLost(reason)

    def _body_too_slow(self) -> None:
        seconds = self._factory.limits.stream_seconds
        details = {"received": self.upload.received} if self.upload is not None else {}
        self._refuse(LoadRefused(408, f"a request body must arrive within {seconds:g} s", **details))

    def _refuse(self, refused: LoadRefused, body_read: bool = False) -> None:
        """Answer now, drop the rest of the body, close soon.

        Closing at once would reset the connection while the client is still
        sending, and a reset can destroy the answer before the client reads
        it; so the body is read and dropped for a short linger first, unless
        the whole request is in (*body_read*) and nothing is left to drain.
        """
        if self._refused:
            return
        self._refused = True
        self._cancel(self._body_deadline)
        self.requestHeaders.removeHeader(b"expect")  # no "100 Continue" after a refusal
        log.info("refused {request} from {client}: {status} {reason}", request=self._described,
                 client=getattr(self.client, "host", "?"), status=refused.status, reason=refused.reason)
        self.channel.write(refusal_response(refused))
        if body_read:
            self._hang_up()
        else:
            self._linger = self._factory.clock.callLater(self._factory.limits.refusal_linger_seconds, self._hang_up)

    def _hang_up(self) -> None:
        self._cancel(self._linger)
        if self.channel is not None:
            self.channel.loseConnection()

    @staticmethod
    def _cancel(call) -> None:
        if call is not None and call.active():
            call.cancel()
