"""A load worker's protocol stack: connection limits, TLS, the load site, and its reports."""

from __future__ import annotations

import argparse
from typing import Callable

from twisted.internet import task
from twisted.web.server import Site

from lqos.daemon.endpoints import tls_server_factory
from lqos.load.request import LoadRequestFactory
from lqos.load.routes import LoadEndpoints
from lqos.load.tickets import LoadTickets
from lqos.net.connections import ConnectionLimits
from lqos.web.accesslog import access_log_line

# How often the bytes counted per test go to the main process.  The client
# reads upload progress from there every 250 ms window, so a report that is
# at most 20 ms old shifts a window's count by little.
REPORT_SECONDS = 0.02


def load_worker_factory(reactor, options: argparse.Namespace, secret: bytes,
                        send_to_parent: Callable[[dict], None]):
    """The factory the worker's shared port serves, with its byte reports running."""
    tickets = LoadTickets(secret, reactor)
    endpoints = LoadEndpoints(tickets, reactor)
    site = Site(endpoints.resource(), timeout=options.idle_seconds,
                requestFactory=LoadRequestFactory(reactor, tickets, endpoints.limits),
                logFormatter=access_log_line)
    report = task.LoopingCall(_report, tickets, send_to_parent)
    report.clock = reactor
    report.start(REPORT_SECONDS, now=False)
    # Guarded under TLS (guard_outside_tls says why); the ports are listen_shared's, in __main__.py.
    return ConnectionLimits(tls_server_factory(site, options.tls_cert, options.tls_key), reactor,
                            per_ip=options.connections_per_ip, total=options.connections,
                            head_seconds=options.head_seconds)


def _report(tickets: LoadTickets, send_to_parent: Callable[[dict], None]) -> None:
    for counts in tickets.take_unreported():
        send_to_parent({"event": "load-bytes", "tests": counts})
