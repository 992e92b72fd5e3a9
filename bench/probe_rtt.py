"""Probe round-trip time on loopback: what the latency probe adds by itself.

    .venv/bin/python bench/probe_rtt.py [--probes 1000] [--interval-ms 25] [--url ws://HOST:PORT/ws/probe]

Without --url it starts its own daemon on free loopback ports.  Prints the
median, p90, p99 and max of the WebSocket echo round trip, timed on the
client with perf_counter around send and receive, as the browser does with
performance.now().
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from daemon import start_daemon  # noqa: E402  (the test suite's launcher, reused)


def measure(url: str, probes: int, interval: float) -> list[float]:
    rtts = []
    with connect(url, compression=None) as ws:
        for seq in range(probes):
            sent = time.perf_counter()
            ws.send(json.dumps({"seq": seq, "t": sent * 1000}))
            ws.recv(timeout=2)
            rtts.append((time.perf_counter() - sent) * 1000)
            time.sleep(interval)
    return rtts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def report(label: str, rtts: list[float]) -> None:
    print(f"{label}: n={len(rtts)} median={statistics.median(rtts):.3f} ms "
          f"p90={percentile(rtts, 90):.3f} ms p99={percentile(rtts, 99):.3f} ms max={max(rtts):.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--interval-ms", type=float, default=25.0, help="under the probe's limit of 50 per second")
    parser.add_argument("--url")
    options = parser.parse_args()
    if options.url:
        report("probe rtt", measure(options.url, options.probes, options.interval_ms / 1000))
        return
    with tempfile.TemporaryDirectory() as directory:
        daemon = start_daemon(Path(directory))
        try:
            url = daemon.child_url("probe", "/ws/probe", websocket=True)
            measure(url, 20, 0.025)  # warm up both ends
            report("probe rtt, idle", measure(url, options.probes, options.interval_ms / 1000))
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
