"""The networkQuality port's figures on loopback, with nghttp2's h2load as the client.

    .venv/bin/python bench/nq.py [--seconds 8] [--upload-gib 1]

Starts the daemon with TLS and one nq worker (``load_workers=1``), then:

- one HTTP/2 connection's large download for SECONDS (the server resets it
  at ``nq_bulk_seconds``): Gbit/s, the nq worker's CPU-seconds, Gbit/s per
  server core;
- one connection's upload of UPLOAD_GIB GiB (``h2load -d`` of a sparse
  file), answered 200 within SECONDS: the same figures;
- four connections each carrying a large download, with a self probe
  (``GET /nq/small``) every 100 ms on each: the probes' p50 and p99, and the
  bytes the downloads carried meanwhile.

Run it on an otherwise idle machine: h2load and the worker share its cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests")]

from daemon import REPO, start_daemon  # noqa: E402

from lqos.measure import stats  # noqa: E402

TICKS = 100  # os.sysconf("SC_CLK_TCK") on Linux


def worker_pid(daemon) -> int:
    status, _, body = daemon.get("/api/health")
    health = json.loads(body)
    return next(child["pid"] for child in health["children"] if child["role"].startswith("nq-"))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def h2load(*args: str) -> tuple[str, float]:
    began = time.monotonic()
    run = subprocess.run(["h2load", *args], capture_output=True, text=True, timeout=300)
    return run.stdout, time.monotonic() - began


def traffic_bytes(output: str) -> int:
    line = next(line for line in output.splitlines() if line.startswith("traffic:"))
    return int(line.split("(")[1].split(")")[0])


def measured(label: str, pid: int, carried: int, seconds: float, cpu: float) -> str:
    gbps = carried * 8 / seconds / 1e9
    return (f"{label:<44} {gbps:6.2f} Gbit/s, worker {cpu:5.2f} CPU-s over {seconds:4.1f} s: "
            f"{gbps / (cpu / seconds):5.2f} Gbit/s per server core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--upload-gib", type=float, default=1.0)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lqos-bench-nq-"))
    subprocess.run([str(REPO / "etc" / "create_test_certificates.sh"), str(work / "tls")], check=True, capture_output=True)
    config = (f"virtual_household=off\nload_workers=1\nnq_bulk_seconds={options.seconds:g}\n"
              "max_concurrent_tests_per_ip=100\n")
    daemon = start_daemon(work / "daemon", config_text=config, as_deployed=True,
                          tls=(str(work / "tls" / "cert.pem"), str(work / "tls" / "key.pem")))
    try:
        pid = worker_pid(daemon)
        url = f"https://127.0.0.1:{daemon.child_ports['nq']}"

        before = cpu_seconds(pid)
        output, took = h2load("-c1", "-n1", f"{url}/nq/large")
        print(measured("one connection, large download:", pid, traffic_bytes(output), took, cpu_seconds(pid) - before))

        body = work / "upload.bin"
        with open(body, "wb") as handle:
            handle.truncate(int(options.upload_gib * 1024 ** 3))
        before = cpu_seconds(pid)
        log = work / "upload.tsv"
        output, took = h2load("-c1", "-n1", "-d", str(body), f"--log-file={log}", f"{url}/nq/upload")
        label = f"one connection, upload of {options.upload_gib:g} GiB:"
        if log.read_text().split("\t")[1] == "200":
            print(measured(label, pid, body.stat().st_size, took, cpu_seconds(pid) - before))
        else:
            print(f"{label:<44} reset at nq_bulk_seconds: ask for fewer GiB or more --seconds")

        script = work / "timing.txt"
        probes = int((options.seconds - 1.0) / 0.1)
        script.write_text(f"0\t{url}/nq/large\n" + "".join(f"{500 + 100 * i}\t{url}/nq/small\n" for i in range(probes)))
        log = work / "requests.tsv"
        output, took = h2load("-c4", "-m100", f"--timing-script-file={script}", f"--log-file={log}")
        rows = [line.split("\t") for line in log.read_text().splitlines()]
        answered = [int(row[2]) / 1000 for row in rows if row[1] == "200" and int(row[2]) < 1_000_000]
        print(f"self probes on 4 connections each carrying a large download: {len(answered)} answered of "
              f"{4 * probes}, p50 {stats.percentile(answered, 50):.2f} ms, p99 {stats.percentile(answered, 99):.2f} ms; "
              f"the downloads carried {traffic_bytes(output) * 8 / took / 1e9:.2f} Gbit/s meanwhile")
    finally:
        daemon.stop()


if __name__ == "__main__":
    main()
