"""Many short single-user tests at once against a daemon on loopback.

    .venv/bin/python bench/concurrency.py [--tests 200] [--workers 4] [--seconds 10] [--mbps 2] [--client-nice 10]

Starts its own daemon (tests/daemon.py ``start_daemon``) with limits raised
for the run, then runs ``--tests`` tests spread over ``--workers`` client
processes (Twisted) and over 50 source addresses 127.0.0.2-51.  What one
bench test does (a light, protocol-faithful client, not the real CLI):

1. ``POST /api/tests {"mode":"single_user","schedule":"short"}`` (timed);
2. opens the probe WebSocket and sends ``{seq, t}`` every 100 ms for the
   whole test, timing each echo (a probe unanswered in 2 s is lost);
3. from 1 s on, one ``GET /download`` and one ``POST /upload`` stream at
   once, each held to ``--mbps`` by the client (download: the client pauses
   reading; upload: the body is written at that rate), so the run measures
   the server's handling of many tests rather than loopback saturation;
4. ``GET .../progress`` once a second;
5. at the end ``POST .../result`` with a synthetic but valid set of samples
   (the server validates, grades and stores it like any other).

The client processes run at ``--client-nice`` (default 10): they stand for
customers on other machines, and on this 2-core box they would otherwise
take CPU from the server's own processes that no remote customer could.
The observer, which only probes, runs at normal priority.

A test fails if any step answers an unexpected status or errors; the reason
is counted.  Printed: tests completed and failed (with reasons), the
``POST /api/tests`` p50/p99, the probe RTT p50/p99 under load (measured in the
client processes, so it includes their own scheduling delay), the peak server
RSS and PSS (main process + children, from /proc), and Jain's fairness index of the
per-test throughput (download + upload bytes the client moved).
"""

from __future__ import annotations

import argparse
import json
import warnings
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from wire import plausible_samples  # noqa: E402  (the tests' valid submission, reused)

RECEIVE_BUFFER_BYTES = 64 * 1024
SOURCE_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 52)]
OBSERVER_INTERVAL = 0.025  # 40 probes a second, under the probe's limit of 50, for a p99 worth the name


# --------------------------------------------------------------- worker side

