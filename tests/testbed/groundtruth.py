"""What the link really does: ping through it, and iperf3 across it.

Two ways a bufferbloat test can be wrong (../shared/testbed/README.md):
the probe measures something else than the link's latency (checked against
ping during the same phase), or the load is too light to fill the buffer a
household fills (checked against ping under four bulk iperf3 flows).
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import time
from dataclasses import dataclass

from netlab import SERVER_ADDRESS, Testbed, run

PING_INTERVAL = 0.1
_PING_LINE = re.compile(r"^\[(?P<at>\d+\.\d+)\].*time=(?P<rtt>[\d.]+) ms", re.MULTILINE)


@dataclass(frozen=True)
class PingSample:
    sent_at: float  # unix seconds
    rtt_ms: float


class PingRecorder:
    """``ping -D`` every 100 ms from the client namespace while something runs."""

    def __init__(self, bed: Testbed):
        self._bed = bed
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> "PingRecorder":
        self._process = self._bed.popen(
            self._bed.client, ["ping", "-D", "-n", "-i", str(PING_INTERVAL), "-W", "2", SERVER_ADDRESS],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()

    def samples(self) -> list[PingSample]:
        """Stop pinging and return each answered ping with the time it was sent."""
        self._process.terminate()
        output = self._process.communicate(timeout=10)[0]
        return [PingSample(float(m["at"]) - float(m["rtt"]) / 1000, float(m["rtt"]))
                for m in _PING_LINE.finditer(output)]


def median_between(samples: list[PingSample], start: float, end: float) -> tuple[float | None, int]:
    """Median ping RTT of pings sent in [start, end), and how many there were."""
    rtts = [s.rtt_ms for s in samples if start <= s.sent_at < end]
    return (statistics.median(rtts) if rtts else None), len(rtts)


@dataclass(frozen=True)
class BulkReference:
    """Four bulk TCP flows in one direction (or both): goodput and ping under them."""

    direction: str
    goodput_mbit: dict[str, float]
    ping_p50_ms: float
    ping_p95_ms: float


def iperf3_reference(bed: Testbed, direction: str, seconds: float = 8.0, settle: float = 3.0) -> BulkReference:
    """Run ``iperf3 -P 4`` (``-R`` for download, ``--bidir`` for both) with ping alongside.

    The first *settle* seconds are skipped, so the figures are steady state.
    """
    server = bed.popen(bed.server, ["iperf3", "-s", "-1"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        flags = {"down": "-R", "up": "", "both": "--bidir"}[direction]
        with PingRecorder(bed) as ping:
            started = time.time()
            result = run(f"iperf3 -c {SERVER_ADDRESS} -P 4 -t {seconds} {flags} -J", bed.client)
            samples = ping.samples()
        steady = sorted(s.rtt_ms for s in samples if s.sent_at >= started + settle)
        return BulkReference(direction, _goodput(json.loads(result.stdout), direction),
                             statistics.median(steady), steady[int(0.95 * (len(steady) - 1))])
    finally:
        server.kill()
        server.wait()


def _goodput(report: dict, direction: str) -> dict[str, float]:
    end = report["end"]
    if direction == "both":
        return {"down": end["sum_received_bidir_reverse"]["bits_per_second"] / 1e6,
                "up": end["sum_received"]["bits_per_second"] / 1e6}
    key = "down" if direction == "down" else "up"
    return {key: end["sum_received"]["bits_per_second"] / 1e6}
