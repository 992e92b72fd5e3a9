"""Which latency statistic does a link hold steady?  The same link and client, several times over.

    .venv/bin/python tests/testbed/steadiness.py [--only NAME] [--client cli|chromium|firefox]
        [--runs N] [--schedule standard|short]

A grade is only as repeatable as the statistic under it.  On a deep FIFO at
gigabit rates, four cubic flows fill the buffer in a slow sawtooth, and
the median of a 10 s phase lands anywhere on it.  This runs one link's
reference (ping under ``iperf3 -P 4``) and one client's test *runs* times
each, and prints, for every loaded phase, the rise at p50, p90 and p95 of
the test, of ping in the test's own phase, and of ping under iperf3: each
run, then the spread (max - min) and the grades each statistic would give
through the grade table.  The grade stays on p50 (the LibreQoS test's
statistic) unless these figures show another holding steadier.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from accuracy import (CLIENTS, GIGABIT, HOUSEHOLD_SCENARIOS, LOADED, REFERENCE_OF, SCENARIOS, SERVER_URL,  # noqa: E402
                      phase_spans, run_cli, start_daemon_in)
from browser_client import run_page_test  # noqa: E402
from groundtruth import PingRecorder, iperf3_reference, rtts_between  # noqa: E402
from netlab import Testbed  # noqa: E402

from lqos.measure import stats  # noqa: E402
from lqos.measure.grading import grade_for_increase  # noqa: E402

STATISTICS = {"p50": 50, "p90": 90, "p95": 95}
RESULT_FIELDS = {"p50": "p50_ms", "p90": "p90_ms", "p95": "p95_ms"}


def client_rises(link, client: str, runs: int, schedule: str) -> tuple[list[dict], list[dict]]:
    """*runs* tests by *client*: per run and phase, the test's rise and ping's in that phase, by statistic."""
    directory = Path(tempfile.mkdtemp(prefix="lqos-steadiness-"))
    try:
        with Testbed(link) as bed:
            references = [reference_rises(bed) for _ in range(runs)]
            daemon = start_daemon_in(bed, directory)
            try:
                return [one_test(bed, directory, client, schedule) for _ in range(runs)], references
            finally:
                daemon.terminate()
                daemon.wait(timeout=10)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def reference_rises(bed) -> dict:
    """Ping's rise under iperf3 -P 4 per loaded phase: p50 and p95 are what the reference records."""
    with PingRecorder(bed) as ping:
        time.sleep(3)
        idle = ping.samples()
    idle_ms = stats.median([s.rtt_ms for s in idle if s.rtt_ms is not None])
    rises = {}
    for phase in LOADED:
        run = iperf3_reference(bed, REFERENCE_OF[phase])
        rises[phase] = {"p50": run.ping_p50_ms - idle_ms, "p95": run.ping_p95_ms - idle_ms}
    return rises


def one_test(bed, directory: Path, client: str, schedule: str) -> dict:
    with PingRecorder(bed) as ping:
        record, timeline = (run_cli(bed, directory, schedule) if client == "cli"
                            else run_page_test(bed, SERVER_URL, schedule, client))
        pings = ping.samples()
    result = record["result"]
    spans = phase_spans(timeline)
    ping_baseline = stats.median(rtts_between(pings, *spans["baseline"]))
    test_baseline = result["baseline"]["median_ms"]
    rises = {}
    for phase in LOADED:
        in_phase = rtts_between(pings, *spans[phase])
        measured = result["phases"][phase]
        rises[phase] = {
            "test": {name: (None if measured[field] is None else measured[field] - test_baseline)
                     for name, field in RESULT_FIELDS.items()},
            "ping": {name: stats.percentile(in_phase, q) - ping_baseline for name, q in STATISTICS.items()},
        }
    return rises


def spread_line(label: str, values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return f"  {label:<22} no figures"
    grades = "/".join(sorted({grade_for_increase(v) for v in known}, key="A+ABCDF".index))
    each = " ".join(f"{v:7.1f}" for v in known)
    return (f"  {label:<22} {each}   spread {max(known) - min(known):6.1f} ms"
            f"  sd {statistics.pstdev(known):5.1f}  grades {grades}")


def report(link_name: str, client: str, tests: list[dict], references: list[dict]) -> str:
    lines = [f"{link_name}, {client}, {len(tests)} runs: rise over the baseline (ms) per run"]
    for phase in LOADED:
        lines.append(f" {phase}")
        for name in STATISTICS:
            lines.append(spread_line(f"test {name}", [run[phase]["test"][name] for run in tests]))
            lines.append(spread_line(f"ping in the phase {name}", [run[phase]["ping"][name] for run in tests]))
        for name in ("p50", "p95"):
            lines.append(spread_line(f"ping under iperf3 {name}", [run[phase][name] for run in references]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="1000/100 cable", help="the link whose name contains this")
    parser.add_argument("--client", choices=CLIENTS, default="cli")
    parser.add_argument("--runs", type=int, default=5, choices=range(2, 21), metavar="2..20")
    parser.add_argument("--schedule", choices=("standard", "short"), default="standard")
    options = parser.parse_args()
    links = [link for link in (*SCENARIOS, *GIGABIT, *HOUSEHOLD_SCENARIOS) if options.only in link.name]
    if not links:
        parser.error(f"no link is named like {options.only!r}")
    tests, references = client_rises(links[0], options.client, options.runs, options.schedule)
    print(report(links[0].name, options.client, tests, references))


if __name__ == "__main__":
    main()
