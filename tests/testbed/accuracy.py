"""Does the test measure what the link does?  Run it through an emulated link and compare.

    .venv/bin/python tests/testbed/accuracy.py [--schedule standard|short] [--clients cli,chromium,firefox] [--only NAME]

For each scenario (rate and FIFO depth per direction) this builds the
namespaces, starts the real daemon in the server namespace, and measures:

* ground truth for the probe: ping every 100 ms from the client namespace
  during the test, split by the test's own phase times;
* ground truth for the load: ping under four bulk iperf3 flows in each
  direction and both at once (steady state), and iperf3's goodput;
* the test: the CLI client, and the page in Chromium and in Firefox, inside
  the client namespace (browsers driven bare: browser_client.py).

On gigabit links with a deep FIFO the reference disagrees with itself from
run to run (four cubic flows fill 100 ms of buffer in a slow sawtooth), so
those scenarios take several reference runs and judge each client against
their range.

It prints, per scenario and loaded phase: ground-truth increase (ping in
the same phase), the test's increase, the error, the increase under iperf3
-P 4, goodput against the test's throughput, and the grades.
"""

from __future__ import annotations

import argparse
import json
import statistics
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
from browser_client import run_page_test  # noqa: E402
from netlab import SERVER_ADDRESS, Link, Testbed, run  # noqa: E402

from lqos.grading import grade_for_increase, worst_grade  # noqa: E402

SERVER_URL = f"http://{SERVER_ADDRESS}:8000"
LOADED = ("download", "upload", "bidirectional")
DIRECTIONS_OF = {"download": ("down",), "upload": ("up",), "bidirectional": ("down", "up")}
RESULT_KEYS = {"down": "download", "up": "upload"}
REFERENCE_OF = {"download": "down", "upload": "up", "bidirectional": "both"}

CLIENTS = ("cli", "chromium", "firefox")
SCENARIOS = (
    Link.with_queue_delay("10/2 deep", 10, 2, 300),
    Link.with_queue_delay("10/2 shallow", 10, 2, 8),
    Link.with_queue_delay("50/10 deep", 50, 10, 300),
    Link.with_queue_delay("50/10 shallow", 50, 10, 5),
    Link.with_queue_delay("200/20 deep", 200, 20, 250),
    Link.with_queue_delay("200/20 shallow", 200, 20, 5),
)
# Gigabit rows, each judged against REFERENCE_RUNS reference runs: fibre is
# tbf alone (no delay line: both directions at 1 Gbit/s are more than a user
# space delay line carries on two cores); cable has 10 ms of base RTT.
GIGABIT_FIBRE = Link("1000/1000 fibre", 1000, 1000, 250_000, 250_000)
GIGABIT_CABLE = Link("1000/100 cable", 1000, 100, 12_500_000, 1_250_000, rtt_ms=10)
GIGABIT = (GIGABIT_FIBRE, GIGABIT_CABLE)
REFERENCE_RUNS = 3
DAEMON_CONFIG = "max_concurrent_tests_per_ip=100\nmax_tests_per_hour_per_ip=10000\n"


@dataclass
class PhaseComparison:
    phase: str
    truth_increase_ms: float
    measured_increase_ms: float | None
    bulk_increases_ms: tuple[float, ...]  # ping's rise under iperf3 -P 4, one per reference run
    bulk_goodputs_mbit: dict[str, tuple[float, ...]]  # iperf3's goodput per direction, one per run
    measured_mbit: dict[str, float | None]
    truth_grade: str
    measured_grade: str | None

    @property
    def bulk_increase_ms(self) -> float:
        return statistics.median(self.bulk_increases_ms)

    @property
    def truth_goodput_mbit(self) -> dict[str, float]:
        return {d: statistics.median(values) for d, values in self.bulk_goodputs_mbit.items()}

    def within_reference_range(self) -> bool:
        """The rise lies within the reference runs' range, widened by max(5 ms, 10%) at each end."""
        if self.measured_increase_ms is None:
            return False
        low, high = min(self.bulk_increases_ms), max(self.bulk_increases_ms)
        return (low - max(5.0, 0.10 * abs(low)) <= self.measured_increase_ms
                <= high + max(5.0, 0.10 * abs(high)))

    def grade_of_a_reference_run(self) -> bool:
        return self.measured_grade in {grade_for_increase(rise) for rise in self.bulk_increases_ms}

    def throughput_reaches(self, share: float = 0.90) -> bool:
        """Each direction at least *share* of the reference runs' median goodput."""
        return all(self.measured_mbit.get(d) is not None and self.measured_mbit[d] >= share * goodput
                   for d, goodput in self.truth_goodput_mbit.items())

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


