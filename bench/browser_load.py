"""How fast can a browser load the line, and what does it cost: the page against a reference page.

    .venv/bin/python bench/browser_load.py [--browsers chromium,firefox] [--seconds 6] [--streams 4]

Starts the daemon on free loopback ports.  In each browser (driven bare: no
DevTools domain or BiDi subscription that reports every chunk), it runs

- the reference page: nothing but STREAMS fetch() downloads of the test's
  download_url, then STREAMS upload POSTs of 16 MiB bodies to its upload_url,
  SECONDS each, from a page with no probes, charts or workers.  That is this
  machine's ceiling for a browser.  Its download is the median of its 250 ms
  windows after the first second, as the page's is graded; its upload is the
  mean over the run (whole bodies are counted when each POST is answered);
- the page itself: the short single-user test, its download and upload
  phases (median of their 250 ms windows, as graded).

For each it prints Mbit/s per direction and the browser's CPU-seconds per GB
(all of the browser's processes, from /proc, over the phase), and the share
of the reference the page reached; then, for the page's download phase, the
cores kept busy by each process of the browser and the server, and by the
kernel's softirq (packet processing) on the whole machine.  On loopback the browser, the server and
the kernel share this machine's cores, so the rates are CPU-bound: compare
the columns, not the absolute figures, with a real link.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent / "tests" / "browser")]

from bare_chromium import BareChromium  # noqa: E402
from bare_firefox import BareFirefox  # noqa: E402
from daemon import start_daemon  # noqa: E402
from reference_page import REFERENCE_PAGE, reference_bytes, reference_mbps  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CONFIG = "max_concurrent_tests_per_ip=100\nmax_tests_per_hour_per_ip=10000\n"

def descendants(root: int) -> list[int]:
    """A process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


# What a process of the browser or the daemon is, from its command line (first match wins).
ROLES = (
    ("utility-sub-type=network", "chromium network service"), ("type=renderer", "chromium renderer"),
    ("type=gpu-process", "chromium gpu"), ("type=", "chromium other"), ("chromium", "chromium browser"),
    ("-contentproc", "firefox content"), ("firefox", "firefox parent (network thread)"),
    ("lqos.load", "server load workers"), ("lqos.probe", "server probe"), ("lqos.personas", "server personas"),
    ("twistd", "server main"),
)


def role_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    return next((role for needle, role in ROLES if needle in words), "other")


def cpu_by_role(roots: list[int]) -> dict[str, float]:
    """CPU-seconds so far of every process under *roots*, summed by role."""
    totals: dict[str, float] = {}
    for root in roots:
        for pid in descendants(root):
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            role = role_of(pid)
            totals[role] = totals.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return totals


def softirq_seconds() -> float:
    """CPU-seconds the whole machine spent in softirq: the kernel's share of moving packets."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    return int(fields[7]) / CLOCK_TICKS


class CpuSampler:
    """CPU-seconds by role every 100 ms, with wall-clock times, to split by phase afterwards.

    Roles starting with the browser's name count as the browser's CPU.
    """

    def __init__(self, browser_root: int, server_root: int):
        self.roots = [browser_root, server_root]
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), cpu_by_role(self.roots) | {"kernel softirq (all)": softirq_seconds()}))
            time.sleep(0.1)

    def __enter__(self) -> "CpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def cores(self, start: float, end: float) -> dict[str, float]:
        """Cores each role kept busy over [start, end]."""
        inside = [(at, cpu) for at, cpu in self.samples if start <= at <= end]
        if len(inside) < 2:
            return {}
        (first_at, first), (last_at, last) = inside[0], inside[-1]
        return {role: (last[role] - first.get(role, 0.0)) / (last_at - first_at) for role in last}

    def browser_between(self, start: float, end: float) -> float:
        """The browser's CPU-seconds over [start, end]."""
        busy = self.cores(start, end)
        return sum(cores for role, cores in busy.items() if role.startswith(("chromium", "firefox"))) * (end - start)