def run_worker(options) -> None:
    warnings.simplefilter("ignore", DeprecationWarning)
    from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
    from twisted.internet import defer, reactor, task
    from twisted.internet.protocol import Protocol
    from twisted.web.client import Agent, HTTPConnectionPool, readBody
    from twisted.web.http_headers import Headers
    from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
    from zope.interface import implementer

    rate = options.mbps * 1e6 / 8  # bytes per second per stream
    seconds = options.seconds
    results = []
    agents = {}

    def agent_for(ip: str) -> Agent:
        if ip not in agents:
            pool = HTTPConnectionPool(reactor, persistent=True)
            pool.maxPersistentPerHost = 2
            agents[ip] = (Agent(reactor, connectTimeout=10, bindAddress=(ip, 0), pool=pool),
                          Agent(reactor, connectTimeout=10, bindAddress=(ip, 0),
                                pool=HTTPConnectionPool(reactor, persistent=False)))
        return agents[ip]

    async def request(agent, method, url, body=None, expect=(200,)):
        producer = None
        if body is not None:
            producer = body if IBodyProducer.providedBy(body) else _Bytes(body)
        response = await agent.request(method, url.encode(), Headers({b"content-type": [b"application/json"]}), producer)
        data = await readBody(response)
        if response.code not in expect:
            raise StepFailed(f"{method.decode()} {url.split('?')[0].rsplit('/', 1)[-1] or '/'}: {response.code}")
        return data

    @implementer(IBodyProducer)
    class _Bytes:
        def __init__(self, data):
            self.data, self.length = data, len(data)

        def startProducing(self, consumer):
            consumer.write(self.data)
            return defer.succeed(None)

        def pauseProducing(self): pass
        def resumeProducing(self): pass
        def stopProducing(self): pass

    @implementer(IBodyProducer)
    class PacedBody:
        """Write *rate* bytes per second for *duration* seconds, in 100 ms slices."""
        length = UNKNOWN_LENGTH

        def __init__(self, duration, counter):
            self._duration, self._counter = duration, counter
            self._slice = b"u" * int(rate / 10)

        def startProducing(self, consumer):
            self._consumer = consumer
            self._done = defer.Deferred()
            self._started = time.monotonic()
            self._loop = task.LoopingCall(self._tick)
            self._loop.start(0.1)
            return self._done

        def _tick(self):
            if time.monotonic() - self._started >= self._duration:
                self._loop.stop()
                self._done.callback(None)
                return
            self._consumer.write(self._slice)
            self._counter["up"] += len(self._slice)

        def pauseProducing(self): pass
        def resumeProducing(self): pass

        def stopProducing(self):
            if self._loop.running:
                self._loop.stop()

    class PacedReader(Protocol):
        """Read a download body at most at *rate*, pausing the transport when ahead."""

        def __init__(self, counter, finished):
            self._counter, self.finished = counter, finished
            self._start = time.monotonic()
            self._read = 0

        def connectionMade(self):
            # A 2 Mbit/s line holds little in flight; without this the kernel's
            # receive buffer (autotuned to megabytes) would take a burst of
            # several MB per stream at loopback speed before pacing bites.
            sock = getattr(getattr(self.transport, "_producer", None), "socket", None)
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)

        def dataReceived(self, data):
            self._read += len(data)
            self._counter["down"] += len(data)
            ahead = self._read / rate - (time.monotonic() - self._start)
            if ahead > 0.05:
                self.transport.pauseProducing()
                reactor.callLater(ahead, self._resume)

        def _resume(self):
            try:
                self.transport.resumeProducing()
            except Exception:
                pass

        def connectionLost(self, reason):
            if not self.finished.called:
                self.finished.callback(None)

    class Prober(WebSocketClientProtocol):
        def onOpen(self):
            self.transport.setTcpNoDelay(True)  # Autobahn's own option never takes effect
            self.factory.opened.callback(self)
            self.sent = {}
            self.seq = 0
            self.loop = task.LoopingCall(self.probe)
            self.loop.start(getattr(self.factory, "interval", 0.1))

        def probe(self):
            now = time.perf_counter()
            for seq in [s for s, t in self.sent.items() if now - t > 2.0]:
                del self.sent[seq]
                self.factory.stats["lost"] += 1
            self.sent[self.seq] = now
            self.sendMessage(json.dumps({"seq": self.seq, "t": round(now * 1000, 3)}).encode())
            self.seq += 1

        def onMessage(self, payload, isBinary):
            now = time.perf_counter()
            seq = json.loads(payload)["seq"]
            sent = self.sent.pop(seq, None)
            if sent is not None:
                self.factory.stats["rtts"].append((now - sent) * 1000)
                if now - sent > 0.2:
                    self.factory.stats.setdefault("slow_at", []).append(round(time.time() - options.start_at, 2))

        def stop(self):
            """Stop probing; echoes still in flight get half a second before they count as lost."""
            if self.loop.running:
                self.loop.stop()
            reactor.callLater(0.5, self._close)

        def _close(self):
            self.factory.stats["lost"] += len(self.sent)
            self.sent.clear()
            self.sendClose(1000)

        def onClose(self, wasClean, code, reason):
            if hasattr(self, "loop") and self.loop.running:
                self.loop.stop()
            if not self.factory.opened.called:
                self.factory.opened.errback(StepFailed(f"probe closed: {code} {reason}"))

    async def one_test(index: int, ip: str):
        control, streams = agent_for(ip)
        record = {"ip": ip}
        counter = {"down": 0, "up": 0}
        try:
            started = time.perf_counter()
            body = await request(control, b"POST", options.url + "/api/tests",
                                 b'{"mode":"single_user","schedule":"short"}', expect=(201,))
            record["start_ms"] = (time.perf_counter() - started) * 1000
            session = json.loads(body)
            factory = WebSocketClientFactory(session["probe_url"])
            factory.protocol = Prober
            factory.opened = defer.Deferred()
            factory.stats = record.setdefault("probe", {"rtts": [], "lost": 0})
            reactor.connectTCP("127.0.0.1", int(session["probe_url"].split(":")[2].split("/")[0]), factory,
                               timeout=10, bindAddress=(ip, 0))
            prober = await factory.opened
            await task.deferLater(reactor, 1.0)
            load_seconds = seconds - 2
            down_done = defer.Deferred()
            download = streams.request(b"GET", f"{session['download_url']}&seconds={load_seconds}".encode())

            def read(response):
                if response.code != 200:
                    raise StepFailed(f"download: {response.code}")
                response.deliverBody(PacedReader(counter, down_done))
                return down_done
            download.addCallback(read)
            upload = request(streams, b"POST", session["upload_url"], PacedBody(load_seconds, counter))
            load_started = time.monotonic()
            polls = 0
            while time.monotonic() - load_started < load_seconds:
                await task.deferLater(reactor, 1.0)
                await request(control, b"GET", session["progress_url"])
                polls += 1
            await defer.gatherResults([download, defer.ensureDeferred(upload)], consumeErrors=True)
            await task.deferLater(reactor, max(0.0, seconds - 1 - load_seconds - 0.5))
            prober.stop()
            result = json.loads(await request(control, b"POST", session["result_url"],
                                              json.dumps(plausible_samples(session["token"], streams=(1, 1))).encode()))
            if "result" not in result:
                raise StepFailed("result without grades")
            record.update(ok=True, bytes=counter["down"] + counter["up"], down=counter["down"],
                          up=counter["up"], polls=polls)
        except defer.FirstError as error:
            record.update(ok=False, reason=_reason(error.subFailure.value))
        except Exception as error:  # every failure is counted with its reason
            record.update(ok=False, reason=_reason(error))
        results.append(record)

    async def main():
        await task.deferLater(reactor, max(0.0, options.start_at - time.time()))
        runs = []
        for i in range(options.count):
            ip = SOURCE_ADDRESSES[(options.first + i) % len(SOURCE_ADDRESSES)]
            runs.append(defer.ensureDeferred(one_test(i, ip)))
            await task.deferLater(reactor, options.ramp / max(1, options.count))
        await defer.DeferredList(runs)

    async def observe():
        """Only probe, from a process doing nothing else: the server's probe RTT under the load.

        The load clients' own RTTs include the time their busy, niced
        reactors take to notice an echo; a customer's browser on its own
        machine has no such delay, so this is the figure to judge the
        server by.
        """
        factory = WebSocketClientFactory(options.url)
        factory.protocol = Prober
        factory.opened = defer.Deferred()
        factory.stats = {"rtts": [], "lost": 0}
        factory.interval = OBSERVER_INTERVAL
        port = int(options.url.split(":")[2].split("/")[0])
        reactor.connectTCP("127.0.0.1", port, factory, timeout=10, bindAddress=("127.0.0.1", 0))
        prober = await factory.opened
        await task.deferLater(reactor, options.seconds)
        prober.stop()
        results.append({"observer": factory.stats})

    def done(_):
        print(json.dumps(results))
        sys.stdout.flush()
        reactor.stop()
    defer.ensureDeferred(observe() if options.observe else main()).addBoth(done)
    reactor.run()


