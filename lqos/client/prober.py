"""The latency probe in a child process of its own, and the parent's end of its pipe.

Latency is never measured through an event loop that is busy pushing bulk
data.  The CLI's loop moves gigabits per second, so the
probe runs in ``python -m lqos.client.prober``, whose reactor does nothing
else.  Both processes share the test clock through ``time.monotonic()``.

The pipe speaks JSON lines.  Parent to child::

    {"cmd": "connect", "url": "ws://..."}
    {"cmd": "start", "origin": <monotonic seconds>, "phases": [[name, seconds], ...]}

Child to parent::

    {"event": "ready"}                      the WebSocket is open
    {"event": "done", "probes": [[seq, phase, sent_ms, rtt_ms|null], ...]}
    {"event": "error", "message": "..."}

When the parent's end of the pipe closes (the parent ended, even by
``kill -9``) the child exits at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from twisted.internet import defer, error, protocol, stdio, task
from twisted.protocols.basic import LineReceiver

from lqos.client.http import ClientError, describe_error
from lqos.client.probe import InlineProber
from lqos.client.schedule import Schedule, TestClock

MAX_LINE = 1024 * 1024


# ---------------------------------------------------------------- the child


class ParentPipe(LineReceiver):
    """The child's end: obey commands, report events, exit when the pipe closes."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE

    def __init__(self, reactor, cafile: str | None, ended: defer.Deferred):
        self._reactor = reactor
        self._prober = InlineProber(reactor, cafile)
        self._ended = ended

    def send(self, message: dict) -> None:
        self.transport.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def lineReceived(self, line: bytes) -> None:
        try:
            command = json.loads(line)
            handler = {"connect": self._connect, "start": self._start}[command["cmd"]]
        except (ValueError, KeyError, TypeError):
            self._fail(ClientError(f"unknown command {line[:80]!r}"))
            return
        defer.ensureDeferred(handler(command)).addErrback(lambda f: self._fail(f.value))

    async def _connect(self, command: dict) -> None:
        await self._prober.connect(command["url"])
        self.send({"event": "ready"})

    async def _start(self, command: dict) -> None:
        clock = TestClock(float(command["origin"]))
        rows = await self._prober.start(clock, Schedule.from_phases(command["phases"]))
        self._last_word({"event": "done", "probes": rows})

    def _fail(self, problem: BaseException) -> None:
        self._last_word({"event": "error", "message": describe_error(problem)})

    def _last_word(self, message: dict) -> None:
        """Send *message*, then close the pipe once it is written; the process then ends."""
        if not self.transport.disconnecting:
            self.send(message)
            self.transport.loseConnection()

    def connectionLost(self, reason=None) -> None:
        self._prober.abort()
        if not self._ended.called:
            self._ended.callback(None)


async def _child(reactor, cafile: str | None) -> None:
    ended = defer.Deferred()
    pipe = ParentPipe(reactor, cafile, ended)
    stdio.StandardIO(pipe, reactor=reactor)
    await ended


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="lqos-bufferbloat-test's latency prober (child process)")
    parser.add_argument("--cafile", default=None)
    options = parser.parse_args(argv)
    task.react(lambda reactor: defer.ensureDeferred(_child(reactor, options.cafile)))


# ---------------------------------------------------------------- the parent


class ChildProber(protocol.ProcessProtocol):
    """The parent's end: same interface as ``InlineProber``, the probe in another process."""

    def __init__(self, reactor, cafile: str | None = None):
        self._reactor = reactor
        self._buffer = b""
        self._stderr = b""
        self._ready = defer.Deferred()
        self._finished = defer.Deferred()
        self._ended = False
        self._aborted = False
        self._started = False
        argv = [sys.executable, "-m", "lqos.client.prober"] + (["--cafile", cafile] if cafile else [])
        reactor.spawnProcess(self, sys.executable, argv, env=_child_environment())

    def connect(self, url: str) -> defer.Deferred:
        self._send({"cmd": "connect", "url": url})
        return self._ready

    def start(self, clock: TestClock, schedule: Schedule) -> defer.Deferred:
        self._started = True
        self._send({"cmd": "start", "origin": clock.origin, "phases": schedule.as_list()})
        return self._finished

    def abort(self) -> None:
        self._aborted = True
        if not self._ended:
            self._ended = True
            try:
                self.transport.signalProcess("KILL")
            except error.ProcessExitedAlready:
                pass

    def _send(self, message: dict) -> None:
        self.transport.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                self._fail(f"the latency prober wrote something unreadable: {line[:80]!r}")
                continue
            self._event(event)

    def errReceived(self, data: bytes) -> None:
        self._stderr = (self._stderr + data)[-2000:]

    def _event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "ready":
            _fire(self._ready, None)
        elif kind == "done":
            self._ended = True
            _fire(self._finished, event["probes"])
        elif kind == "error":
            self._fail(str(event.get("message")))

    def _fail(self, message: str) -> None:
        """Fail what the caller waits on: the connection, or once started, the probe rows.

        Only one of the two: a ``finished`` the caller never received (the
        probe could not even connect) would be logged as an unhandled error
        after the CLI had already said what went wrong.
        """
        if self._aborted:
            return
        waiting = self._finished if self._started else self._ready
        if not waiting.called:
            waiting.errback(ClientError(message))

    def processEnded(self, reason) -> None:
        self._ended = True
        last = self._stderr.decode(errors="replace").strip().splitlines()
        detail = f": {last[-1]}" if last else ""
        self._fail(f"the latency prober ended unexpectedly{detail}")


def _fire(d: defer.Deferred, value) -> None:
    if not d.called:
        d.callback(value)


def _child_environment() -> dict:
    """The parent's environment, with this checkout's package importable."""
    root = str(Path(__file__).resolve().parents[2])
    paths = [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


if __name__ == "__main__":
    main()
