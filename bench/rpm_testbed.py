"""RPM next to the grade: the CLI's test and ``--rpm`` through the same emulated link (root).

    .venv/bin/python bench/rpm_testbed.py [--only NAME]

For the accuracy testbed's 50/10 Mbit/s links (a 300 ms FIFO, "deep", and a
5 ms one, "shallow"; ``tests/testbed/``), it starts the daemon with TLS in
the server namespace (networkQuality port included), then from the client
namespace runs the single-user test (standard schedule) and then
``lqos-bufferbloat-test --rpm``, and prints per link: the grade and the
latency rise of each loaded phase, ping's rise beside each (its median in
the phase over the idle median), and the RPM figures with their round trips.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent / "tests" / "testbed")]

from accuracy import SCENARIOS, phase_spans, spawn_daemon_in, wait_for_daemon  # noqa: E402
from daemon import TWISTD  # noqa: E402
from groundtruth import PingRecorder, median_between  # noqa: E402
from netlab import SERVER_ADDRESS, Testbed  # noqa: E402

LINKS = ("50/10 deep", "50/10 shallow")
CLIENT = str(TWISTD.parent / "lqos-bufferbloat-test")
MAIN_URL = f"https://{SERVER_ADDRESS}:8000"
NQ_URL = f"https://{SERVER_ADDRESS}:8443/.well-known/nq"


def certificate(directory: Path) -> tuple[str, str]:
    """A self-signed pair naming the server namespace's address."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", f"/CN={SERVER_ADDRESS}", "-addext", f"subjectAltName=IP:{SERVER_ADDRESS}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


def start_daemon(bed: Testbed, directory: Path, cert: str, key: str) -> subprocess.Popen:
    """The accuracy testbed's daemon, with TLS (and so the networkQuality port) and no household."""
    daemon = spawn_daemon_in(bed, directory, f"tls_cert={cert}\ntls_key={key}\nvirtual_household=off\n")
    return wait_for_daemon(bed, directory, daemon, url=MAIN_URL, curl_options=f"--cacert {cert}")


def client(bed: Testbed, *argv: str) -> dict:
    completed = subprocess.run(["ip", "netns", "exec", bed.client, CLIENT, *argv], capture_output=True, text=True,
                               timeout=180)
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr)
    return json.loads(completed.stdout)


def measure(link, directory: Path) -> list[str]:
    cert, key = certificate(directory)
    with Testbed(link) as bed:
        daemon = start_daemon(bed, directory, cert, key)
        try:
            timeline_path = directory / "timeline.json"
            with PingRecorder(bed) as ping:
                record = client(bed, MAIN_URL, "--cafile", cert, "--json", "--timeline", str(timeline_path))
                pings = ping.samples()
            with PingRecorder(bed) as ping:
                rpm = client(bed, "--rpm", NQ_URL, "--cafile", cert, "--json")
                ended = time.time()
                rpm_pings = ping.samples()
        finally:
            daemon.terminate()
            daemon.wait(timeout=10)
    spans = phase_spans(json.loads(timeline_path.read_text()))
    idle, _ = median_between(pings, *spans["baseline"])
    result = record["result"]
    lines = [f"{link.name}: grade {result['overall']['grade']} (idle {idle:.1f} ms)"]
    for phase in ("download", "upload", "bidirectional"):
        rise, _ = median_between(pings, *spans[phase])
        lines.append(f"  {phase:<13} latency +{result['phases'][phase]['latency_increase_ms']:.1f} ms "
                     f"(ping +{rise - idle:.1f}), grade {result['phases'][phase]['grade']}")
    loaded, _ = median_between(rpm_pings, ended - 4, ended)
    means = rpm["trimmed_means_ms"]
    lines.append(f"  --rpm: RPM {rpm['rpm']:.0f} (foreign {rpm['foreign_rpm']:.0f}, loaded {rpm['loaded_rpm']:.0f}); "
                 f"self probes {means['http_l']:.0f} ms, new connections TCP {means['tcp_f']:.0f} / "
                 f"TLS {means['tls_f']:.0f} / HTTP {means['http_f']:.0f} ms; "
                 f"{rpm['download_mbps']:.1f}/{rpm['upload_mbps']:.1f} Mbit/s over "
                 f"{rpm['download_connections']}/{rpm['upload_connections']} connections, {rpm['intervals']} s, "
                 f"{'stable' if rpm['goodput_stable'] and rpm['responsiveness_stable'] else 'not stable'}; "
                 f"ping in its last 4 s +{loaded - idle:.1f} ms")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=LINKS)
    options = parser.parse_args()
    links = [link for link in SCENARIOS if link.name in ((options.only,) if options.only else LINKS)]
    for link in links:
        directory = Path(tempfile.mkdtemp(prefix="lqos-rpm-"))
        try:
            print("\n".join(measure(link, directory)), flush=True)
        finally:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