def compare(link: Link, record: dict, timeline: dict, pings: list, references: list[dict[str, BulkReference]],
            idle_ms: float, client: str) -> ScenarioReport:
    result = record["result"]
    spans = phase_spans(timeline)
    truth_baseline, _ = median_between(pings, *spans["baseline"])
    report = ScenarioReport(link, client, idle_ms)
    for phase in LOADED:
        truth_phase, _ = median_between(pings, *spans[phase])
        measured = result["phases"][phase]
        runs = [run[REFERENCE_OF[phase]] for run in references]
        truth_increase = truth_phase - truth_baseline
        report.phases.append(PhaseComparison(
            phase=phase,
            truth_increase_ms=truth_increase,
            measured_increase_ms=measured["latency_increase_ms"],
            bulk_increases_ms=tuple(run.ping_p50_ms - idle_ms for run in runs),
            bulk_goodputs_mbit={d: tuple(run.goodput_mbit[d] for run in runs) for d in DIRECTIONS_OF[phase]},
            measured_mbit={d: measured["throughput_mbps"][RESULT_KEYS[d]]["median"] for d in DIRECTIONS_OF[phase]},
            truth_grade=grade_for_increase(truth_increase),
            measured_grade=measured["grade"],
        ))
    report.overall_truth = worst_grade(p.truth_grade for p in report.phases)
    report.overall_measured = result["overall"]["grade"]
    return report


def measure_scenario(link: Link, schedule: str = "short", clients: tuple[str, ...] = ("cli",),
                     reference_runs: int = 1) -> list[ScenarioReport]:
    """One link: its ground truth (*reference_runs* times), then a test by each client, one after the other."""
    directory = Path(tempfile.mkdtemp(prefix="lqos-accuracy-"))
    try:
        with Testbed(link) as bed:
            with PingRecorder(bed) as ping:
                time.sleep(3)
                idle = ping.samples()
            idle_ms = sorted(s.rtt_ms for s in idle)[len(idle) // 2]
            references = [{direction: iperf3_reference(bed, direction) for direction in ("down", "up", "both")}
                          for _ in range(reference_runs)]
            daemon = start_daemon_in(bed, directory)
            try:
                reports = []
                for client in clients:
                    with PingRecorder(bed) as ping:
                        record, timeline = (run_cli(bed, directory, schedule) if client == "cli"
                                            else run_page_test(bed, SERVER_URL, schedule, client))
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
                if client != "cli":
                    return run_page_test(bed, SERVER_URL, schedule, client, mode="virtual_household")[0]
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


def format_report(reports: list[ScenarioReport]) -> str:
    header = (f"{'scenario':<15} {'client':<8} {'phase':<13} {'truth +ms':>9} {'test +ms':>9} {'error':>7} "
              f"{'iperf3 +ms':>13} {'goodput Mbit/s':>16} {'test Mbit/s':>16} {'grades t/m':>10} ok")
    lines = [header, "-" * len(header)]
    for report in reports:
        for p in report.phases:
            goodput = "/".join(f"{v:.1f}" for v in p.truth_goodput_mbit.values())
            measured = "/".join("-" if v is None else f"{v:.1f}" for v in p.measured_mbit.values())
            error = "-" if p.error_ms is None else f"{p.error_ms:+.1f}"
            measured_increase = "-" if p.measured_increase_ms is None else f"{p.measured_increase_ms:.1f}"
            ok = ("L" if p.latency_ok() else "l") + ("T" if p.throughput_ok() else "t") + \
                 ("G" if p.truth_grade == p.measured_grade else "g")
            bulk = f"{p.bulk_increase_ms:.1f}"
            if len(p.bulk_increases_ms) > 1:
                bulk = f"{min(p.bulk_increases_ms):.0f}..{max(p.bulk_increases_ms):.0f}"
                ok += " " + ("R" if p.within_reference_range() else "r") + \
                    ("9" if p.throughput_reaches() else "-") + ("g" if not p.grade_of_a_reference_run() else "G")
            lines.append(f"{report.link.name:<15} {report.client:<8} {p.phase:<13} {p.truth_increase_ms:9.1f} {measured_increase:>9} "
                         f"{error:>7} {bulk:>13} {goodput:>16} {measured:>16} "
                         f"{p.truth_grade + '/' + str(p.measured_grade):>10} {ok}")
        lines.append(f"{report.link.name:<15} {report.client:<8} {'overall':<13} idle {report.idle_ms:.1f} ms; "
                     f"grade truth {report.overall_truth}, test {report.overall_measured}")
    lines.append("ok: L/l latency within max(5 ms, 10%) of ping in the same phase; "
                 "T/t throughput within 10% of iperf3 -P 4; G/g grade equal")
    lines.append("    rows with several reference runs also: R/r rise within their range widened by max(5 ms, 10%); "
                 "9/- throughput at least 90% of their median goodput; G/g grade of one of them")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedule", choices=("standard", "short"), default="standard")
    parser.add_argument("--clients", default=",".join(CLIENTS), help=f"comma-separated, of: {', '.join(CLIENTS)}")
    parser.add_argument("--only", help="run only scenarios whose name contains this")
    parser.add_argument("--household", action="store_true", help="also run the household test (CLI) on each link")
    options = parser.parse_args()
    reports = []
    clients = tuple(options.clients.split(","))
    for link in (*SCENARIOS, *GIGABIT):
        if options.only and options.only not in link.name:
            continue
        runs = REFERENCE_RUNS if link in GIGABIT else 1
        measured = measure_scenario(link, options.schedule, clients, runs)
        reports.extend(measured)
        print(format_report(measured), flush=True)
        if options.household and link not in GIGABIT:
            print(format_household(link, measure_household(link, options.schedule)), flush=True)
    print()
    print(format_report(reports))


if __name__ == "__main__":
    main()
