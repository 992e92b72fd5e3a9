"""``/metrics``: the daemon's Prometheus metrics, on a registry of its own.

Each daemon (and each test) gets its own ``CollectorRegistry``; nothing is
registered in prometheus_client's process-wide default registry, so two
apps in one process never share or clash over counters.

Counters the web app bumps as things happen live in :class:`DaemonMetrics`.
Figures that another part of the daemon already keeps (child restarts,
outbox depth) are read when scraped, by custom collectors, so there is one
source of truth for each.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from lqos.measure.grading import GRADES
from lqos.telemetry.payloads import CENTRAL, WEBHOOK

UNGRADED = "ungraded"

# Failure reasons by HTTP status: a small fixed set, so label cardinality is bounded.
FAILURE_REASONS: Mapping[int, str] = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    409: "already_submitted",
    410: "expired",
    413: "too_large",
    429: "rate_limited",
}
OTHER_REASON = "other"


def failure_reason(status: int) -> str:
    return FAILURE_REASONS.get(status, OTHER_REASON)


class DaemonMetrics:
    """The counters of one daemon, and the registry /metrics renders."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._started = Counter("lqos_tests_started", "Tests started (POST /api/tests answered 201).",
                                registry=self.registry)
        self._completed = Counter("lqos_tests_completed", "Results graded and stored.",
                                  registry=self.registry)
        self._failed = Counter("lqos_tests_failed", "Starts or submissions refused, by reason.",
                               ["reason"], registry=self.registry)
        self._grades = Counter("lqos_test_grades", "Stored results by overall grade.",
                               ["grade"], registry=self.registry)
        self._bytes = Counter("lqos_served_bytes", "Load bytes of completed tests, by direction.",
                              ["direction"], registry=self.registry)
        for grade in (*GRADES, UNGRADED):
            self._grades.labels(grade=grade)
        for direction in ("download", "upload"):
            self._bytes.labels(direction=direction)

    def test_started(self) -> None:
        self._started.inc()

    def test_failed(self, status: int) -> None:
        self._failed.labels(reason=failure_reason(status)).inc()

    def test_completed(self, record: Mapping) -> None:
        """Count a stored result: its grade and the load bytes its session served."""
        self._completed.inc()
        grade = ((record.get("result") or {}).get("overall") or {}).get("grade")
        self._grades.labels(grade=grade if grade in GRADES else UNGRADED).inc()
        counters = record.get("server_counters") or {}
        for direction in ("download", "upload"):
            self._bytes.labels(direction=direction).inc(max(0, int(counters.get(f"{direction}_bytes") or 0)))

    def register(self, collector) -> None:
        self.registry.register(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ChildCollector:
    """Child restarts and up/down, read from the supervisor's snapshot when scraped."""

    def __init__(self, snapshot: Callable[[], Iterable[Mapping]]):
        self._snapshot = snapshot

    def collect(self):
        restarts = CounterMetricFamily("lqos_child_restarts", "Restarts of each child process.",
                                       labels=["role"])
        up = GaugeMetricFamily("lqos_child_up", "1 when the child process is running.", labels=["role"])
        for child in self._snapshot():
            restarts.add_metric([child["role"]], child["restarts"])
            up.add_metric([child["role"]], 1 if child["state"] == "running" else 0)
        return [restarts, up]


class OutboxDepthCollector:
    """Deliveries waiting, by target, from the outbox's cached count (no query per scrape)."""

    def __init__(self, depth: Callable[[], Mapping[str, int]]):
        self._depth = depth

    def collect(self):
        gauge = GaugeMetricFamily("lqos_outbox_depth", "Deliveries queued and not yet made.",
                                  labels=["target"])
        depth = self._depth()
        for target in (WEBHOOK, CENTRAL):
            gauge.add_metric([target], depth.get(target, 0))
        return [gauge]


class FleetCollector:
    """The fleet writer's backlog and last write, read when scraped."""

    def __init__(self, writer):
        self._writer = writer

    def collect(self):
        backlog = GaugeMetricFamily("lqos_fleet_backlog", "Finished tests stored locally and not yet in the "
                                    "fleet's database.")
        backlog.add_metric([], self._writer.backlog or 0)
        last_write = GaugeMetricFamily("lqos_fleet_last_write_timestamp_seconds", "When tests were last "
                                       "written to the fleet's database (unix seconds; 0: not since start).")
        last_write.add_metric([], self._writer.last_write_at or 0)
        up = GaugeMetricFamily("lqos_fleet_database_up", "1 when the last attempt to reach the fleet's "
                               "database succeeded.")
        up.add_metric([], 0 if self._writer.last_error else 1)
        return [backlog, last_write, up]
