"""The telemetry part of the daemon as one Twisted service.

It owns the store, the outbox, the metrics and the support API, and stops
them in the order that loses nothing: the outbox first (its last row
updates still need the database), then the database pool.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from lqos.daemon.config import Config
from lqos.results import IResultStore
from lqos.telemetry.api import TelemetryApi
from lqos.telemetry.fleet import FleetStore, FleetUnavailable, FleetWriter, redacted
from lqos.telemetry.metrics import ChildCollector, DaemonMetrics, FleetCollector, OutboxDepthCollector
from lqos.telemetry.outbox import Destination, HttpPoster, Outbox, RetryPolicy
from lqos.telemetry.payloads import CENTRAL, FLEET, WEBHOOK
from lqos.telemetry.store import SQLiteResultStore, database_path

log = Logger()


def destinations(config: Config) -> dict[str, Destination]:
    """The delivery targets the config turns on; both are signed with ``webhook_secret``."""
    targets = {}
    if config.webhook_url:
        targets[WEBHOOK] = Destination(config.webhook_url, config.webhook_secret)
    if config.central_url:
        targets[CENTRAL] = Destination(config.central_url, config.webhook_secret)
    return targets


@implementer(IResultStore)
class FleetResults:
    """Results saved locally (the customer's answer never waits for the fleet); share links
    looked up locally first, then in the fleet's database, which keeps more and longer."""

    def __init__(self, local: SQLiteResultStore, fleet: FleetStore):
        self._local = local
        self._fleet = fleet

    def save(self, record: dict) -> defer.Deferred:
        return self._local.save(record)

    @defer.inlineCallbacks
    def by_share_id(self, share_id: str):
        record = yield self._local.by_share_id(share_id)
        if record is None:
            try:
                record = yield self._fleet.by_share_id(share_id)
            except FleetUnavailable:
                record = None
        return record


class TelemetryService(MultiService):
    """Store + outbox + metrics + support API for one daemon, and in a fleet the writer to its database."""

    def __init__(self, config: Config, reactor, child_snapshot: Callable[[], Iterable[Mapping]],
                 server_id: str, post=None):
        super().__init__()
        targets = destinations(config)
        lanes = (*targets, FLEET) if config.telemetry_database else tuple(targets)
        self.store = SQLiteResultStore.open(config.data_dir, reactor, max_tests=config.telemetry_max_tests,
                                            targets=lanes, on_saved=self._result_saved)
        self.store.claim_unnamed_tests(server_id).addErrback(
            lambda failure: log.failure("naming this server on its earlier tests failed", failure))
        self.outbox = Outbox(self.store, targets, reactor, post or HttpPoster(reactor),
                             RetryPolicy.starting_at(config.outbox_retry_seconds))
        self.outbox.setServiceParent(self)
        self.metrics = DaemonMetrics()
        self.metrics.register(ChildCollector(child_snapshot))
        self.metrics.register(OutboxDepthCollector(lambda: self.outbox.depth))
        self.fleet: FleetStore | None = None
        self.fleet_writer: FleetWriter | None = None
        self.results: IResultStore = self.store
        if config.telemetry_database:
            self.fleet = FleetStore(config.telemetry_database, reactor, config.fleet_max_tests,
                                    config.fleet_max_age_days)
            self.fleet_writer = FleetWriter(self.store, self.fleet, reactor)
            self.fleet_writer.setServiceParent(self)
            self.metrics.register(FleetCollector(self.fleet_writer))
            self.results = FleetResults(self.store, self.fleet)
        self.api = TelemetryApi(config, self.fleet or self.store, self.metrics, self.store)
        self._warn_about(config)
        log.info("telemetry database {path}; this server is {server_id}", path=database_path(config.data_dir),
                 server_id=server_id)
        if config.telemetry_database:
            log.info("fleet database {url}", url=redacted(config.telemetry_database))

    def _result_saved(self) -> None:
        self.outbox.wake()
        if self.fleet_writer is not None:
            self.fleet_writer.wake()

    def health(self) -> dict:
        """The telemetry part of /api/health: which database, and in a fleet the writer's backlog."""
        if self.fleet_writer is None:
            return {"database": "sqlite"}
        return {"database": "postgresql", "fleet": self.fleet_writer.health()}

    @staticmethod
    def _warn_about(config: Config) -> None:
        if (config.webhook_url or config.central_url) and not config.webhook_secret:
            log.warn("webhook_secret is not set: deliveries are sent unsigned")

    def stopService(self):
        d = super().stopService()
        d.addBoth(lambda _: self.store.close())
        if self.fleet is not None:
            d.addBoth(lambda _: self.fleet.close())
        return d
