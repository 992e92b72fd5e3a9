"""Starting a test and submitting its result, as a client on loopback does."""

from __future__ import annotations

import json

import pytest

from daemon import SINGLE_USER_ONLY, start_daemon
from wire import forged_token, path_of, plausible_samples





@pytest.fixture
def started(shared_daemon):
    status, test = shared_daemon.post_json("/api/tests", {"mode": "single_user", "schedule": "short"})
    assert status == 201
    return test


def test_start_answers_schedule_urls_and_limits(shared_daemon, started):
    assert [phase["name"] for phase in started["phases"]] == [
        "baseline", "upload_warmup", "upload", "download_warmup", "download", "bidirectional"]
    assert sum(phase["seconds"] for phase in started["phases"]) == 15
    probe_port = shared_daemon.child_ports["probe"]
    assert started["probe_url"] == f"ws://127.0.0.1:{probe_port}/ws/probe"
    load_port, upload_port = shared_daemon.child_ports["load"], shared_daemon.child_ports["upload"]
    # Uploads go to a port of their own: a browser's six connections per port go to each direction.
    for key, port, path in (("download_url", load_port, "/download"), ("upload_url", upload_port, "/upload"),
                            ("bulk_ws_url", load_port, "/ws/bulk-download")):
        scheme = "ws" if key == "bulk_ws_url" else "http"
        assert started[key].startswith(f"{scheme}://127.0.0.1:{port}{path}?test={started['test_id']}&until=")
    assert started["progress_url"].startswith(f"http://127.0.0.1:{shared_daemon.port}/api/tests/")
    assert started["limits"]["probe_interval_ms"] == 100
    loads = {phase["name"]: (phase["load"], phase["warmup"]) for phase in started["phases"]}
    assert loads["baseline"] == ([], False)
    assert loads["upload_warmup"] == (["up"], True)
    assert loads["bidirectional"] == (["down", "up"], False)


def test_schedules_list_what_a_start_would_answer(shared_daemon, started):
    """The page's start screen says "in about N seconds" from this list, before any test starts."""
    status, schedules = shared_daemon.get_json("/api/schedules")
    assert status == 200
    assert schedules["single_user"]["short"]["phases"] == started["phases"]
    assert schedules["single_user"]["short"]["seconds"] == 15
    assert schedules["single_user"]["standard"]["seconds"] == 40
    assert schedules["virtual_household"]["standard"]["seconds"] == 35


def test_result_is_graded_stored_and_shared(shared_daemon, started):
    status, result = shared_daemon.post_json(path_of(started["result_url"]), plausible_samples(started["token"]))
    assert status == 200
    assert result["result"]["baseline"]["median_ms"] == 10.0
    assert result["result"]["phases"]["download"]["latency_increase_ms"] == 30.0
    assert result["result"]["overall"]["grade"] == "B"
    assert "client_ip" not in result
    status, shared = shared_daemon.get_json_accepting(f"/r/{result['share_id']}")
    assert status == 200 and shared == result
    status, headers, page = shared_daemon.get(f"/r/{result['share_id']}")
    assert status == 200 and b"<html" in page


def test_replayed_token_is_refused(shared_daemon, started):
    path = path_of(started["result_url"])
    assert shared_daemon.post_json(path, plausible_samples(started["token"]))[0] == 200
    status, error = shared_daemon.post_json(path, plausible_samples(started["token"]))
    assert status in (403, 409) and "error" in error


def test_forged_token_is_refused_and_the_session_survives(shared_daemon, started):
    path = path_of(started["result_url"])
    status, error = shared_daemon.post_json(path, plausible_samples(forged_token(started["token"])))
    assert status == 403 and error == {"error": "unknown test or wrong token"}
    assert shared_daemon.post_json(path, plausible_samples(started["token"]))[0] == 200


def test_result_from_another_ip_is_refused(shared_daemon, started):
    path = path_of(started["result_url"])
    status, error = shared_daemon.post_json(path, plausible_samples(started["token"]), source_ip="127.0.0.2")
    assert status == 403 and "another IP" in error["error"]
    assert shared_daemon.post_json(path, plausible_samples(started["token"]))[0] == 200


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda d: d.update(probes="lots"), "probes must be a list"),
        (lambda d: d["probes"].append([999, "baseline", 0, 5000]), "rtt_ms 5000 is outside"),
        (lambda d: d.update(throughput=[["download", 0, "down", -5]]), "bytes must be"),
    ],
)
def test_malformed_result_is_refused_with_a_reason(shared_daemon, started, mutate, reason):
    document = plausible_samples(started["token"])
    mutate(document)
    status, error = shared_daemon.post_json(path_of(started["result_url"]), document)
    assert status == 400 and reason in error["error"]
    assert shared_daemon.post_json(path_of(started["result_url"]), plausible_samples(started["token"]))[0] == 200


def test_oversized_result_is_refused(shared_daemon, started):
    document = plausible_samples(started["token"])
    document["padding"] = "x" * 600_000
    status, _, body = shared_daemon.request("POST", path_of(started["result_url"]), json.dumps(document).encode())
    assert status in (400, 413) and b"error" in body


def test_bad_start_requests(shared_daemon):
    assert shared_daemon.post_json("/api/tests", {"mode": "karaoke"})[0] == 400
    assert shared_daemon.post_json("/api/tests", {"schedule": "forever"})[0] == 400
    # Values that are not strings (once a 500: a list is not hashable).
    assert shared_daemon.post_json("/api/tests", {"schedule": []}) == (400, {"error": "mode and schedule must be strings"})
    assert shared_daemon.post_json("/api/tests", {"mode": {"x": 1}})[0] == 400
    status, _, _ = shared_daemon.request("POST", "/api/tests", b"{nope")
    assert status == 400


def test_unknown_share_id_is_404(shared_daemon):
    assert shared_daemon.get_json_accepting("/r/nothing-here")[0] == 404


def test_per_ip_limit_answers_429_with_retry_after(tmp_path):
    daemon = start_daemon(tmp_path, config_text="max_concurrent_tests_per_ip=1\n" + SINGLE_USER_ONLY)
    try:
        assert daemon.post_json("/api/tests", {"schedule": "short"})[0] == 201
        status, headers, body = daemon.request("POST", "/api/tests", b'{"schedule": "short"}')
        assert status == 429
        assert 1 <= int(headers["Retry-After"]) <= 16
        assert "already running" in json.loads(body)["error"]
        assert daemon.post_json("/api/tests", {"schedule": "short"}, source_ip="127.0.0.3")[0] == 201
    finally:
        daemon.stop()
