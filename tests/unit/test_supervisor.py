"""The supervisor, driven by a fake reactor as Twisted's own procmon tests are."""

from __future__ import annotations

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from lqos.daemon.supervisor import ChildSpec, RestartPolicy, Supervisor


class FakeProcess:
    """What spawnProcess would return: a pid and a record of signals sent."""

    def __init__(self, pid: int):
        self.pid = pid
        self.signals: list[str] = []

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)


class ProcessReactor(MemoryReactorClock):
    """A MemoryReactorClock that also records spawnProcess calls."""

    def __init__(self):
        super().__init__()
        self.spawned: list[tuple] = []
        self._next_pid = 100

    def spawnProcess(self, protocol, executable, args, env=None, path=None, uid=None, gid=None,
                     usePTY=False, childFDs=None):
        self._next_pid += 1
        process = FakeProcess(self._next_pid)
        self.spawned.append((protocol, executable, args, env, childFDs, process))
        protocol.makeConnection(process)
        return process


SPEC = ChildSpec(role="probe", argv=("/usr/bin/python3", "-m", "lqos.probe"), port=8005,
                 env={"PATH": "/usr/bin"})


class SupervisorTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = ProcessReactor()
        self.messages = []
        self.supervisor = Supervisor([SPEC], self.reactor,
                                     on_message=lambda role, m: self.messages.append((role, m)))
        self.supervisor.startService()

    def latest(self):
        protocol, executable, args, env, child_fds, process = self.reactor.spawned[-1]
        return protocol, process

    def child(self) -> dict:
        (snapshot,) = self.supervisor.snapshot()
        return snapshot

    def end_latest(self, reason=ProcessTerminated(exitCode=1)):
        protocol, _ = self.latest()
        protocol.processEnded(Failure(reason))

    def test_spawns_with_explicit_environment_and_a_stdin_pipe(self):
        _, executable, args, env, child_fds, _ = self.reactor.spawned[0]
        self.assertEqual(executable, "/usr/bin/python3")
        self.assertEqual(args, ["/usr/bin/python3", "-m", "lqos.probe"])
        self.assertEqual(env, {"PATH": "/usr/bin"})
        self.assertEqual(child_fds, {0: "w", 1: "r", 2: "r"})

    def test_running_only_after_the_child_says_ready(self):
        self.assertEqual(self.child()["state"], "starting")
        self.assertFalse(self.supervisor.all_running())
        protocol, process = self.latest()
        protocol.outReceived(b'{"event": "re')
        protocol.outReceived(b'ady"}\n')
        self.assertEqual(self.child(), {"role": "probe", "pid": process.pid, "port": 8005,
                                        "state": "running", "restarts": 0})
        self.assertTrue(self.supervisor.all_running())

    def test_other_messages_reach_the_callback(self):
        protocol, _ = self.latest()
        protocol.outReceived(b'{"event": "stats", "n": 3}\nnot json\n')
        self.assertEqual(self.messages, [("probe", {"event": "stats", "n": 3})])

    def test_first_restart_within_a_second(self):
        self.end_latest()
        self.assertEqual(self.child()["state"], "backoff")
        self.reactor.advance(0.49)
        self.assertEqual(len(self.reactor.spawned), 1)
        self.reactor.advance(0.02)
        self.assertEqual(len(self.reactor.spawned), 2)
        self.assertEqual(self.child()["restarts"], 1)
        self.assertEqual(self.child()["state"], "starting")

    def test_backoff_doubles_on_consecutive_failures_and_resets_after_stability(self):
        delays = []
        for _ in range(4):
            self.end_latest()
            before = self.reactor.seconds()
            while len(self.reactor.spawned) == len(delays) + 1:
                self.reactor.advance(0.05)
            delays.append(round(self.reactor.seconds() - before, 1))
        self.assertEqual(delays, [0.5, 1.0, 2.0, 4.0])
        self.reactor.advance(RestartPolicy().stable_after)
        self.end_latest()
        self.reactor.advance(0.5)
        self.assertEqual(len(self.reactor.spawned), 6)

    def test_backoff_is_capped(self):
        self.assertEqual(RestartPolicy().delay(50), RestartPolicy().max_delay)

    def test_stop_sends_term_then_kill_and_waits_for_the_end(self):
        protocol, process = self.latest()
        stopped = self.supervisor.stopService()
        self.assertEqual(process.signals, ["TERM"])
        self.assertNoResult(stopped)
        self.reactor.advance(RestartPolicy().kill_after)
        self.assertEqual(process.signals, ["TERM", "KILL"])
        protocol.processEnded(Failure(ProcessTerminated(signal=9)))
        self.successResultOf(stopped)
        self.assertEqual(self.child()["state"], "stopped")
        self.assertEqual(len(self.reactor.spawned), 1, "no restart while stopping")
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_stop_during_backoff_cancels_the_restart(self):
        self.end_latest(ProcessDone(0))
        self.successResultOf(self.supervisor.stopService())
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.child()["state"], "stopped")


