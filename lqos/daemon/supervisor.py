"""The supervisor: starts the child processes, watches them, restarts them.

``twisted.runner.procmon.ProcessMonitor`` was evaluated and does not fit as
it ships: it gives a child an empty environment by default, cannot pass
``childFDs``, restarts a child that lived a second with no backoff, and its
``stopService`` does not wait for the children to end.  This service keeps
its design (per-child state, ``callLater`` restarts, TERM then KILL) and adds
what the daemon needs:

* an explicit environment and a pipe on the child's stdin: a child exits
  when that pipe closes, so no child outlives the parent, even after
  ``kill -9`` of the parent;
* backoff on consecutive failures, starting at half a second;
* a child is "running" only once it says so (a ``ready`` message on its
  stdout, sent after its port is listening), so ``/api/health`` tells the
  truth;
* ``stopService`` returns a Deferred that fires when every child has ended.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Mapping

from twisted.application.internet import backoffPolicy
from twisted.application.service import Service
from twisted.internet import defer, error
from twisted.internet.interfaces import IDelayedCall, IReactorProcess, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from lqos.measure.units import SECONDS

MAX_MESSAGE_BYTES = 64 * 1024

# Child states as /api/health reports them.
STARTING = "starting"
RUNNING = "running"
BACKOFF = "backoff"
UNRESPONSIVE = "unresponsive"  # running, but silent longer than the heartbeat allows
STOPPING = "stopping"
STOPPED = "stopped"


@dataclass(frozen=True)
class ChildSpec:
    """How to start one child: its role, command line, port and environment."""

    role: str
    argv: tuple[str, ...]
    port: int
    env: Mapping[str, str]


@dataclass(frozen=True)
class RestartPolicy:
    """How long to wait before a restart, and when a child counts as stable again."""

    first_delay: float = 0.5 * SECONDS
    max_delay: float = 30 * SECONDS
    stable_after: float = 10 * SECONDS
    kill_after: float = 3 * SECONDS

    def delay(self, consecutive_failures: int) -> float:
        """Backoff doubles with each failure in a row: 0.5 s, 1 s, 2 s ... 30 s (no jitter: one child)."""
        backoff = backoffPolicy(self.first_delay, self.max_delay, factor=2.0, jitter=lambda: 0.0)
        return backoff(max(0, consecutive_failures - 1))


@dataclass
class _Child:
    spec: ChildSpec
    state: str = STOPPED
    pid: int | None = None
    restarts: int = 0
    consecutive_failures: int = 0
    started_at: float = 0.0
    last_heard: float = 0.0
    transport: object = None
    restart_call: IDelayedCall | None = None
    kill_call: IDelayedCall | None = None
    waiting_for_end: list[defer.Deferred] = field(default_factory=list)

    def snapshot(self) -> dict:
        return {
            "role": self.spec.role,
            "pid": self.pid,
            "port": self.spec.port,
            "state": self.state,
            "restarts": self.restarts,
        }


class _ChildProtocol(ProcessProtocol):
    """Relays one child's messages, logs and end to the supervisor."""

    def __init__(self, supervisor: "Supervisor", child: _Child):
        self._supervisor = supervisor
        self._child = child
        self._stdout = b""
        self._stderr = b""

    def connectionMade(self) -> None:
        self._supervisor._child_started(self._child, self.transport)

    def outReceived(self, data: bytes) -> None:
        self._stdout = self._split_lines(self._stdout + data, self._supervisor._child_message)

    def errReceived(self, data: bytes) -> None:
        self._stderr = self._split_lines(self._stderr + data, self._supervisor._child_log)

    def _split_lines(self, buffer: bytes, deliver: Callable[[_Child, bytes], None]) -> bytes:
        *lines, rest = buffer.split(b"\n")
        for line in lines:
            deliver(self._child, line)
        if len(rest) > MAX_MESSAGE_BYTES:
            deliver(self._child, rest[:MAX_MESSAGE_BYTES])
            return b""
        return rest

    def processEnded(self, reason: Failure) -> None:
        self._supervisor._child_ended(self._child, reason)