def per_gb(cpu: float, mbps: float, seconds: float) -> float:
    gigabytes = mbps * 1e6 / 8 * seconds / 1e9
    return cpu / gigabytes if gigabytes else float("nan")


def reference(browser, daemon, direction: str, seconds: float, streams: int) -> tuple[float, float]:
    """Mbit/s and CPU-s per GB of the reference page in one direction."""
    with CpuSampler(browser.process.pid, daemon.process.pid) as sampler:
        began = time.time()
        answer = browser.evaluate(REFERENCE_PAGE, {"direction": direction, "seconds": seconds, "streams": streams})
        ended = time.time()
    mbps = reference_mbps(answer)[direction]
    return mbps, per_gb(sampler.browser_between(began, ended), reference_bytes(answer) * 8 / answer["seconds"] / 1e6,
                        ended - began)


def page(browser, daemon) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    """The page's short test: per loaded phase, the graded median Mbit/s and CPU-s per GB;
    and the cores each process kept busy during its download phase."""
    from lqos.sessions import SCHEDULES

    browser.goto(daemon.url + "/?schedule=short")
    with CpuSampler(browser.process.pid, daemon.process.pid) as sampler:
        browser.evaluate("document.getElementById('start-button').click()")
        browser.wait_for("document.body.dataset.screen === 'result'", timeout=120)
    started = float(browser.evaluate("document.body.dataset.testStartedUnixMs")) / 1000
    record = browser.evaluate("""(async () => (await fetch(location.pathname,
        {headers: {Accept: 'application/json'}})).json())()""")
    spans, at = {}, started
    for phase in SCHEDULES["single_user"]["short"]:
        spans[phase.name] = (at, at + phase.seconds)
        at += phase.seconds
    figures = {}
    for phase, direction in (("download", "download"), ("upload", "upload")):
        mbps = record["result"]["phases"][phase]["throughput_mbps"][direction]["median"]
        start, end = spans[phase]
        figures[direction] = (mbps, per_gb(sampler.browser_between(start, end), mbps, end - start))
    return figures, sampler.cores(*spans["download"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--browsers", default="chromium,firefox")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--streams", type=int, default=4)
    options = parser.parse_args()
    daemon = start_daemon(Path(tempfile.mkdtemp(prefix="lqos-bench-")), config_text=CONFIG, as_deployed=True)
    rows, breakdowns = [], {}
    try:
        for name in options.browsers.split(","):
            browser = BareFirefox() if name == "firefox" else BareChromium()
            try:
                browser.goto(daemon.url + "/")
                ref = {"download": reference(browser, daemon, "down", options.seconds, options.streams),
                       "upload": reference(browser, daemon, "up", options.seconds, options.streams)}
                own, breakdowns[name] = page(browser, daemon)
            finally:
                browser.close()
            for direction in ("download", "upload"):
                rows.append((name, direction, *ref[direction], *own[direction]))
    finally:
        daemon.stop()
    print(f"{'browser':<9} {'direction':<9} {'reference Mbit/s':>16} {'CPU-s/GB':>9} "
          f"{'page Mbit/s':>12} {'CPU-s/GB':>9} {'page/reference':>15}")
    for name, direction, ref_mbps, ref_cpu, page_mbps, page_cpu in rows:
        print(f"{name:<9} {direction:<9} {ref_mbps:16.0f} {ref_cpu:9.2f} {page_mbps:12.0f} {page_cpu:9.2f} "
              f"{page_mbps / ref_mbps:14.0%}")
    print(f"(loopback, {os.cpu_count()} cores shared by the browser, the server and the kernel; "
          f"reference: {options.streams} streams, {options.seconds:g} s per direction)")
    for name, busy in breakdowns.items():
        print(f"\ncores busy during the page's download phase in {name}:")
        for role, cores in sorted(busy.items(), key=lambda item: -item[1]):
            if cores >= 0.005:
                print(f"  {role:<34} {cores:5.2f}")


if __name__ == "__main__":
    main()
