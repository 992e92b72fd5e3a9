"""What every child process shares: its arguments, its port, its pipe to the parent.

A child reads its stdin, a pipe from the supervisor.  When that pipe closes
the parent is gone (even after ``kill -9``), and the child exits: no orphan
keeps a port bound.  The child writes JSON lines to its stdout for the
supervisor; the first is ``{"event": "ready"}`` once its port listens.
Logs go to stderr, which the supervisor copies into the daemon's log.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

from twisted.internet import defer, stdio, task
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.internet.protocol import Protocol
from twisted.logger import FileLogObserver, Logger, eventAsText, globalLogBeginner

from lqos.daemon.endpoints import child_endpoint, tls_server_factory

log = Logger()

HEARTBEAT_SECONDS = 1.0


class ParentLink(Protocol):
    """The child's end of the pipe to the supervisor."""

    def __init__(self, on_lost: Callable[[], None]):
        self._on_lost = on_lost

    def send(self, message: dict) -> None:
        self.transport.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def dataReceived(self, data: bytes) -> None:
        """The parent sends nothing yet; reading keeps the pipe's end visible."""

    def connectionLost(self, reason=None) -> None:
        self._on_lost()


def child_argument_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every child takes; a child may add its own before parsing."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interface", default="")
    parser.add_argument("--tls-cert", default="")
    parser.add_argument("--tls-key", default="")
    return parser


# Puts the factory on the child's ports; the first is the one reported to the parent.
Listen = Callable[[object, IProtocolFactory], list[IListeningPort]]


def run_child(role: str, options: argparse.Namespace,
              make_factory: Callable[[object, Callable[[dict], None]], IProtocolFactory],
              listen: Listen | None = None) -> None:
    """Serve ``make_factory(reactor, send_to_parent)`` on ``options.port`` until the parent goes away.

    By default the port is ``child_endpoint``'s; a child that builds its own
    stack (TLS included) passes *listen* to put the factory on its ports itself.
    """
    # The supervisor stamps time and role on every line; the child adds neither.
    observer = FileLogObserver(
        sys.stderr, lambda event: eventAsText(event, includeTimestamp=False) + "\n"
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    task.react(lambda reactor: defer.ensureDeferred(_serve(reactor, role, options, make_factory, listen)))


async def _serve(reactor, role: str, options: argparse.Namespace, make_factory, listen: Listen | None) -> None:
    parent_gone = defer.Deferred()
    link = ParentLink(on_lost=lambda: parent_gone.called or parent_gone.callback(None))
    stdio.StandardIO(link, reactor=reactor)
    factory = make_factory(reactor, link.send)
    if listen is None:
        endpoint = serverFromString(reactor, child_endpoint(options.port, options.interface))
        ports = [await endpoint.listen(tls_server_factory(factory, options.tls_cert, options.tls_key))]
    else:
        ports = listen(reactor, factory)
    for port in ports:
        log.info("{role} listening on {address}", role=role, address=port.getHost())
    link.send({"event": "ready", "role": role, "port": ports[0].getHost().port})
    # A heartbeat, so the supervisor can tell a stopped or stuck child from a quiet one.
    heartbeat = task.LoopingCall(link.send, {"event": "alive"})
    heartbeat.clock = reactor
    heartbeat.start(HEARTBEAT_SECONDS, now=False)
    await parent_gone
    heartbeat.stop()
    log.info("{role}: parent closed the pipe; exiting", role=role)
    await defer.gatherResults([defer.maybeDeferred(port.stopListening) for port in ports])