class Supervisor(Service):
    """Runs each :class:`ChildSpec` as a child process and keeps it running."""

    log = Logger()

    def __init__(
        self,
        specs: list[ChildSpec],
        reactor: IReactorProcess | IReactorTime,
        policy: RestartPolicy = RestartPolicy(),
        on_message: Callable[[str, dict], None] | None = None,
        silent_after: float | None = None,
    ):
        self._reactor = reactor
        self._silent_after = silent_after
        self._policy = policy
        self._on_message = on_message
        self._children = {spec.role: _Child(spec) for spec in specs}

    # --- what the web app asks ---

    def snapshot(self) -> list[dict]:
        """Each child's role, pid, port, state and restart count."""
        snapshots = []
        for child in self._children.values():
            snapshot = child.snapshot()
            if self._silent(child):
                snapshot["state"] = UNRESPONSIVE
                snapshot["silent_seconds"] = round(self._reactor.seconds() - child.last_heard, 1)
            snapshots.append(snapshot)
        return snapshots

    def all_running(self) -> bool:
        return all(child.state == RUNNING and not self._silent(child) for child in self._children.values())

    def _silent(self, child: _Child) -> bool:
        """A running child that has sent nothing (not even its heartbeat) for too long."""
        return (self._silent_after is not None and child.state == RUNNING
                and self._reactor.seconds() - child.last_heard > self._silent_after)

    # --- service lifecycle ---

    def startService(self) -> None:
        super().startService()
        for child in self._children.values():
            self._spawn(child)

    def stopService(self) -> defer.Deferred:
        super().stopService()
        return defer.gatherResults([self._stop(child) for child in self._children.values()])

    def _spawn(self, child: _Child) -> None:
        child.restart_call = None
        child.state = STARTING
        spec = child.spec
        self.log.info("starting {role} child on port {port}", role=spec.role, port=spec.port)
        self._reactor.spawnProcess(
            _ChildProtocol(self, child),
            spec.argv[0],
            list(spec.argv),
            env=dict(spec.env),
            childFDs={0: "w", 1: "r", 2: "r"},
        )

    def _stop(self, child: _Child) -> defer.Deferred:
        if child.restart_call is not None:
            child.restart_call.cancel()
            child.restart_call = None
        if child.transport is None:
            child.state = STOPPED
            return defer.succeed(None)
        ended = defer.Deferred()
        child.waiting_for_end.append(ended)
        child.state = STOPPING
        self._signal(child, "TERM")
        child.kill_call = self._reactor.callLater(
            self._policy.kill_after, self._signal, child, "KILL"
        )
        return ended

    def _signal(self, child: _Child, signal_name: str) -> None:
        if signal_name == "KILL":
            child.kill_call = None
            self.log.warn("{role} child ignored TERM; killing it", role=child.spec.role)
        try:
            child.transport.signalProcess(signal_name)
        except (error.ProcessExitedAlready, AttributeError):
            pass

    # --- what the child protocol reports ---

    def _child_started(self, child: _Child, transport) -> None:
        child.transport = transport
        child.pid = transport.pid
        child.started_at = self._reactor.seconds()

    def _child_message(self, child: _Child, line: bytes) -> None:
        child.last_heard = self._reactor.seconds()
        try:
            message = json.loads(line)
        except ValueError:
            self._child_log(child, line)
            return
        if not isinstance(message, dict):
            self._child_log(child, line)
        elif message.get("event") == "ready":
            if child.state == STARTING:
                child.state = RUNNING
                self.log.info("{role} child ready (pid {pid})", role=child.spec.role, pid=child.pid)
        elif message.get("event") == "alive":
            pass
        elif self._on_message is not None:
            self._on_message(child.spec.role, message)

    def _child_log(self, child: _Child, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip()
        if text:
            self.log.info("[{role}] {line}", role=child.spec.role, line=text)

    def _child_ended(self, child: _Child, reason: Failure) -> None:
        lived = self._reactor.seconds() - child.started_at
        child.transport = None
        child.pid = None
        if child.kill_call is not None:
            child.kill_call.cancel()
            child.kill_call = None
        if not self.running:
            child.state = STOPPED
            waiting, child.waiting_for_end = child.waiting_for_end, []
            for ended in waiting:
                ended.callback(None)
            return
        if lived >= self._policy.stable_after:
            child.consecutive_failures = 0
        child.consecutive_failures += 1
        delay = self._policy.delay(child.consecutive_failures)
        self.log.warn(
            "{role} child ended after {lived:.1f} s ({reason}); restarting in {delay:.1f} s",
            role=child.spec.role,
            lived=lived,
            reason=reason.getErrorMessage(),
            delay=delay,
        )
        child.state = BACKOFF
        child.restarts += 1
        child.restart_call = self._reactor.callLater(delay, self._spawn, child)
