"""Does the test measure what the link does?  Run it through an emulated link and compare.

    .venv/bin/python tests/testbed/accuracy.py [--schedule standard|short] [--clients cli,browser] [--only NAME]

For each scenario (rate and FIFO depth per direction) this builds the
namespaces, starts the real daemon in the server namespace, and measures:

* ground truth for the probe: ping every 100 ms from the client namespace
  during the test, split by the test's own phase times;
* ground truth for the load: ping under four bulk iperf3 flows in each
  direction and both at once (steady state), and iperf3's goodput;
* the test: the CLI client (or the browser page) inside the client namespace.

It prints, per scenario and loaded phase: ground-truth increase (ping in
the same phase), the test's increase, the error, the increase under iperf3
-P 4, goodput against the test's throughput, and the grades.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from daemon import REPO, TWISTD, wait_until  # noqa: E402
from groundtruth import BulkReference, PingRecorder, iperf3_reference, median_between  # noqa: E402
from netlab import SERVER_ADDRESS, Link, Testbed, run  # noqa: E402

from lqos.grading import grade_for_increase, worst_grade  # noqa: E402

SERVER_URL = f"http://{SERVER_ADDRESS}:8000"
LOADED = ("download", "upload", "bidirectional")
DIRECTIONS_OF = {"download": ("down",), "upload": ("up",), "bidirectional": ("down", "up")}
RESULT_KEYS = {"down": "download", "up": "upload"}
REFERENCE_OF = {"download": "down", "upload": "up", "bidirectional": "both"}

SCENARIOS = (
    Link.with_queue_delay("10/2 deep", 10, 2, 300),
    Link.with_queue_delay("10/2 shallow", 10, 2, 8),
    Link.with_queue_delay("50/10 deep", 50, 10, 300),
    Link.with_queue_delay("50/10 shallow", 50, 10, 5),
    Link.with_queue_delay("200/20 deep", 200, 20, 250),
    Link.with_queue_delay("200/20 shallow", 200, 20, 5),
)
DAEMON_CONFIG = "max_concurrent_tests_per_ip=100\nmax_tests_per_hour_per_ip=10000\n"


@dataclass
class PhaseComparison:
    phase: str
    truth_increase_ms: float
    measured_increase_ms: float | None
    bulk_increase_ms: float
    truth_goodput_mbit: dict[str, float]
    measured_mbit: dict[str, float | None]
    truth_grade: str
    measured_grade: str | None

    @property
    def error_ms(self) -> float | None:
        if self.measured_increase_ms is None:
            return None
        return self.measured_increase_ms - self.truth_increase_ms

    def latency_ok(self) -> bool:
        error = self.error_ms
        return error is not None and abs(error) <= max(5.0, 0.10 * abs(self.truth_increase_ms))

    def throughput_errors(self) -> dict[str, float | None]:
        return {d: (None if self.measured_mbit.get(d) is None
                    else self.measured_mbit[d] / self.truth_goodput_mbit[d] - 1)
                for d in self.truth_goodput_mbit}

    def throughput_ok(self) -> bool:
        return all(e is not None and abs(e) <= 0.10 for e in self.throughput_errors().values())


@dataclass
class ScenarioReport:
    link: Link
    client: str
    idle_ms: float
    phases: list[PhaseComparison] = field(default_factory=list)
    overall_truth: str = ""
    overall_measured: str | None = None


def start_daemon_in(bed: Testbed, directory: Path) -> subprocess.Popen:
    config = directory / "lqos_test.conf"
    config.write_text(DAEMON_CONFIG)
    log = open(directory / "twistd.log", "wb")
    process = bed.popen(bed.server, [str(TWISTD), "--nodaemon", "--pidfile=", "lqos-bufferbloat",
                                     "--config", str(config), "--data-dir", str(directory / "var")],
                        cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    healthy = wait_until(
        lambda: run(f"curl -s -o /dev/null -w %{{http_code}} {SERVER_URL}/api/health", bed.client,
                    check=False).stdout == "200",
        timeout=60, interval=0.25)
    if not healthy:
        raise RuntimeError(f"daemon did not start in the server namespace:\n{(directory / 'twistd.log').read_text()}")
    return process


def run_cli(bed: Testbed, directory: Path, schedule: str) -> tuple[dict, dict]:
    """The CLI client in the client namespace: the server's result and the test's timeline."""
    timeline_path = directory / "timeline.json"
    argv = [str(TWISTD.parent / "lqos-bufferbloat-test"), SERVER_URL, "--json", "--timeline", str(timeline_path)]
    if schedule == "short":
        argv.append("--short")
    completed = subprocess.run(["ip", "netns", "exec", bed.client, *argv], capture_output=True, text=True,
                               timeout=180)
    if completed.returncode != 0:
        raise RuntimeError(f"the CLI failed: {completed.stderr.strip()}")
    return json.loads(completed.stdout), json.loads(timeline_path.read_text())


def phase_spans(timeline: dict) -> dict[str, tuple[float, float]]:
    spans, start = {}, timeline["started_unix"]
    for phase in timeline["phases"]:
        spans[phase["name"]] = (start, start + phase["seconds"])
        start += phase["seconds"]
    return spans


def compare(link: Link, record: dict, timeline: dict, pings: list, references: dict[str, BulkReference],
            idle_ms: float, client: str) -> ScenarioReport:
    result = record["result"]
    spans = phase_spans(timeline)
    truth_baseline, _ = median_between(pings, *spans["baseline"])
    report = ScenarioReport(link, client, idle_ms)
    for phase in LOADED:
        truth_phase, _ = median_between(pings, *spans[phase])
        measured = result["phases"][phase]
        reference = references[REFERENCE_OF[phase]]
        truth_increase = truth_phase - truth_baseline
        report.phases.append(PhaseComparison(
            phase=phase,
            truth_increase_ms=truth_increase,
            measured_increase_ms=measured["latency_increase_ms"],
            bulk_increase_ms=reference.ping_p50_ms - idle_ms,
            truth_goodput_mbit={d: reference.goodput_mbit[d] for d in DIRECTIONS_OF[phase]},
            measured_mbit={d: measured["throughput_mbps"][RESULT_KEYS[d]]["median"] for d in DIRECTIONS_OF[phase]},
            truth_grade=grade_for_increase(truth_increase),
            measured_grade=measured["grade"],
        ))
    report.overall_truth = worst_grade(p.truth_grade for p in report.phases)
    report.overall_measured = result["overall"]["grade"]
    return report


def measure_scenario(link: Link, schedule: str = "short", clients: tuple[str, ...] = ("cli",)) -> list[ScenarioReport]:
    """One link: its ground truth once, then a test by each client, one after the other."""
    directory = Path(tempfile.mkdtemp(prefix="lqos-accuracy-"))
    try:
        with Testbed(link) as bed:
            with PingRecorder(bed) as ping:
                time.sleep(3)
                idle = ping.samples()
            idle_ms = sorted(s.rtt_ms for s in idle)[len(idle) // 2]
            references = {direction: iperf3_reference(bed, direction) for direction in ("down", "up", "both")}
            daemon = start_daemon_in(bed, directory)
            try:
                reports = []
                for client in clients:
                    with PingRecorder(bed) as ping:
                        record, timeline = (run_browser if client == "browser" else run_cli)(bed, directory, schedule)
                        pings = ping.samples()
                    reports.append(compare(link, record, timeline, pings, references, idle_ms, client))
                return reports
            finally:
                daemon.terminate()
                daemon.wait(timeout=10)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def measure_household(link: Link, schedule: str = "short", client: str = "cli") -> dict:
    """The household test through *link*, by the CLI or the browser page: the server's result."""
    directory = Path(tempfile.mkdtemp(prefix="lqos-household-"))
    try:
        with Testbed(link) as bed:
            daemon = start_daemon_in(bed, directory)
            try:
                if client == "browser":
                    return run_household_page(bed, directory, schedule)
                argv = [str(TWISTD.parent / "lqos-bufferbloat-test"), SERVER_URL, "--mode", "household", "--json"]
                if schedule == "short":
                    argv.append("--short")
                completed = subprocess.run(["ip", "netns", "exec", bed.client, *argv], capture_output=True,
                                           text=True, timeout=180)
                if completed.returncode != 0:
                    raise RuntimeError(f"the household CLI failed: {completed.stderr.strip()}")
                return json.loads(completed.stdout)
            finally:
                daemon.terminate()
                daemon.wait(timeout=10)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_household_page(bed: Testbed, directory: Path, schedule: str) -> dict:
    """The page's household test in Chromium inside the client namespace: the stored result."""
    from browser_client import chromium_in
    from harness import CHROMIUM_ARGS, wait_for_screen
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_in(bed, directory)), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{SERVER_URL}/?mode=household&schedule={schedule}")
            page.click("#start-button")
            wait_for_screen(page, "result", timeout=180_000)
            share_id = page.input_value("#share-link").rsplit("/r/", 1)[1]
        finally:
            browser.close()
    return json.loads(run(f"curl -s -H 'Accept: application/json' {SERVER_URL}/r/{share_id}", bed.client).stdout)