class StepFailed(Exception):
    pass


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:120]


# --------------------------------------------------------------- driver side

def percentile(values, fraction):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def jain(values) -> float:
    values = [v for v in values]
    if not values or not any(values):
        return float("nan")
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


def memory_mb(pids) -> tuple[float, float]:
    """Summed RSS and PSS of ``pids`` in MB.

    RSS counts a shared page (the interpreter, Twisted, OpenSSL) once per
    process that maps it; PSS splits it between them, so its sum is what the
    server really occupies.
    """
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return rss / 1024, pss / 1024


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def server_pids(daemon) -> list[int]:
    return [daemon.process.pid] + [pid for pid in daemon.child_pids().values() if pid]


def config_text(tests: int) -> str:
    return (f"max_concurrent_tests={tests * 2}\nmax_concurrent_tests_per_ip=1000\n"
            "max_tests_per_hour_per_ip=100000\n")


def drive(options) -> None:
    from daemon import start_daemon

    with tempfile.TemporaryDirectory() as scratch:
        daemon = start_daemon(Path(scratch), config_text=config_text(options.tests), as_deployed=True)
        try:
            pids = server_pids(daemon)
            roles = {daemon.process.pid: "main", **{pid: role for role, pid in daemon.child_pids().items()}}
            cpu_start = {pid: cpu_seconds(pid) for pid in pids}
            wall_start = time.monotonic()
            rss_start = memory_mb(pids)
            peak = [rss_start]
            stop = threading.Event()

            def sample():
                while not stop.wait(0.5):
                    peak.append(memory_mb(pids))
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            start_at = time.time() + 2.0
            per_worker = [options.tests // options.workers + (1 if w < options.tests % options.workers else 0)
                          for w in range(options.workers)]
            workers, first = [], 0
            for count in per_worker:
                workers.append(subprocess.Popen(
                    [sys.executable, __file__, "--worker", "--url", daemon.url, "--count", str(count),
                     "--first", str(first), "--start-at", str(start_at), "--seconds", str(options.seconds),
                     "--mbps", str(options.mbps), "--ramp", str(options.ramp),
                     "--client-nice", str(options.client_nice)],
                    stdout=subprocess.PIPE, text=True))
                first += count
            probe_port = daemon.child_ports["probe"]
            observer = subprocess.Popen(
                [sys.executable, __file__, "--worker", "--observe", "--url", f"ws://127.0.0.1:{probe_port}/ws/probe",
                 "--seconds", str(options.seconds + options.ramp + 2)], stdout=subprocess.PIPE, text=True)
            results = []
            for worker in [*workers, observer]:
                out, _ = worker.communicate(timeout=options.seconds + 120)
                lines = [line for line in out.splitlines() if line.startswith("[")]
                results += json.loads(lines[-1]) if lines else [{"ok": False, "reason": "worker crashed"}]
            stop.set()
            sampler.join()
            wall = time.monotonic() - wall_start
            print("server CPU over the run (% of one core): " + "   ".join(
                f"{roles[pid]} {100 * (cpu_seconds(pid) - cpu_start[pid]) / wall:.0f}%" for pid in pids))
            health = daemon.health()
            alive = daemon.process.poll() is None
            rss_peak = tuple(max(sample[i] for sample in peak) for i in (0, 1))
            report(options, results, rss_start, rss_peak, memory_mb(pids), health, alive)
        finally:
            daemon.stop()


