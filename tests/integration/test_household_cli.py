"""``lqos-bufferbloat-test --mode household`` against a real daemon, over the wire.

Each run is the short household schedule (2 s baseline + 8 s of every persona
at once), so the module runs it five times only: one household, one with a
plugged-in fifth persona, one whose persona process is killed mid-test, and
two households at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon import wait_until

CLI = Path(sys.executable).parent / "lqos-bufferbloat-test"
GRADES = ("A+", "A", "B", "C", "D", "F")
DEFAULT_PERSONAS = ["streaming", "gaming", "video", "updates"]
LATENCY_FIGURES = ("baseline_p50_ms", "p50_ms", "p95_ms", "p99_ms", "jitter_ms", "loss_percent",
                   "increase_p50_ms", "increase_p95_ms")
LOAD_SECONDS = 8
RUN_TIMEOUT = 60


def household(url: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([str(CLI), url, "--mode", "household", "--short", "--json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(cli: subprocess.Popen) -> dict:
    out, err = cli.communicate(timeout=RUN_TIMEOUT)
    assert cli.returncode == 0, err
    assert err == ""
    return json.loads(out)


def assert_latency_scored(score: dict) -> None:
    latency = score["latency"]
    assert score["grade"] in GRADES, score
    assert all(latency[figure] is not None for figure in LATENCY_FIGURES), latency
    assert latency["baseline_samples"] >= 15  # 20 pings in the 2 s baseline
    # 80 in the 8 s load; a busy machine may slip a tick or two, but not a second's worth.
    assert latency["sent"] >= 70 and latency["samples"] >= 60
    # The server timed the round trips too (WebSocket Pings behind its pongs), reported beside the grade.
    assert latency["server_timed"] >= 0.9 * (latency["samples"] + latency["baseline_samples"]), latency
    assert score["reason"].startswith(f"{score['name']}: ")


def assert_throughput_scored(score: dict, target_mbps: float, windows: int = LOAD_SECONDS) -> None:
    throughput = score["throughput"]
    assert throughput["target_down_mbps"] == target_mbps
    assert throughput["down_windows"] == windows
    assert throughput["down_median_mbps"] is not None and throughput["down_ratio"] is not None


def test_a_household_scores_every_persona_and_matches_its_share_link(shared_daemon):
    record = finish(household(shared_daemon.url))
    assert record["mode"] == "virtual_household" and "client_ip" not in record
    result = record["result"]
    personas = result["personas"]
    assert list(personas) == DEFAULT_PERSONAS

    # Streaming's rate over its one whole 5 s period of the 8 s load.
    for name, target, windows in (("streaming", 5.0, 5), ("gaming", 1.5, 8), ("video", 2.5, 8)):
        assert_latency_scored(personas[name])
        assert_throughput_scored(personas[name], target, windows)
        assert personas[name]["throughput"]["up_windows"] >= LOAD_SECONDS - 1  # from the server's acks
    segments = personas["streaming"]["segments"]
    # Segment 1 is due 10 s into the 8 s load: counted because it arrived.
    assert segments["count"] == 2 and segments["late"] == 0 and segments["never_arrived"] == 0
    assert 0.9 <= segments["max_s"] < 5.0  # 1 s of data, within its 5 s
    assert personas["streaming"]["reason"].startswith("streaming: all 2 video segments arrived in time")
    updates = personas["updates"]
    assert updates["grade"] in GRADES and not updates["sets_household_grade"]
    assert_throughput_scored(updates, 50.0)
    assert "of what reached the household" in updates["reason"]
    assert updates["throughput"]["down_median_mbps"] > 50  # loopback: bulk fills far past the target
    assert not any(score["interrupted"] for score in personas.values()) and result["interrupted"] == []

    fairness = result["fairness"]
    assert fairness["personas"] == 3 and 1 / 3 <= fairness["jain_index"] <= 1.0
    overall = result["overall"]
    assert overall["persona"] in ("streaming", "gaming", "video")
    assert overall["grade"] == personas[overall["persona"]]["grade"]
    assert overall["reason"] == personas[overall["persona"]]["reason"]
    assert all(GRADES.index(overall["grade"]) >= GRADES.index(personas[name]["grade"])
               for name in ("streaming", "gaming", "video"))

    status, shared = shared_daemon.get_json_accepting(f"/r/{record['share_id']}")
    assert status == 200
    assert shared["result"]["overall"]["grade"] == overall["grade"]
    assert shared["result"] == result


def test_a_plugged_in_fifth_persona_is_played_and_scored(daemon_with_fifth_persona):
    daemon = daemon_with_fifth_persona
    result = finish(household(daemon.url))["result"]
    assert list(result["personas"]) == DEFAULT_PERSONAS + ["cloud_gaming"]
    cloud = result["personas"]["cloud_gaming"]
    assert cloud["label"] == "Priya, cloud gaming"
    assert_latency_scored(cloud)
    assert_throughput_scored(cloud, 30.0)
    assert cloud["throughput"]["down_ratio"] > 0.5
    assert result["fairness"]["personas"] == 4


def _child(daemon, role: str) -> dict:
    return next(child for child in daemon.health()[1]["children"] if child["role"] == role)


def _restarted_once(daemon, role: str) -> dict | None:
    child = _child(daemon, role)
    return child if child["state"] == "running" and child["restarts"] == 1 else None


def test_a_killed_persona_is_interrupted_and_the_rest_of_the_household_carries_on(daemon):
    before = _child(daemon, "video")
    cli = household(daemon.url)
    # The persona processes report their sessions once a second; then wait into the load.
    assert wait_until(lambda: daemon.get_json("/virtual-household/stats")[1]["personas"]["video"]["sessions"],
                      timeout=15)
    time.sleep(4.0)
    os.kill(before["pid"], signal.SIGKILL)
    restarted = wait_until(lambda: _restarted_once(daemon, "video"), timeout=15)
    assert restarted and restarted["pid"] != before["pid"]

    result = finish(cli)["result"]
    video = result["personas"]["video"]
    assert video["interrupted"] is True and video["grade"] is None
    assert result["interrupted"] == ["video"]
    for name in ("streaming", "gaming"):
        score = result["personas"][name]
        assert not score["interrupted"]
        assert_latency_scored(score)  # pinged through the whole load, after the kill too
    assert result["personas"]["gaming"]["throughput"]["down_windows"] == LOAD_SECONDS
    assert result["personas"]["gaming"]["throughput"]["down_ratio"] > 0.5
    assert result["personas"]["updates"]["grade"] in GRADES
    assert result["fairness"]["personas"] == 2  # the interrupted persona has no share
    assert result["overall"]["grade"] in GRADES and result["overall"]["persona"] != "video"
    assert _child(daemon, "video")["state"] == "running"


def test_two_households_at_once_each_get_their_own_rates(shared_daemon):
    # Both bulk reads are capped: two uncapped loopback downloads would take both
    # cores of a small test machine from the persona processes, and this test is
    # about one household's session never touching another's settings.
    first, second = (household(shared_daemon.url, "--max-mbps", "200") for _ in range(2))
    # Each household opens gaming 4 times (3 echo-only connections): still one session each.
    seen = []
    wait_until(lambda: seen.append(shared_daemon.get_json("/virtual-household/stats")[1]["personas"])
               or seen[-1]["gaming"]["sessions"] == 2, timeout=15)
    time.sleep(1.5)
    seen.append(shared_daemon.get_json("/virtual-household/stats")[1]["personas"])
    assert max(s["gaming"]["sessions"] for s in seen) == 2 and seen[-1]["video"]["sessions"] == 2, seen
    records = [finish(first), finish(second)]
    assert records[0]["test_id"] != records[1]["test_id"]
    for record in records:
        personas = record["result"]["personas"]
        for name, target in (("gaming", 1.5), ("video", 2.5)):
            throughput = personas[name]["throughput"]
            assert throughput["target_down_mbps"] == target
            assert throughput["down_median_mbps"] == pytest.approx(target, rel=0.1), (name, throughput)
            assert personas[name]["grade"] in GRADES
        # Each household's own cap holds.  Reaching it is up to the cores: beside the
        # suite's other tests one read 169 Mbit/s.
        assert 50 < personas["updates"]["throughput"]["down_median_mbps"] <= 200 * 1.1
        assert not record["result"]["interrupted"]