def format_household(link: Link, record: dict) -> str:
    result = record["result"]
    lines = [f"{link.name}: household grade {result['overall']['grade']} ({result['overall']['reason']}); "
             f"fairness {result['fairness']['jain_index']}"]
    for name, persona in result["personas"].items():
        latency = persona["latency"]
        p50, increase = latency["increase_p50_ms"], latency["increase_p95_ms"]
        lines.append(f"  {name:<10} grade {str(persona['grade']):<4} increase p50 "
                     f"{'-' if p50 is None else f'{p50:.1f} ms':>9} p95 "
                     f"{'-' if increase is None else f'{increase:.1f} ms':>9}  loss {latency['loss_percent']}%  "
                     f"delivered {persona['throughput']['down_median_mbps']} of {persona['throughput']['target_down_mbps']} Mbit/s")
    return "\n".join(lines)


def run_browser(bed: Testbed, directory: Path, schedule: str) -> tuple[dict, dict]:
    from browser_client import run_page_test

    return run_page_test(bed, directory, SERVER_URL, schedule)


def format_report(reports: list[ScenarioReport]) -> str:
    header = (f"{'scenario':<15} {'client':<7} {'phase':<13} {'truth +ms':>9} {'test +ms':>9} {'error':>7} "
              f"{'iperf3 +ms':>10} {'goodput Mbit/s':>16} {'test Mbit/s':>16} {'grades t/m':>10} ok")
    lines = [header, "-" * len(header)]
    for report in reports:
        for p in report.phases:
            goodput = "/".join(f"{v:.1f}" for v in p.truth_goodput_mbit.values())
            measured = "/".join("-" if v is None else f"{v:.1f}" for v in p.measured_mbit.values())
            error = "-" if p.error_ms is None else f"{p.error_ms:+.1f}"
            measured_increase = "-" if p.measured_increase_ms is None else f"{p.measured_increase_ms:.1f}"
            ok = ("L" if p.latency_ok() else "l") + ("T" if p.throughput_ok() else "t") + \
                 ("G" if p.truth_grade == p.measured_grade else "g")
            lines.append(f"{report.link.name:<15} {report.client:<7} {p.phase:<13} {p.truth_increase_ms:9.1f} {measured_increase:>9} "
                         f"{error:>7} {p.bulk_increase_ms:10.1f} {goodput:>16} {measured:>16} "
                         f"{p.truth_grade + '/' + str(p.measured_grade):>10} {ok}")
        lines.append(f"{report.link.name:<15} {report.client:<7} {'overall':<13} idle {report.idle_ms:.1f} ms; "
                     f"grade truth {report.overall_truth}, test {report.overall_measured}")
    lines.append("ok: L/l latency within max(5 ms, 10%) of ping in the same phase; "
                 "T/t throughput within 10% of iperf3 -P 4; G/g grade equal")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedule", choices=("standard", "short"), default="standard")
    parser.add_argument("--clients", default="cli,browser", help="comma-separated: cli, browser")
    parser.add_argument("--only", help="run only scenarios whose name contains this")
    parser.add_argument("--household", action="store_true", help="also run the household test (CLI) on each link")
    options = parser.parse_args()
    reports = []
    for link in SCENARIOS:
        if options.only and options.only not in link.name:
            continue
        measured = measure_scenario(link, options.schedule, tuple(options.clients.split(",")))
        reports.extend(measured)
        print(format_report(measured), flush=True)
        if options.household:
            print(format_household(link, measure_household(link, options.schedule)), flush=True)
    print()
    print(format_report(reports))


if __name__ == "__main__":
    main()
