"""The telemetry part of the daemon as one Twisted service.

It owns the store, the outbox, the metrics and the support API, and stops
them in the order that loses nothing: the outbox first (its last row
updates still need the database), then the database pool.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

from twisted.application.service import MultiService
from twisted.logger import Logger

from lqos.daemon.config import Config
from lqos.telemetry.api import TelemetryApi
from lqos.telemetry.metrics import ChildCollector, DaemonMetrics, OutboxDepthCollector
from lqos.telemetry.outbox import Destination, HttpPoster, Outbox, RetryPolicy
from lqos.telemetry.payloads import CENTRAL, WEBHOOK
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


class TelemetryService(MultiService):
    """Store + outbox + metrics + support API for one daemon."""

    def __init__(self, config: Config, reactor, child_snapshot: Callable[[], Iterable[Mapping]],
                 post=None):
        super().__init__()
        targets = destinations(config)
        self.store = SQLiteResultStore.open(config.data_dir, reactor, max_tests=config.telemetry_max_tests,
                                            targets=tuple(targets), on_saved=self._result_saved)
        self.outbox = Outbox(self.store, targets, reactor, post or HttpPoster(reactor),
                             RetryPolicy.starting_at(config.outbox_retry_seconds))
        self.outbox.setServiceParent(self)
        self.metrics = DaemonMetrics()
        self.metrics.register(ChildCollector(child_snapshot))
        self.metrics.register(OutboxDepthCollector(lambda: self.outbox.depth))
        self.api = TelemetryApi(config, self.store, self.metrics)
        self._warn_about(config)
        log.info("telemetry database {path}", path=database_path(config.data_dir))

    def _result_saved(self) -> None:
        self.outbox.wake()

    @staticmethod
    def _warn_about(config: Config) -> None:
        if (config.webhook_url or config.central_url) and not config.webhook_secret:
            log.warn("webhook_secret is not set: deliveries are sent unsigned")

    def stopService(self):
        d = super().stopService()
        d.addBoth(lambda _: self.store.close())
        return d
