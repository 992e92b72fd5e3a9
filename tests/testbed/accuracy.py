"""Does the test measure what the link does?  Run it through an emulated link and compare.

    .venv/bin/python tests/testbed/accuracy.py [--schedule standard|short] [--clients cli,chromium,firefox]
        [--only NAME] [--tests single_user,household]

For each scenario (rate and FIFO depth per direction) this builds the
namespaces, starts the real daemon in the server namespace, and measures:

* ground truth for the probe: ping every 100 ms from the client namespace
  during the test, split by the test's own phase times;
* ground truth for the load: ping under four bulk iperf3 flows in each
  direction and both at once (steady state), and iperf3's goodput;
* the test: the CLI client, and the page in Chromium and in Firefox, inside
  the client namespace (browsers driven bare: browser_client.py);
* the household (``--tests household``, its own links): ping and irtt at a
  game's 60 Hz through the same link in the same window, against the game
  and the call; streaming against the share of the line left to it.

On gigabit links the reference runs several times, and each client is
judged against their range.  With a deep FIFO it also disagrees with itself
within a run: four cubic flows fill 100 ms of buffer in a sawtooth slower
than a phase, so a phase-long median depends on where in the sawtooth it
falls.  There each run is longer, and the range is that of ping's median
over every phase-long window of every run (``WINDOWED_REFERENCE``).

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
from groundtruth import (BulkReference, IrttRecorder, PingRecorder, iperf3_reference, median_between,  # noqa: E402
                         rtts_between, udp_loss_percent)
from browser_client import run_page_test, run_reference_page  # noqa: E402
from netlab import SERVER_ADDRESS, Link, Testbed, run  # noqa: E402

from lqos.measure import stats  # noqa: E402
from lqos.measure.grading import grade_for_increase, worst_grade  # noqa: E402
from lqos.sessions import SCHEDULES  # noqa: E402
from lqos.plugins.lqos_household import gaming, streaming, updates, video_call  # noqa: E402

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
# The cable row's reference runs last this long, each yielding ping's median over every window as
# long as the phase it stands for (1 s apart): four cubic flows fill its 12.5 MB FIFO in a sawtooth
# slower than a phase, so where a phase falls in it moves its median.  One 8 s median per run read
# 41..56 ms in three runs and 79..91 in the next three (then mostly the testbed's own doing: the
# delay line was the bottleneck until tbf's bucket grew, netlab.py).  Since, the windows of three
# 25 s runs spanned 91..98 ms for the download and 66..100 for both directions (5 s windows).
WINDOWED_REFERENCE = {GIGABIT_CABLE: 25.0}
# iperf3's runs beside the short schedule (`make test`) are shorter than
# beside the standard one: 3 s of steady state after 2 s, where the links
# below 100 Mbit/s and the fibre one are full within a second.
REFERENCE_TIMING = {"short": {"seconds": 5.0, "settle": 2.0, "download_lead": 2.5}}
# The household's rows (issue 15): a well-managed line with shallow FIFOs, a
# middle one, and deep FIFOs.
HOUSEHOLD_SCENARIOS = (
    Link("50/10 30/15 kB", 50, 10, 30_000, 15_000, rtt_ms=10),
    Link.with_queue_delay("50/10 shallow 8 ms", 50, 10, 8),
    Link.with_queue_delay("50/10 middle 60 ms", 50, 10, 60),
    Link.with_queue_delay("20/5 deep", 20, 5, 250),
    Link.with_queue_delay("10/2 deep", 10, 2, 300),
)
# The load workers at nice 0, as iperf3's server runs.  A server's nice 10 ranks
# them below its own probe and API; here the server also shares two cores with
# the customer's browser, which no real server does, and at nice 10 a browser
# downloading at a gigabit starved them: their sockets went app-limited (a few
# hundred kB in flight against cwnds of megabytes, `ss -ti`), the cable row's
# 12.5 MB FIFO filled to +22-37 ms where four iperf3 flows fill it to +75-105,
# and the page read A at 853-903 Mbit/s where the line is C.  At nice 0 the page
# read 944-948 Mbit/s, and +33 and +84 ms in two runs (ping +33 and +85: the
# deep FIFO's sawtooth, as iperf3's own runs show).
DAEMON_CONFIG = "max_concurrent_tests_per_ip=100\nmax_tests_per_hour_per_ip=10000\nload_worker_nice=0\n"


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
    # Ping's rise over each phase-long window of every reference run, where the runs were windowed.
    bulk_window_increases_ms: tuple[float, ...] = ()

    @property
    def bulk_increase_ms(self) -> float | None:
        """Ping's median rise under iperf3 -P 4; None where iperf3 was not run in this phase's direction."""
        return statistics.median(self.bulk_increases_ms) if self.bulk_increases_ms else None

    @property
    def truth_goodput_mbit(self) -> dict[str, float]:
        return {d: statistics.median(values) for d, values in self.bulk_goodputs_mbit.items()}

    @property
    def reference_rises_ms(self) -> tuple[float, ...]:
        """What the reference says a phase could read: its windows' rises where it has them, else its runs'."""
        return self.bulk_window_increases_ms or self.bulk_increases_ms

    def within_reference_range(self) -> bool:
        """The rise lies within the reference's range, widened by max(5 ms, 10%) at each end."""
        if self.measured_increase_ms is None:
            return False
        low, high = min(self.reference_rises_ms), max(self.reference_rises_ms)
        return (low - max(5.0, 0.10 * abs(low)) <= self.measured_increase_ms
                <= high + max(5.0, 0.10 * abs(high)))

    def grade_of_a_reference_run(self) -> bool:
        """The grade is that of a reference run (of one of its windows, where it has them)."""
        return self.measured_grade in {grade_for_increase(rise) for rise in self.reference_rises_ms}

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
    # The reference page's Mbit/s per direction, in the same browser on the same link, per phase it was
    # run for: the run of median total among as many runs as iperf3's (median_run).
    reference_page_mbit: dict[str, dict[str, float]] = field(default_factory=dict)

    def phase(self, name: str) -> PhaseComparison:
        return next(p for p in self.phases if p.phase == name)

    def short_of_iperf3(self, share: float) -> list[str]:
        """The phases whose throughput fell under *share* of iperf3's in a direction iperf3 was run in."""
        return [p.phase for p in self.phases if p.bulk_goodputs_mbit and not p.throughput_reaches(share)]

    def reaches_reference_page(self, phase: str, share: float = 0.95) -> bool | None:
        """The phase carried at least *share* of what the reference page carried; None where it was not run.

        Both directions at once are judged on their sum: on two cores the
        browser's network thread is the ceiling, and how a browser splits it
        between directions is the browser's (Chromium's reference page on the
        fibre row carried 121 down and 723 up with six streams each way, 540
        and 394 with one upload stream: 844 and 934 in all).
        """
        reference = self.reference_page_mbit.get(phase)
        if reference is None:
            return None
        measured = self.phase(phase).measured_mbit
        if any(measured.get(d) is None for d in reference):
            return False
        return sum(measured[d] for d in reference) >= share * sum(reference.values())


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """Of several reference-page runs (Mbit/s per direction), the one whose total is the median.

    A single 5 s run of Chromium's reference page on the fibre row read
    869 to 948 Mbit/s from one run to the next, as far from the median as the
    95% bound itself; the page is judged against the middle of several, as
    the clients' latency is against several iperf3 runs.  The run is kept
    whole, so both directions at once come from one run.
    """
    by_total = sorted(runs, key=lambda run: sum(run.values()))
    return by_total[(len(by_total) - 1) // 2]


def start_daemon_in(bed: Testbed, directory: Path) -> subprocess.Popen:
    return wait_for_daemon(bed, directory, spawn_daemon_in(bed, directory))


def spawn_daemon_in(bed: Testbed, directory: Path, extra_config: str = "") -> subprocess.Popen:
    """The daemon in the server namespace, started; ``wait_for_daemon`` waits until it is up."""
    config = directory / "lqos_test.conf"
    config.write_text(DAEMON_CONFIG + extra_config)
    log = open(directory / "twistd.log", "wb")
    return bed.popen(bed.server, [str(TWISTD), "--nodaemon", "--pidfile=", "lqos-bufferbloat",
                                  "--config", str(config), "--data-dir", str(directory / "var")],
                     cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def wait_for_daemon(bed: Testbed, directory: Path, process: subprocess.Popen, url: str = SERVER_URL,
                    curl_options: str = "") -> subprocess.Popen:
    healthy = wait_until(
        lambda: run(f"curl -s {curl_options} -o /dev/null -w %{{http_code}} {url}/api/health", bed.client,
                    check=False).stdout == "200",
        timeout=60, interval=0.25)
    if not healthy:
        process.terminate()
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
        runs = [run[REFERENCE_OF[phase]] for run in references if REFERENCE_OF[phase] in run]
        truth_increase = truth_phase - truth_baseline
        report.phases.append(PhaseComparison(
            phase=phase,
            truth_increase_ms=truth_increase,
            measured_increase_ms=measured["latency_increase_ms"],
            bulk_increases_ms=tuple(run.ping_p50_ms - idle_ms for run in runs),
            bulk_window_increases_ms=tuple(p50 - idle_ms for run in runs for p50 in run.window_p50s_ms),
            bulk_goodputs_mbit={d: tuple(run.goodput_mbit[d] for run in runs) for d in DIRECTIONS_OF[phase]} if runs else {},
            measured_mbit={d: measured["throughput_mbps"][RESULT_KEYS[d]]["median"] for d in DIRECTIONS_OF[phase]},
            truth_grade=grade_for_increase(truth_increase),
            measured_grade=measured["grade"],
        ))
    report.overall_truth = worst_grade(p.truth_grade for p in report.phases)
    report.overall_measured = result["overall"]["grade"]
    return report


def reference_timing(link: Link, schedule: str, direction: str) -> dict[str, float]:
    """iperf3_reference's timing for one direction on *link*: the schedule's, or windowed over runs of
    ``WINDOWED_REFERENCE[link]`` seconds, each window as long as the phase that direction stands for."""
    if link not in WINDOWED_REFERENCE:
        return REFERENCE_TIMING.get(schedule, {})
    phase = next(name for name, loaded in REFERENCE_OF.items() if loaded == direction)
    seconds = next(p.seconds for p in SCHEDULES["single_user"][schedule] if p.name == phase)
    return {"seconds": WINDOWED_REFERENCE[link], "window_seconds": seconds}


def measure_scenario(link: Link, schedule: str = "short", clients: tuple[str, ...] = ("cli",),
                     reference_runs: int = 1, reference_page_under: float | None = None,
                     reference_directions: tuple[str, ...] = ("down", "up", "both")) -> list[ScenarioReport]:
    """One link: its ground truth (*reference_runs* times, iperf3 in *reference_directions*, windowed
    on the links of ``WINDOWED_REFERENCE``), then a test by each client, one after the other.

    With *reference_page_under*, a browser whose download or upload phase
    carried less than that share of iperf3's goodput then runs the reference
    page in the directions of each such phase, on the same link (``ScenarioReport.reference_page_mbit``).
    """
    directory = Path(tempfile.mkdtemp(prefix="lqos-accuracy-"))
    try:
        with Testbed(link) as bed:
            # The daemon starts while ping reads the idle line: its start-up is CPU, not
            # traffic, and ping times its echoes in the kernel.
            daemon = spawn_daemon_in(bed, directory)
            try:
                with PingRecorder(bed) as ping:
                    time.sleep(3)
                    idle = ping.samples()
                idle_ms = sorted(s.rtt_ms for s in idle)[len(idle) // 2]
                wait_for_daemon(bed, directory, daemon)
                references = [{direction: iperf3_reference(bed, direction, **reference_timing(link, schedule, direction))
                               for direction in reference_directions} for _ in range(reference_runs)]
                reports = []
                for client in clients:
                    with PingRecorder(bed) as ping:
                        record, timeline = (run_cli(bed, directory, schedule) if client == "cli"
                                            else run_page_test(bed, SERVER_URL, schedule, client))
                        pings = ping.samples()
                    report = compare(link, record, timeline, pings, references, idle_ms, client)
                    if client != "cli" and reference_page_under is not None:
                        for phase in report.short_of_iperf3(reference_page_under):
                            report.reference_page_mbit[phase] = median_run([
                                run_reference_page(bed, SERVER_URL, client, REFERENCE_OF[phase])
                                for _ in range(reference_runs)])
                    reports.append(report)
                return reports
            finally:
                daemon.terminate()
                daemon.wait(timeout=10)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class MemberComparison:
    """A real-time member (gaming, video call) against ping and irtt in the same load window.

    Both the member and the truth use the member's statistic: the p95 RTT in
    the load over the median in the baseline.  Its loss is set against
    irtt's datagrams lost or later than the member's deadline, and its grade
    against the grade the member's own rule gives ping's rise and irtt's loss.
    """

    name: str
    measured_rise_ms: float | None
    ping_rise_ms: float
    udp_rise_ms: float | None
    measured_loss: float | None
    udp_loss: float | None
    measured_grade: str | None
    truth_grade: str

    def latency_ok(self) -> bool:
        return (self.measured_rise_ms is not None
                and abs(self.measured_rise_ms - self.ping_rise_ms) <= max(5.0, 0.1 * abs(self.ping_rise_ms)))

    def loss_ok(self) -> bool:
        """Within a percentage point of irtt's, or a quarter of it where irtt lost more."""
        if self.measured_loss is None or self.udp_loss is None:
            return False
        return abs(self.measured_loss - self.udp_loss) <= max(1.0, 0.25 * self.udp_loss)

    def grade_ok(self) -> bool:
        return self.measured_grade == self.truth_grade


@dataclass
class HouseholdReport:
    link: Link
    client: str
    record: dict
    members: list[MemberComparison]

    @property
    def result(self) -> dict:
        return self.record["result"]

    def streaming_share_mbps(self) -> float:
        """What a fair link leaves streaming: the downlink less the call and the game, halved with updates."""
        return (self.link.down_mbit - gaming.traffic.down_mbps - video_call.traffic.down_mbps) / 2

    def streaming_expectation(self) -> bool | None:
        """True: it must not rebuffer; False: it must; None: no fair share can say.

        The share is the downlink's: where the members' own uploads come near
        the uplink's rate, the downloads' ACKs wait in a full uplink queue and
        what the downlink leaves streaming depends on that, not on its rate
        (20/5 deep: the household received 15-16 of 20 Mbit/s).
        """
        share, bitrate = self.streaming_share_mbps(), streaming.traffic.average_down_mbps
        uploads = sum(persona.traffic.up_mbps for persona in (streaming, gaming, video_call, updates))
        if share <= 0.8 * bitrate:
            return False
        if share >= 1.25 * bitrate and uploads <= 0.8 * self.link.up_mbit:
            return True
        return None

    def streaming_ok(self) -> bool:
        expected = self.streaming_expectation()
        segments = self.result["personas"]["streaming"]["segments"]
        if expected is None:
            return True
        return segments is not None and (segments["late"] == 0) == expected


def _p95_rise(samples: list, spans: dict, deadline_ms: float) -> float | None:
    """The member's statistic on another tool's samples: p95 in the load over the baseline median,
    of the replies within the member's deadline (a later one is a loss to the member)."""
    baseline = [rtt for rtt in rtts_between(samples, *spans["baseline"]) if rtt <= deadline_ms]
    load = [rtt for rtt in rtts_between(samples, *spans["load"]) if rtt <= deadline_ms]
    return stats.percentile(load, 95) - stats.median(baseline) if baseline and load else None


def compare_member(persona, score: dict, pings: list, udp: list, spans: dict) -> MemberComparison:
    """The truth grade is ping's rise through the member's thresholds, or F where irtt lost more
    than twice the member's loss allowance (then too few replies are left for a rise to mean much)."""
    ping_rise = _p95_rise(pings, spans, persona.deadline_ms)
    udp_loss = udp_loss_percent(udp, *spans["load"], persona.deadline_ms)
    truth = grade_for_increase(ping_rise, persona.scoring.latency_thresholds)
    if udp_loss is not None and udp_loss > 2 * persona.scoring.max_loss_percent:
        truth = "F"
    return MemberComparison(persona.name, score["latency"]["increase_p95_ms"], ping_rise,
                            _p95_rise(udp, spans, persona.deadline_ms), score["latency"]["loss_percent"],
                            udp_loss, score["grade"], truth)


def measure_household(link: Link, schedule: str = "short", client: str = "cli") -> HouseholdReport:
    """The household test through *link* by the CLI or the page, with ping and irtt in the same window."""
    directory = Path(tempfile.mkdtemp(prefix="lqos-household-"))
    try:
        with Testbed(link) as bed:
            daemon = start_daemon_in(bed, directory)
            try:
                with PingRecorder(bed) as ping, IrttRecorder(bed) as irtt:
                    time.sleep(1)
                    record, timeline = run_household_client(bed, directory, schedule, client)
                    pings, udp = ping.samples(), irtt.samples()
            finally:
                daemon.terminate()
                daemon.wait(timeout=10)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    spans = phase_spans(timeline)
    members = [compare_member(persona, record["result"]["personas"][persona.name], pings, udp, spans)
               for persona in (gaming, video_call)]
    return HouseholdReport(link, client, record, members)


def run_household_client(bed: Testbed, directory: Path, schedule: str, client: str) -> tuple[dict, dict]:
    if client != "cli":
        return run_page_test(bed, SERVER_URL, schedule, client, mode="virtual_household")
    timeline_path = directory / "timeline.json"
    argv = [str(TWISTD.parent / "lqos-bufferbloat-test"), SERVER_URL, "--mode", "household", "--json",
            "--timeline", str(timeline_path)]
    if schedule == "short":
        argv.append("--short")
    completed = subprocess.run(["ip", "netns", "exec", bed.client, *argv], capture_output=True, text=True, timeout=180)
    if completed.returncode != 0:
        raise RuntimeError(f"the household CLI failed: {completed.stderr.strip()}")
    return json.loads(completed.stdout), json.loads(timeline_path.read_text())


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def format_household(reports: list[HouseholdReport]) -> str:
    header = (f"{'scenario':<19} {'client':<8} {'member':<9} {'ping p95 +ms':>12} {'irtt p95 +ms':>12} "
              f"{'test p95 +ms':>12} {'irtt loss':>9} {'test loss':>9} {'grades t/m':>10} ok")
    lines = [header, "-" * len(header)]
    for report in reports:
        for m in report.members:
            ok = ("L" if m.latency_ok() else "l") + ("P" if m.loss_ok() else "p") + ("G" if m.grade_ok() else "g")
            lines.append(f"{report.link.name:<19} {report.client:<8} {m.name:<9} {_ms(m.ping_rise_ms):>12} "
                         f"{_ms(m.udp_rise_ms):>12} {_ms(m.measured_rise_ms):>12} {_percent(m.udp_loss):>9} "
                         f"{_percent(m.measured_loss):>9} {m.truth_grade + '/' + str(m.measured_grade):>10} {ok}")
        score = report.result["personas"]["streaming"]
        segments = score["segments"] or {"late": "-", "count": "-"}
        expected = {True: "none", False: "some", None: "either"}[report.streaming_expectation()]
        lines.append(f"{report.link.name:<19} {report.client:<8} {'streaming':<9} fair share "
                     f"{report.streaming_share_mbps():.1f} of 5 Mbit/s: {segments['late']} of {segments['count']} "
                     f"segments late (expected {expected}), grade {score['grade']} "
                     f"{'S' if report.streaming_ok() else 's'}")
        updates = report.result["personas"]["updates"]
        overall = report.result["overall"]
        lines.append(f"{report.link.name:<19} {report.client:<8} {'updates':<9} "
                     f"{updates['reason'].removeprefix('updates: ')}")
        lines.append(f"{report.link.name:<19} {report.client:<8} household grade {overall['grade']}: "
                     f"{overall['reason']}")
    lines.append("ok: L/l p95 rise within max(5 ms, 10%) of ping's; P/p loss within 1 point (or 25%) of irtt's "
                 "past the member's deadline; G/g grade equal to that of ping's rise (F past twice the loss allowance in irtt); "
                 "S/s streaming rebuffers exactly when its fair share is under its bitrate")
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
            throughput_ok = "-" if not p.bulk_goodputs_mbit else "T" if p.throughput_ok() else "t"
            ok = ("L" if p.latency_ok() else "l") + throughput_ok + ("G" if p.truth_grade == p.measured_grade else "g")
            bulk = "-" if p.bulk_increase_ms is None else f"{p.bulk_increase_ms:.1f}"
            if len(p.reference_rises_ms) > 1:
                bulk = f"{min(p.reference_rises_ms):.0f}..{max(p.reference_rises_ms):.0f}"
                ok += " " + ("R" if p.within_reference_range() else "r") + \
                    ("9" if p.throughput_reaches() else "-") + ("g" if not p.grade_of_a_reference_run() else "G")
            lines.append(f"{report.link.name:<15} {report.client:<8} {p.phase:<13} {p.truth_increase_ms:9.1f} {measured_increase:>9} "
                         f"{error:>7} {bulk:>13} {goodput:>16} {measured:>16} "
                         f"{p.truth_grade + '/' + str(p.measured_grade):>10} {ok}")
        lines.append(f"{report.link.name:<15} {report.client:<8} {'overall':<13} idle {report.idle_ms:.1f} ms; "
                     f"grade truth {report.overall_truth}, test {report.overall_measured}")
        for phase, reference in report.reference_page_mbit.items():
            measured = report.phase(phase).measured_mbit
            reached = "/".join("-" if measured.get(d) is None else f"{measured[d] / mbit:.0%}"
                               for d, mbit in reference.items())
            lines.append(f"{report.link.name:<15} {report.client:<8} reference page {phase}: "
                         f"{'/'.join(f'{mbit:.1f}' for mbit in reference.values())} Mbit/s, the page reached "
                         f"{reached} of it ({'95' if report.reaches_reference_page(phase) else '--'})")
    if any(report.reference_page_mbit for report in reports):
        lines.append("reference page: 95/-- the page carried at least 95% of the reference page, its run of median "
                     "total among as many as iperf3's (both directions at once: of their sum)")
    lines.append("ok: L/l latency within max(5 ms, 10%) of ping in the same phase; "
                 "T/t throughput within 10% of iperf3 -P 4 (-: iperf3 not run in that direction); G/g grade equal")
    lines.append("    rows with several reference runs also: R/r rise within their range widened by max(5 ms, 10%); "
                 "9/- throughput at least 90% of their median goodput; G/g grade of one of them")
    if any(p.bulk_window_increases_ms for report in reports for p in report.phases):
        lines.append(f"    ({', '.join(link.name for link in WINDOWED_REFERENCE)}: the range and grades are those of "
                     "ping's median over every phase-long window of every reference run, 1 s apart)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedule", choices=("standard", "short"), default="standard")
    parser.add_argument("--clients", default=",".join(CLIENTS), help=f"comma-separated, of: {', '.join(CLIENTS)}")
    parser.add_argument("--only", help="run only scenarios whose name contains this")
    parser.add_argument("--tests", default="single_user,household",
                        help="comma-separated, of: single_user (the matrix), household (its own links)")
    options = parser.parse_args()
    clients = tuple(options.clients.split(","))
    tests = set(options.tests.split(","))
    reports, households = [], []
    for link in (*SCENARIOS, *GIGABIT) if "single_user" in tests else ():
        if options.only and options.only not in link.name:
            continue
        runs = REFERENCE_RUNS if link in GIGABIT else 1
        # On a gigabit row a browser under 90% of iperf3 also runs the reference page (issue 19's other bound).
        measured = measure_scenario(link, options.schedule, clients, runs,
                                    reference_page_under=0.90 if link in GIGABIT else None)
        reports.extend(measured)
        print(format_report(measured), flush=True)
    for link in HOUSEHOLD_SCENARIOS if "household" in tests else ():
        if options.only and options.only not in link.name:
            continue
        for client in clients:
            households.append(measure_household(link, options.schedule, client))
            print(format_household(households[-1:]), flush=True)
    print()
    if reports:
        print(format_report(reports))
    if households:
        print(format_household(households))


if __name__ == "__main__":
    main()
