"""How fast ``POST /api/tests`` answers: the time a customer waits after pressing Start.

    .venv/bin/python bench/api_latency.py [--requests 1000]

Starts its own daemon on loopback and sends the requests one after another
over one keep-alive connection, timing each from send to the last byte of
the answer; prints p50, p99 and max.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from daemon import start_daemon  # noqa: E402

CONFIG = "max_concurrent_tests_per_ip=1000\nmax_tests_per_hour_per_ip=100000\nmax_concurrent_tests=100000\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        daemon = start_daemon(Path(directory), config_text=CONFIG, as_deployed=True)
        try:
            connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
            timings = []
            for _ in range(options.requests):
                started = time.perf_counter()
                connection.request("POST", "/api/tests", body=b'{"mode":"single_user"}',
                                   headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                timings.append((time.perf_counter() - started) * 1000)
                assert response.status == 201, response.status
            timings.sort()
            p99 = timings[min(len(timings) - 1, round(0.99 * (len(timings) - 1)))]
            print(f"POST /api/tests: n={len(timings)} p50={statistics.median(timings):.2f} ms "
                  f"p99={p99:.2f} ms max={timings[-1]:.2f} ms")
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