class HeartbeatTests(SynchronousTestCase):
    """A child that stops talking (stopped, stuck in a loop) is reported, not silently trusted.

    Children send ``{"event": "alive"}`` every second; ``/api/health`` shows a
    running child silent for longer than ``silent_after`` as "unresponsive"
    and answers 503 through ``all_running``.  Silence alone never restarts a
    child: a frozen process may come back (SIGCONT), and a restart would
    fail the tests it is serving.
    """

    SILENT_AFTER = 5.0

    def setUp(self):
        self.reactor = ProcessReactor()
        self.supervisor = Supervisor([SPEC], self.reactor, silent_after=self.SILENT_AFTER)
        self.supervisor.startService()
        self.protocol, self.process = self.reactor.spawned[-1][0], self.reactor.spawned[-1][-1]
        self.protocol.outReceived(b'{"event": "ready"}\n')

    def child(self) -> dict:
        (snapshot,) = self.supervisor.snapshot()
        return snapshot

    def test_a_child_that_keeps_its_heartbeat_stays_running(self):
        for _ in range(20):
            self.reactor.advance(1.0)
            self.protocol.outReceived(b'{"event": "alive"}\n')
        self.assertEqual(self.child()["state"], "running")
        self.assertTrue(self.supervisor.all_running())

    def test_silence_past_the_bound_is_reported_unresponsive_with_for_how_long(self):
        self.reactor.advance(self.SILENT_AFTER)
        self.assertEqual(self.child()["state"], "running", "silent exactly as long as allowed is still fine")
        self.reactor.advance(2.0)
        self.assertEqual(self.child()["state"], "unresponsive")
        self.assertEqual(self.child()["silent_seconds"], 7.0)
        self.assertFalse(self.supervisor.all_running())

    def test_an_unresponsive_child_is_not_restarted_and_recovers_with_its_next_heartbeat(self):
        self.reactor.advance(60.0)
        self.assertEqual(self.child()["state"], "unresponsive")
        self.assertEqual(len(self.reactor.spawned), 1)
        self.assertEqual(self.process.signals, [])
        self.protocol.outReceived(b'{"event": "alive"}\n')
        self.assertEqual(self.child(), {"role": "probe", "pid": self.process.pid, "port": 8005,
                                        "state": "running", "restarts": 0})
        self.assertTrue(self.supervisor.all_running())

    def test_any_line_from_the_child_counts_as_a_sign_of_life(self):
        self.reactor.advance(4.0)
        self.protocol.outReceived(b'{"event": "stats", "sessions": 0}\n')
        self.reactor.advance(4.0)
        self.assertEqual(self.child()["state"], "running")

    def test_a_child_still_starting_or_in_backoff_is_not_called_unresponsive(self):
        self.protocol.processEnded(Failure(ProcessTerminated(exitCode=1)))
        self.reactor.advance(0.1)
        self.assertEqual(self.child()["state"], "backoff")
        self.reactor.advance(RestartPolicy().first_delay)
        self.assertEqual(self.child()["state"], "starting")
        self.reactor.advance(self.SILENT_AFTER * 3)
        self.assertEqual(self.child()["state"], "starting")
