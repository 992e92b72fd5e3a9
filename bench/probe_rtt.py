"""Probe round-trip time on loopback: what the latency probe adds by itself.

    .venv/bin/python bench/probe_rtt.py [--probes 1000] [--interval-ms 25] [--url ws://HOST:PORT/ws/probe]
    .venv/bin/python bench/probe_rtt.py --under-load [--streams 2] [--client-nice 10]

Without --url it starts its own daemon on free loopback ports.  Prints the
median, p90, p99 and max of the WebSocket echo round trip, timed on the
client with perf_counter around send and receive, as the browser does with
performance.now(), and beside it the server's own timing of the Ping it
sends behind each echo (``server_rtt_ms``, which the grade uses).  With --under-load it measures idle first, then again
while client processes (bench/throughput.py's) saturate /download and
/upload with --streams streams each.  Those load clients run at
--client-nice (default 10): they stand for the customers' machines, which in
a deployment do not share the server's cores.  The server is the daemon as
shipped: its load workers at load_worker_nice, the probe at normal priority.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from daemon import start_daemon  # noqa: E402  (the test suite's launcher, reused)
from throughput import api, client_path, counted_bytes  # noqa: E402


def measure(url: str, probes: int, interval: float) -> tuple[list[float], list[float]]:
    """The client's timing of each echo, and the server's timing of the Ping behind it."""
    rtts, server_rtts = [], []
    with connect(url, compression=None) as ws:
        for seq in range(probes):
            sent = time.perf_counter()
            ws.send(json.dumps({"seq": seq, "t": sent * 1000}))
            ws.recv(timeout=2)
            rtts.append((time.perf_counter() - sent) * 1000)
            server_rtts.append(json.loads(ws.recv(timeout=2))["server_rtt_ms"])
            time.sleep(interval)
    return rtts, server_rtts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def report(label: str, timings: tuple[list[float], list[float]]) -> None:
    print(f"{label}:")
    for timed_by, rtts in zip(("client", "server"), timings):
        print(f"  timed by the {timed_by}: n={len(rtts)} median={statistics.median(rtts):.3f} ms "
              f"p90={percentile(rtts, 90):.3f} ms p99={percentile(rtts, 99):.3f} ms max={max(rtts):.3f} ms")


def start_load(daemon, streams: int, seconds: float, nice: int) -> tuple[list, list]:
    """Client processes that keep /download and /upload saturated for *seconds*, and their sessions."""
    clients, sessions = [], []
    for kind in ("http-download", "http-upload"):
        for _ in range(streams):
            session = api(daemon, "POST", "/api/tests", b'{"mode":"single_user"}')
            sessions.append(session)
            clients.append(subprocess.Popen(
                ["nice", "-n", str(nice), sys.executable, str(Path(__file__).with_name("throughput.py")), "client", kind,
                 str(daemon.child_ports["load"]), client_path(kind, session, seconds), "", str(seconds)]))
    return clients, sessions


def moved_bytes(daemon, sessions: list) -> int:
    """Download plus upload bytes the server has counted for *sessions*."""
    return sum(counted_bytes(daemon, sessions, kind) for kind in ("http-download", "http-upload"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--interval-ms", type=float, default=25.0, help="under the probe's limit of 50 per second")
    parser.add_argument("--url")
    parser.add_argument("--client-nice", type=int, default=10, choices=range(0, 20), metavar="0..19",
                        help="nice level of the load clients, with --under-load")
    parser.add_argument("--under-load", action="store_true")
    parser.add_argument("--streams", type=int, default=2, help="download and upload streams each, with --under-load")
    options = parser.parse_args()
    if options.url:
        report("probe rtt", measure(options.url, options.probes, options.interval_ms / 1000))
        return
    with tempfile.TemporaryDirectory() as directory:
        daemon = start_daemon(Path(directory), config_text="max_concurrent_tests_per_ip=100\n", as_deployed=True)
        try:
            url = daemon.child_url("probe", "/ws/probe", websocket=True)
            measure(url, 20, 0.025)  # warm up both ends
            report("probe rtt, idle", measure(url, options.probes, options.interval_ms / 1000))
            if options.under_load:
                seconds = options.probes * options.interval_ms / 1000 * 1.5 + 5
                clients, sessions = start_load(daemon, options.streams, seconds, options.client_nice)
                time.sleep(2)
                try:
                    started, moved_before = time.monotonic(), moved_bytes(daemon, sessions)
                    rtts = measure(url, options.probes, options.interval_ms / 1000)
                    rate = (moved_bytes(daemon, sessions) - moved_before) * 8 / 1e9 / (time.monotonic() - started)
                    report(f"probe rtt, {options.streams}+{options.streams} bulk streams at {rate:.1f} Gbit/s "
                           f"(clients at nice {options.client_nice})", rtts)
                finally:
                    for client in clients:
                        client.kill()
                        client.wait()
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
