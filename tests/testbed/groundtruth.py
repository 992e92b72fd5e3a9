"""What the link really does: ping through it, and iperf3 across it.

Two ways a bufferbloat test can be wrong (../shared/testbed/README.md):
the probe measures something else than the link's latency (checked against
ping during the same phase), or the load is too light to fill the buffer a
household fills (checked against ping under four bulk iperf3 flows).
"""

from __future__ import annotations

import json
import re
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from netlab import SERVER_ADDRESS, Testbed

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


# irtt (Debian's package): isochronous UDP round trips, as a game sends them.
IRTT_PORT = 2112
IRTT_INTERVAL = "16ms"  # a game's 60 Hz tick
IRTT_PACKET_BYTES = 64


@dataclass(frozen=True)
class UdpSample:
    sent_at: float  # unix seconds
    rtt_ms: float | None  # None: no reply came back


class IrttRecorder:
    """``irtt client`` every 16 ms from the client namespace to an ``irtt server`` in the server's.

    It stands for what a UDP game feels through the same link in the same
    window: a lost datagram is lost, never a delay for the next one.
    """

    def __init__(self, bed: Testbed, longest_seconds: float = 300.0):
        self._bed = bed
        self._longest = longest_seconds
        self._output = Path(tempfile.mkdtemp(prefix="lqos-irtt-")) / "irtt.json"
        self._server: subprocess.Popen | None = None
        self._client: subprocess.Popen | None = None

    def __enter__(self) -> "IrttRecorder":
        self._server = self._bed.popen(self._bed.server, ["irtt", "server", "-b", f"{SERVER_ADDRESS}:{IRTT_PORT}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        self._client = self._bed.popen(
            self._bed.client, ["irtt", "client", "-Q", "-i", IRTT_INTERVAL, "-l", str(IRTT_PACKET_BYTES),
                               "-d", f"{self._longest:g}s", "--wait=1s", "-o", str(self._output),
                               f"{SERVER_ADDRESS}:{IRTT_PORT}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc_info) -> None:
        for process in (self._client, self._server):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        if self._output.parent.exists():
            for path in self._output.parent.iterdir():
                path.unlink()
            self._output.parent.rmdir()

    def samples(self) -> list[UdpSample]:
        """Stop (irtt writes its results on SIGINT) and return every round trip it sent."""
        self._client.send_signal(signal.SIGINT)
        errors = self._client.communicate(timeout=15)[1]
        if not self._output.exists():
            raise RuntimeError(f"irtt wrote no results: {errors.strip()}")
        trips = json.loads(self._output.read_text())["round_trips"] or []
        return [UdpSample(trip["timestamps"]["client"]["send"]["wall"] / 1e9,
                          None if trip["lost"] != "false" else trip["delay"]["rtt"] / 1e6)
                for trip in trips]


def udp_loss_percent(samples: list[UdpSample], start: float, end: float, deadline_ms: float) -> float | None:
    """Datagrams sent in [start, end) that never came back or came back later than *deadline_ms*."""
    sent = [s for s in samples if start <= s.sent_at < end]
    late = [s for s in sent if s.rtt_ms is None or s.rtt_ms > deadline_ms]
    return 100.0 * len(late) / len(sent) if sent else None


def rtts_between(samples: list, start: float, end: float) -> list[float]:
    """The answered RTTs (ping's or irtt's) of what was sent in [start, end)."""
    return [s.rtt_ms for s in samples if start <= s.sent_at < end and s.rtt_ms is not None]


def median_between(samples: list[PingSample], start: float, end: float) -> tuple[float | None, int]:
    """Median ping RTT of pings sent in [start, end), and how many there were."""
    rtts = [s.rtt_ms for s in samples if start <= s.sent_at < end]
    return (statistics.median(rtts) if rtts else None), len(rtts)


@dataclass(frozen=True)
class BulkReference:
    """Four bulk TCP flows per loaded direction, at steady state: goodput and ping under them.

    Goodput is the median of iperf3's 250 ms intervals (bytes the receiver
    got), the statistic the test itself reports for its 250 ms windows.
    """

    direction: str
    goodput_mbit: dict[str, float]
    ping_p50_ms: float
    ping_p95_ms: float
    # Ping's median over every window of the steady state as long as the test's phase, 1 s apart
    # (``window_seconds``): what a phase could have read on this link, wherever it fell in time.
    window_p50s_ms: tuple[float, ...] = ()


INTERVAL_SECONDS = 0.25
# iperf3 flags per loaded direction: -R makes the server send (a download).
_DIRECTION_FLAGS = {"down": ["-R"], "up": []}


def window_medians(samples: list[PingSample], start: float, end: float, window: float,
                   step: float = 1.0) -> tuple[float, ...]:
    """Ping's median over each *window*-long span of [start, end), the spans *step* apart."""
    medians = []
    while start + window <= end + 1e-9:
        median, count = median_between(samples, start, start + window)
        if count:
            medians.append(median)
        start += step
    return tuple(medians)


def iperf3_reference(bed: Testbed, direction: str, seconds: float = 8.0, settle: float = 3.0,
                     download_lead: float = 4.0, window_seconds: float | None = None) -> BulkReference:
    """``iperf3 -P 4`` per loaded direction (``both``: download and upload at once) with ping alongside.

    Only steady state counts: intervals and pings of the first *settle*
    seconds are skipped.  For ``both`` the four download flows run alone for
    *download_lead* seconds first and the four upload flows then join; the
    figures come from the *seconds* after the join.  Why: a download that
    starts while the uplink FIFO is full gets its ACKs back only after that
    queue (250-300 ms on a deep link), so its window grows one slow round
    trip at a time and ``iperf3 --bidir`` started in both directions at once
    needs 9-15 s to reach its share on the deep 50/10 and 200/20 links (an
    8 s run averages that ramp: 15 of 47.7 Mbit/s).  Uploads that join a
    full downlink are at their share within 0.5 s, and the pair then holds
    the same steady state a 24 s ``--bidir`` run ends in (47.7/9 Mbit/s on
    50/10 deep, 191/15-17 on 200/20 deep).

    With *window_seconds*, the run also yields ping's median over every
    window of that length in its steady state (``window_p50s_ms``).
    """
    directions = ("down", "up") if direction == "both" else (direction,)
    ports = {"down": 5201, "up": 5202}
    servers = [bed.popen(bed.server, ["iperf3", "-s", "-1", "-J", "-p", str(ports[d])], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL) for d in directions]
    clients: dict[str, subprocess.Popen] = {}
    started: dict[str, float] = {}
    try:
        time.sleep(0.3)
        with PingRecorder(bed) as ping:
            for index, loaded in enumerate(directions):
                if index:
                    time.sleep(download_lead)
                started[loaded] = time.time()
                total = seconds + (download_lead if loaded == "down" and len(directions) > 1 else 0.0)
                clients[loaded] = bed.popen(
                    bed.client, ["iperf3", "-c", SERVER_ADDRESS, "-p", str(ports[loaded]), "-P", "4",
                                 "-t", str(total), "-i", str(INTERVAL_SECONDS), "--get-server-output", "-J",
                                 *_DIRECTION_FLAGS[loaded]],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            steady_from = time.time() + settle
            reports = {loaded: json.loads(process.communicate(timeout=seconds + download_lead + 30)[0])
                       for loaded, process in clients.items()}
            samples = ping.samples()
        steady = sorted(s.rtt_ms for s in samples if s.sent_at >= steady_from)
        goodput = {loaded: _steady_goodput(reports[loaded], loaded, steady_from - started[loaded])
                   for loaded in directions}
        windows = (window_medians(samples, steady_from, max(started.values()) + seconds, window_seconds)
                   if window_seconds else ())
        return BulkReference(direction, goodput, statistics.median(steady), steady[int(0.95 * (len(steady) - 1))],
                             windows)
    finally:
        for process in [*clients.values(), *servers]:
            if process.poll() is None:
                process.kill()
            process.wait()


def _steady_goodput(report: dict, direction: str, skip_seconds: float) -> float:
    """Median Mbit/s of the receiver's whole intervals that start *skip_seconds* or later into the run."""
    # The receiver's intervals: the client's own for a download (-R), the server's for an upload.
    receiver = report if direction == "down" else report["server_output_json"]
    rates = [interval["sum"]["bits_per_second"] / 1e6 for interval in receiver["intervals"]
             if interval["sum"]["start"] >= skip_seconds - INTERVAL_SECONDS / 2
             and interval["sum"]["seconds"] >= INTERVAL_SECONDS / 2]
    return statistics.median(rates)
