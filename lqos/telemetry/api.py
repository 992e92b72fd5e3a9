"""The support API (``/api/telemetry/...``) and ``/metrics``.

``TelemetryApi`` is a Klein app of its own; ``MainApp`` mounts it on a
branch route at ``/api/telemetry/`` and hands ``/metrics`` to
:meth:`TelemetryApi.metrics_page`.  Every answer here goes through
:func:`lqos.telemetry.auth.refusal` first.

In a fleet (``telemetry_database``) the queries go to the shared PostgreSQL
database, so any server answers for every server's tests; when it cannot be
reached they answer 503, saying so.
"""

from __future__ import annotations

import re

from klein import Klein
from twisted.logger import Logger

from lqos.daemon.config import Config
from lqos.telemetry.auth import Refusal, refusal
from lqos.telemetry.fleet import FleetUnavailable
from lqos.telemetry.metrics import DaemonMetrics
from lqos.telemetry.queries import normalise_ip
from lqos.web.responses import json_body, json_error

log = Logger()

DEFAULT_RECENT = 100
MAX_RECENT = 1000
MAX_IP_CHARS = 64
_DIGITS = re.compile(rb"[0-9]{1,4}\Z")
# A test id as lqos/sessions.py makes them (token_urlsafe), with room to spare.
_TEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


class BadQuery(ValueError):
    """A query parameter or path segment the API cannot use; the message says why."""


def parse_limit(values: list[bytes] | None) -> int:
    """``?limit=N`` with 1 <= N <= 1000; absent means DEFAULT_RECENT."""
    if not values:
        return DEFAULT_RECENT
    if len(values) > 1 or not _DIGITS.match(values[0]) or not 1 <= int(values[0]) <= MAX_RECENT:
        raise BadQuery(f"limit must be one whole number from 1 to {MAX_RECENT}")
    return int(values[0])


def parse_ip(text: str) -> str:
    if len(text) > MAX_IP_CHARS:
        raise BadQuery("not an IPv4 or IPv6 address")
    try:
        return normalise_ip(text)
    except ValueError:
        raise BadQuery(f"{text[:MAX_IP_CHARS]!r} is not an IPv4 or IPv6 address") from None


class TelemetryApi:
    """Support routes over the result store; one instance per daemon."""

    app = Klein()

    def __init__(self, config: Config, store, metrics: DaemonMetrics, local_store=None):
        self._config = config
        self._store = store  # the fleet's database, or this server's SQLite file
        self._local = local_store if local_store is not None else store  # its outbox, in both cases
        self.metrics = metrics

    def resource(self):
        return self.app.resource()

    def _refused(self, request) -> bytes | None:
        """The error response for a request that may not read telemetry, else None."""
        why: Refusal | None = refusal(request, self._config.telemetry_api_key, self._config.trusted_proxies)
        if why is None:
            return None
        log.info("telemetry refused {status} to {peer}: {message}", status=why.status,
                 peer=getattr(request.getClientAddress(), "host", "?"), message=why.message)
        if why.challenge:
            request.setHeader(b"www-authenticate", why.challenge.encode("ascii"))
        return json_error(request, why.status, why.message)

    @app.route("/recent", methods=["GET"])
    async def recent(self, request):
        """The newest tests, newest first, with client IP and user agent."""
        refused = self._refused(request)
        if refused is not None:
            return refused
        try:
            limit = parse_limit(request.args.get(b"limit"))
        except BadQuery as error:
            return json_error(request, 400, str(error))
        tests = await self._store.recent(limit)
        return json_body(request, {"count": len(tests), "tests": tests})

    @app.route("/customer/<string:ip>", methods=["GET"])
    async def customer(self, request, ip: str):
        """Every kept test of one client address, newest first."""
        refused = self._refused(request)
        if refused is not None:
            return refused
        try:
            address = parse_ip(ip)
        except BadQuery as error:
            return json_error(request, 400, str(error))
        tests = await self._store.for_client(address)
        return json_body(request, {"client_ip": address, "count": len(tests), "tests": tests})

    @app.route("/test/<string:test_id>", methods=["GET"])
    async def test(self, request, test_id: str):
        """One test by its id (the id webhooks carry in X-LQoS-Delivery)."""
        refused = self._refused(request)
        if refused is not None:
            return refused
        if not _TEST_ID.match(test_id):
            return json_error(request, 400, "a test id is 1 to 64 letters, digits, dashes or underscores")
        record = await self._store.by_test_id(test_id)
        if record is None:
            return json_error(request, 404, "no such test is kept")
        return json_body(request, record)

    @app.route("/stats", methods=["GET"])
    async def stats(self, request):
        """How many tests are kept, their span, grades, and the outbox backlog."""
        refused = self._refused(request)
        if refused is not None:
            return refused
        figures = await self._store.stats()
        if self._local is not self._store:
            figures["outbox"] = (await self._local.stats())["outbox"]
        return json_body(request, figures)

    @app.handle_errors(FleetUnavailable)
    def fleet_unavailable(self, request, failure) -> bytes:
        """Any query the fleet's database could not answer: 503, saying why."""
        return json_error(request, 503, str(failure.value))

    def metrics_page(self, request) -> bytes:
        """Prometheus text format, behind the same rule as the support API."""
        refused = self._refused(request)
        if refused is not None:
            return refused
        request.setHeader(b"content-type", self.metrics.content_type.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return self.metrics.render()
