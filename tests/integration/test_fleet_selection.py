"""Choosing the nearest server of a fleet from the CLI: two daemons, one made farther away (tests/fleet_pair.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daemon import SINGLE_USER_ONLY
from fleet_pair import FAR_EXTRA_MS, start_fleet_pair
from lqos.client.http import ClientError
from lqos.client.servers import TimedServer, choose

CLI = Path(sys.executable).parent / "lqos-bufferbloat-test"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=90)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    pair = start_fleet_pair(tmp_path_factory.mktemp("fleet"), SINGLE_USER_ONLY)
    yield pair
    pair.stop()


def test_the_server_lists_its_fleet(fleet):
    status, answer = fleet.far.get_json("/api/servers")
    assert status == 200 and answer["server_id"] == "far"
    assert [server["label"] for server in answer["servers"]] == ["Far", "Near"]
    assert answer["servers"][1]["url"] == fleet.near.url


def test_list_servers_times_each_and_marks_the_nearest(fleet):
    done = run_cli(fleet.far.url, "--list-servers")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    near, far = (next(line for line in lines if f" {label} " in line) for label in ("Near", "Far"))
    assert near.startswith("* ") and far.startswith("  ")
    assert float(far.split()[1]) >= FAR_EXTRA_MS  # the proxy holds each way half of it


def test_server_auto_runs_the_test_on_the_nearest_and_the_summary_names_it(fleet):
    # At 20 Mbit/s: the test's load only has to happen, and at loopback rates it would take both cores.
    done = run_cli(fleet.far.url, "--server", "auto", "--schedule", "quick", "--max-mbps", "20")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"Testing against Near ({fleet.near.url}, ")
    assert f"Server: near ({fleet.near.url})" in done.stdout
    share_id = done.stdout.split(f"Share: {fleet.near.url}/r/")[1].split()[0]
    status, shared = fleet.near.get_json_accepting(f"/r/{share_id}")
    assert status == 200 and shared["server_id"] == "near"


def test_a_server_is_chosen_by_its_label_whatever_its_round_trip():
    servers = [TimedServer("Far", "http://far", "http://far/ping", 40.0),
               TimedServer("Near", "http://near", "http://near/ping", 1.0),
               TimedServer("Silent", "http://silent", "http://silent/ping", None)]
    assert choose(servers, "Far") is servers[0]
    assert choose(servers, "auto") is servers[1]
    with pytest.raises(ClientError, match="none of the fleet's servers answered"):
        choose(servers[2:], "auto")


def test_an_unknown_label_fails_naming_the_labels_there_are(fleet):
    done = run_cli(fleet.near.url, "--server", "Mars", "--schedule", "quick")
    assert done.returncode == 1
    assert "no server labelled 'Mars' (it lists: Far, Near)" in done.stderr
