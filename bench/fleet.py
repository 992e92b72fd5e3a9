"""A fleet's telemetry: stored tests per second, two servers on one PostgreSQL, and an outage.

    .venv/bin/python bench/fleet.py [--records 2000] [--tests 200] [--outage-seconds 30] [--outage-tests 50]

Starts its own PostgreSQL server (tests/postgres.py, with fsync on, as a
real one runs) and prints:

1. stored tests per second: into this server's SQLite file (one save per
   test, each its own committed transaction, as a customer's result is
   stored) and into PostgreSQL (the fleet writer's batches of 200, and one
   test per transaction), with a real result record as each row;
2. two daemons on loopback writing to that database: *--tests* short tests
   at once, split across them; how many failed, and how long until all were
   in PostgreSQL with the right server_id;
3. PostgreSQL stopped for *--outage-seconds* while *--outage-tests* tests run
   (one at a time, spread over the outage): how many were lost, how long
   after PostgreSQL came back until all were in it, and the p50/p99 of
   ``POST /api/tests`` and of the result's ``POST`` with PostgreSQL down and,
   paced the same way over as long before it, up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from daemon import free_ports, start_daemon  # noqa: E402
from postgres import Cluster  # noqa: E402
from wire import path_of, plausible_samples  # noqa: E402

from twisted.internet import defer, reactor, threads  # noqa: E402

from lqos.telemetry.fleet import FleetStore, open_and_migrate  # noqa: E402
from lqos.telemetry.store import SQLiteResultStore  # noqa: E402

CONFIG = ("max_concurrent_tests_per_ip=1000\nmax_tests_per_hour_per_ip=100000\nmax_concurrent_tests=100000\n"
          "virtual_household=off\nload_workers=1\n")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def timed_test(daemon, source_ip: str = "127.0.0.1") -> tuple[float, float, int]:
    """One short test: (ms to start it, ms to submit it, the submission's status)."""
    began = time.perf_counter()
    status, test = daemon.post_json("/api/tests", {"schedule": "short"}, source_ip=source_ip)
    started = time.perf_counter()
    assert status == 201, test
    body = json.dumps(plausible_samples(test["token"])).encode()
    status, _, _ = daemon.request("POST", path_of(test["result_url"]), body,
                                  {"Content-Type": "application/json"}, source_ip)
    return (started - began) * 1000, (time.perf_counter() - started) * 1000, status


def real_record(directory: Path) -> dict:
    """A result record as a daemon stores it, to copy as every row of the store benchmark."""
    daemon = start_daemon(directory, config_text=CONFIG, as_deployed=True)
    try:
        status, test = daemon.post_json("/api/tests", {"schedule": "short"})
        status, record = daemon.post_json(path_of(test["result_url"]), plausible_samples(test["token"]))
        assert status == 200, record
        return {**record, "client_ip": "192.0.2.1", "user_agent": "bench"}
    finally:
        daemon.stop()


def numbered(record: dict, number: int) -> dict:
    return {**record, "test_id": f"bench-{number:07d}", "share_id": f"bench-share-{number:07d}"}


@defer.inlineCallbacks
def store_rates(record: dict, count: int, directory: Path, database: str):
    """Tests per second into SQLite (one save each) and PostgreSQL (batches of 200, and one each)."""
    sqlite = SQLiteResultStore.open(str(directory), reactor, max_tests=count)
    began = time.perf_counter()
    for number in range(count):
        yield sqlite.save(numbered(record, number))
    sqlite_rate = count / (time.perf_counter() - began)
    sqlite.close()
    yield threads.deferToThread(open_and_migrate, database)
    fleet = FleetStore(database, reactor, 10 * count, 0)
    bodies = [json.dumps(numbered(record, number)) for number in range(2 * count)]
    began = time.perf_counter()
    for start in range(0, count, 200):
        yield fleet.write(bodies[start:start + 200])
    batched_rate = count / (time.perf_counter() - began)
    began = time.perf_counter()
    for body in bodies[count:]:
        yield fleet.write([body])
    single_rate = count / (time.perf_counter() - began)
    fleet.close()
    return sqlite_rate, batched_rate, single_rate


def fleet_config(database: str, server_id: str) -> str:
    return f"telemetry_database={database}\nserver_id={server_id}\n{CONFIG}"


def stored(cluster: Cluster, database: str) -> dict[str, str]:
    return dict(cluster.execute("SELECT test_id, server_id FROM tests", database.rsplit("/", 1)[1]))


def wait_for(predicate, timeout: float) -> float | None:
    """Seconds until *predicate* held (polled every 50 ms), or None after *timeout*."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if predicate():
            return time.perf_counter() - began
        time.sleep(0.05)
    return None


def two_servers(cluster: Cluster, directory: Path, tests: int) -> str:
    database = cluster.new_database()
    servers = {}
    for name in ("north", "south"):
        servers[name] = start_daemon(directory / name, fleet_config(database, name), as_deployed=True)
    try:
        jobs = [(("north", "south")[n % 2], f"127.0.2.{n % 100 + 1}") for n in range(tests)]
        began = time.perf_counter()
        with ThreadPoolExecutor(tests) as pool:
            answers = list(pool.map(lambda job: timed_test(servers[job[0]], job[1]), jobs))
        failed = sum(1 for *_, status in answers if status != 200)
        settled = wait_for(lambda: len(stored(cluster, database)) >= tests - failed, 60)
        by_server = {name: sum(1 for server in stored(cluster, database).values() if server == name)
                     for name in servers}
        total = time.perf_counter() - began
        return (f"{tests} tests at once over 2 servers: {failed} failed; all in PostgreSQL "
                f"{total:.1f} s after they began ({'not within 60 s' if settled is None else 'yes'}); "
                f"by server_id: {by_server}")
    finally:
        for daemon in servers.values():
            daemon.stop()


def paced_tests(daemon, count: int, seconds: float) -> list[tuple[float, float, int]]:
    """*count* tests one at a time, spread evenly over *seconds* (and then the rest of them waited out)."""
    began = time.perf_counter()
    timings = []
    for number in range(count):
        time.sleep(max(0.0, began + number * seconds / count - time.perf_counter()))
        timings.append(timed_test(daemon))
    time.sleep(max(0.0, began + seconds - time.perf_counter()))
    return timings


def outage(cluster: Cluster, directory: Path, seconds: float, count: int) -> list[str]:
    database = cluster.new_database()
    daemon = start_daemon(directory / "outage", fleet_config(database, "north"), as_deployed=True)
    try:
        up = paced_tests(daemon, count, seconds)
        wait_for(lambda: len(stored(cluster, database)) == count, 30)
        cluster.stop()
        down = paced_tests(daemon, count, seconds)
        cluster.start()
        back = wait_for(lambda: len(stored(cluster, database)) == 2 * count, 60)
        lost = 2 * count - len(stored(cluster, database))
    finally:
        daemon.stop()
    lines = [f"PostgreSQL stopped {seconds:g} s while {count} tests ran: "
             f"{sum(1 for *_, status in down if status != 200)} refused, {lost} lost; all in PostgreSQL "
             f"{'never (60 s)' if back is None else f'{back:.1f} s'} after it came back"]
    for label, timings in (("up", up), ("down", down)):
        starts, submits = [t[0] for t in timings], [t[1] for t in timings]
        lines.append(f"  PostgreSQL {label:<4}: POST /api/tests p50 {statistics.median(starts):.2f} ms, "
                     f"p99 {percentile(starts, 0.99):.2f} ms; result POST p50 {statistics.median(submits):.2f} ms, "
                     f"p99 {percentile(submits, 0.99):.2f} ms")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--outage-seconds", type=float, default=30.0)
    parser.add_argument("--outage-tests", type=int, default=50)
    options = parser.parse_args()
    cluster = Cluster(free_ports(1)[0], fsync=True)
    try:
        cluster.start()
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            record = real_record(directory / "template")
            size = len(json.dumps(record))
            done = threading.Event()
            rates: list = []

            def measure():
                d = store_rates(record, options.records, directory, cluster.new_database())
                d.addBoth(lambda result: (rates.append(result), done.set()))

            reactor.callWhenRunning(measure)
            threading.Thread(target=lambda: (done.wait(), reactor.callFromThread(reactor.stop)), daemon=True).start()
            reactor.run(installSignalHandlers=False)
            if not isinstance(rates[0], tuple):
                rates[0].raiseException()
            sqlite_rate, batched_rate, single_rate = rates[0]
            print(f"stored tests per second ({options.records} records of {size} bytes of JSON each):")
            print(f"  SQLite, one committed save per test (synchronous=FULL): {sqlite_rate:8.0f}")
            print(f"  PostgreSQL, batches of 200 (the fleet writer):          {batched_rate:8.0f}")
            print(f"  PostgreSQL, one test per transaction:                   {single_rate:8.0f}")
            print(two_servers(cluster, directory, options.tests))
            print("\n".join(outage(cluster, directory, options.outage_seconds, options.outage_tests)))
    finally:
        cluster.remove()


if __name__ == "__main__":
    main()