def report(options, results, rss_start, rss_peak, rss_end, health, alive) -> None:
    observed = [r["observer"] for r in results if "observer" in r]
    results = [r for r in results if "observer" not in r]
    ok = [r for r in results if r.get("ok")]
    failed = [r for r in results if not r.get("ok")]
    reasons = {}
    for r in failed:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    starts = [r["start_ms"] for r in results if "start_ms" in r]
    rtts = [rtt for r in results for rtt in r.get("probe", {}).get("rtts", [])]
    lost = sum(r.get("probe", {}).get("lost", 0) for r in results)
    rates = [r["bytes"] * 8 / (options.seconds - 2) / 1e6 for r in ok]
    print(f"tests: {len(results)} started over {options.ramp:g} s by {options.workers} client processes "
          f"(nice {options.client_nice}), "
          f"{options.seconds:g} s each, streams at {options.mbps:g} Mbit/s down + up")
    print(f"completed: {len(ok)}   failed: {len(failed)}")
    for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
        print(f"  {count} x {reason}")
    print(f"POST /api/tests: p50 {percentile(starts, 0.5):.1f} ms   p99 {percentile(starts, 0.99):.1f} ms   "
          f"max {max(starts, default=float('nan')):.1f} ms   (n={len(starts)})")
    print(f"probe RTT in the load clients: p50 {percentile(rtts, 0.5):.2f} ms   p99 {percentile(rtts, 0.99):.2f} ms   "
          f"max {max(rtts, default=float('nan')):.2f} ms   (n={len(rtts)}, lost {lost})")
    for stats in observed:
        rtts = stats["rtts"]
        print(f"probe RTT from an idle observer process during the load: p50 {percentile(rtts, 0.5):.2f} ms   "
              f"p99 {percentile(rtts, 0.99):.2f} ms   max {max(rtts, default=float('nan')):.2f} ms   "
              f"(n={len(rtts)}, lost {stats['lost']})")
    for index, name in enumerate(("RSS", "PSS")):
        print(f"server {name} (main + children): start {rss_start[index]:.0f} MB   "
              f"peak {rss_peak[index]:.0f} MB   end {rss_end[index]:.0f} MB")
    if rates:
        print(f"throughput per test (down+up): mean {sum(rates) / len(rates):.2f} Mbit/s   "
              f"min {min(rates):.2f}   max {max(rates):.2f}   Jain's index {jain(rates):.4f}")
    slow = sorted(t for r in results for t in r.get("probe", {}).get("slow_at", []))
    if slow and os.environ.get("BENCH_DEBUG"):
        buckets = {}
        for t in slow:
            buckets[int(t)] = buckets.get(int(t), 0) + 1
        print("probes slower than 200 ms, by wall-clock second:", buckets)
    print(f"daemon alive: {alive}   /api/health: {health[0] if health else 'no answer'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one bench test (at most 15)")
    parser.add_argument("--mbps", type=float, default=2.0, help="rate of each download and upload stream")
    parser.add_argument("--ramp", type=float, default=1.0, help="seconds over which a worker starts its tests")
    parser.add_argument("--client-nice", type=int, default=10, choices=range(0, 20), metavar="0..19",
                        help="nice level of the client processes (not of the observer)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--observe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        if not options.observe:
            os.nice(options.client_nice)
        run_worker(options)
    else:
        drive(options)


if __name__ == "__main__":
    main()
