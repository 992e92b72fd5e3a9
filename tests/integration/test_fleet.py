"""Two daemons, one PostgreSQL: every test of the fleet in one place, and nothing lost while it is away.

``bench/fleet.py`` runs the same with the issue's figures (200 tests, a
30 s outage) and prints the start and submission latencies with PostgreSQL
up and down.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from daemon import SINGLE_USER_ONLY, start_daemon, wait_until
from wire import complete_test

KEY = "fleet-support-key-0123456789"
# Long enough for the writer's retries to back off to their longest delay (1, 2, 4, then 5 s).
OUTAGE_SECONDS = 8


def fleet_config(database: str, server_id: str) -> str:
    return (f"telemetry_database={database}\nserver_id={server_id}\ntelemetry_api_key={KEY}\n"
            "max_concurrent_tests_per_ip=1000\nmax_tests_per_hour_per_ip=100000\n" + SINGLE_USER_ONLY)


def support(daemon, path: str) -> tuple[int, dict]:
    status, _, body = daemon.request("GET", path, headers={"Authorization": f"Bearer {KEY}"})
    return status, json.loads(body)


def fleet_health(daemon) -> dict:
    return daemon.health()[1]["telemetry"]["fleet"]


def stored_in(postgres, database_url: str) -> dict[str, str]:
    """test_id -> server_id of every test in the fleet's database."""
    rows = postgres.execute("SELECT test_id, server_id FROM tests", database_url.rsplit("/", 1)[1])
    return dict(rows)


def run_tests(jobs: list[tuple[object, str]], workers: int) -> list[tuple[int, dict]]:
    """Each (daemon, client address) one complete test, *workers* at once."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda job: complete_test(job[0], source_ip=job[1]), jobs))


def test_two_servers_share_one_database_and_either_answers_for_both(tmp_path, postgres, fleet_database):
    north = start_daemon(tmp_path / "north", fleet_config(fleet_database, "north"))
    south = start_daemon(tmp_path / "south", fleet_config(fleet_database, "south"))
    try:
        # 200 tests at once, split across the two servers, from 20 customers' addresses.
        jobs = [((north, south)[n % 2], f"127.0.1.{n // 2 % 20 + 1}") for n in range(200)]
        answers = run_tests(jobs, workers=200)
        assert [status for status, _ in answers] == [200] * 200
        expected = {answer["test_id"]: "north" if daemon is north else "south"
                    for (daemon, _), (_, answer) in zip(jobs, answers)}
        assert wait_until(lambda: len(stored_in(postgres, fleet_database)) == 200, timeout=20)
        assert stored_in(postgres, fleet_database) == expected
        assert fleet_health(north)["backlog"] == 0 and fleet_health(north)["last_write_at"]

        # Customer 127.0.1.1 ran tests on both servers; each server's support API finds them all.
        for daemon in (north, south):
            status, found = support(daemon, "/api/telemetry/customer/127.0.1.1")
            assert status == 200 and found["count"] == 10
            assert {test["server_id"] for test in found["tests"]} == {"north", "south"}
        some_south_test = next(test_id for test_id, server in expected.items() if server == "south")
        status, test = support(north, f"/api/telemetry/test/{some_south_test}")
        assert status == 200 and test["server_id"] == "south"
        status, stats = support(south, "/api/telemetry/stats")
        assert status == 200 and stats["servers"] == {"north": 100, "south": 100}
    finally:
        north.stop()
        south.stop()


def test_tests_finished_while_the_database_is_away_arrive_once_it_is_back(tmp_path, postgres, fleet_database):
    daemon = start_daemon(tmp_path, fleet_config(fleet_database, "north"))
    try:
        before = run_tests([(daemon, "127.0.1.1")] * 5, workers=5)
        assert [status for status, _ in before] == [200] * 5
        assert wait_until(lambda: len(stored_in(postgres, fleet_database)) == 5, timeout=10)
        postgres.stop()
        stopped = time.monotonic()
        try:
            answers = run_tests([(daemon, f"127.0.1.{n % 5 + 1}") for n in range(50)], workers=10)
            assert [status for status, _ in answers] == [200] * 50  # the customers never notice
            assert wait_until(lambda: fleet_health(daemon)["backlog"] == 50, timeout=3)
            assert "unreachable" in fleet_health(daemon)["error"]
            status, refusal = support(daemon, "/api/telemetry/recent")
            assert status == 503 and "unreachable" in refusal["error"]
            # A share link is answered from the server's own file meanwhile.
            status, shared = daemon.get_json_accepting(f"/r/{answers[0][1]['share_id']}")
            assert status == 200 and shared["server_id"] == "north"
            status, _, metrics = daemon.request("GET", "/metrics", headers={"Authorization": f"Bearer {KEY}"})
            assert b"lqos_fleet_backlog 50.0" in metrics and b"lqos_fleet_database_up 0.0" in metrics
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
        finally:
            postgres.start()
        # Retries are at most 5 s apart: every test is there well within 10 s.
        assert wait_until(lambda: len(stored_in(postgres, fleet_database)) == 55, timeout=10)
        assert set(stored_in(postgres, fleet_database)) >= {answer["test_id"] for _, answer in answers}
        assert wait_until(lambda: fleet_health(daemon)["backlog"] == 0 and fleet_health(daemon)["error"] is None,
                          timeout=5)
    finally:
        daemon.stop()
