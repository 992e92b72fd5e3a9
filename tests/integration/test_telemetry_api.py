"""The support API and /metrics on a real daemon: auth, bounds, what is stored."""

from __future__ import annotations

import json

import pytest

from daemon import SINGLE_USER_ONLY, start_daemon
from wire import complete_test, forged_token, path_of, plausible_samples

KEY = "support-team-key-0123456789"
HIGH_LIMITS = "max_concurrent_tests_per_ip=1000\nmax_tests_per_hour_per_ip=100000\n" + SINGLE_USER_ONLY


def get(daemon, path: str, key: str | None = KEY, headers: dict | None = None) -> tuple[int, dict, bytes]:
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    return daemon.request("GET", path, headers={**auth, **(headers or {})})


def get_json(daemon, path: str, key: str | None = KEY, headers: dict | None = None) -> tuple[int, dict]:
    status, _, body = get(daemon, path, key, headers)
    return status, json.loads(body)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """A daemon with telemetry_api_key set, and one finished test in it."""
    running = start_daemon(tmp_path_factory.mktemp("keyed"),
                           config_text=f"telemetry_api_key={KEY}\nserver_id=test-server\n{HIGH_LIMITS}")
    yield running
    running.stop()


# --- auth ---


def test_no_key_is_401_with_a_bearer_challenge(keyed):
    status, headers, body = get(keyed, "/api/telemetry/stats", key=None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer realm=")
    assert "Authorization: Bearer" in json.loads(body)["error"]


def test_a_wrong_key_is_401(keyed):
    status, headers, _ = get(keyed, "/api/telemetry/recent", key=KEY + "x")
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]


@pytest.mark.parametrize("parameter", ["key", "api_key", "token"])
def test_a_key_in_the_query_string_is_400_even_when_right(keyed, parameter):
    status, body = get_json(keyed, f"/api/telemetry/stats?{parameter}={KEY}", key=None)
    assert status == 400 and "Authorization: Bearer" in body["error"]
    assert get_json(keyed, f"/api/telemetry/stats?{parameter}={KEY}")[0] == 400


def test_metrics_need_the_key_too(keyed):
    assert get(keyed, "/metrics", key=None)[0] == 401
    status, headers, body = get(keyed, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert b"lqos_outbox_depth" in body


# --- what is stored and how it is found ---


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(keyed):
    spoof = {"X-Forwarded-For": "198.51.100.99", "User-Agent": "Spoofer/1.0"}
    status, result = complete_test(keyed, source_ip="127.0.0.5", headers=spoof)
    assert status == 200
    [stored] = [t for t in get_json(keyed, "/api/telemetry/recent?limit=50")[1]["tests"]
                if t["test_id"] == result["test_id"]]
    assert stored["client_ip"] == "127.0.0.5" and stored["user_agent"] == "Spoofer/1.0"
    assert get_json(keyed, "/api/telemetry/customer/198.51.100.99")[1]["count"] == 0


def test_customer_lookup_returns_every_test_of_that_address_newest_first(keyed):
    first = complete_test(keyed, source_ip="127.0.0.6")[1]
    second = complete_test(keyed, source_ip="127.0.0.6")[1]
    complete_test(keyed, source_ip="127.0.0.7")
    status, body = get_json(keyed, "/api/telemetry/customer/::ffff:127.0.0.6")
    assert status == 200 and body["client_ip"] == "127.0.0.6"
    assert [t["test_id"] for t in body["tests"]] == [second["test_id"], first["test_id"]]
    assert body["tests"][0]["result"]["overall"]["grade"] == "B"


def test_customer_lookup_takes_ipv6_and_refuses_what_is_no_address(keyed):
    status, body = get_json(keyed, "/api/telemetry/customer/2001:DB8::0:1")
    assert status == 200 and body == {"client_ip": "2001:db8::1", "count": 0, "tests": []}
    for bad in ("999.1.1.1", "not-an-ip", "2001:db8::zz"):
        status, body = get_json(keyed, f"/api/telemetry/customer/{bad}")
        assert status == 400 and "not an IPv4 or IPv6 address" in body["error"]


def test_one_test_by_its_id_names_the_server_that_ran_it(keyed):
    result = complete_test(keyed, source_ip="127.0.0.8")[1]
    status, test = get_json(keyed, f"/api/telemetry/test/{result['test_id']}")
    assert status == 200 and test["client_ip"] == "127.0.0.8" and test["server_id"] == "test-server"
    assert get_json(keyed, "/api/telemetry/test/no-such-test")[0] == 404
    status, body = get_json(keyed, "/api/telemetry/test/" + "x" * 65)
    assert status == 400 and "1 to 64 letters" in body["error"]
    assert get_json(keyed, "/api/telemetry/test/a%20b")[0] == 400
    status, health = keyed.get_json("/api/health")
    assert health["server_id"] == "test-server" and health["telemetry"] == {"database": "sqlite"}


@pytest.mark.parametrize("limit", ["0", "1001", "-3", "many", "2.5"])
def test_recent_limit_outside_one_to_a_thousand_is_400(keyed, limit):
    assert get_json(keyed, f"/api/telemetry/recent?limit={limit}")[0] == 400


def test_recent_answers_newest_first_within_the_limit(keyed):
    complete_test(keyed)
    newest = complete_test(keyed)[1]
    status, body = get_json(keyed, "/api/telemetry/recent?limit=1")
    assert status == 200 and body["count"] == 1 and body["tests"][0]["test_id"] == newest["test_id"]
    assert get_json(keyed, "/api/telemetry/recent?limit=1000")[0] == 200


def test_stats_and_metrics_count_completed_and_failed_tests(keyed):
    complete_test(keyed)
    status, test = keyed.post_json("/api/tests", {"schedule": "short"})
    forged = plausible_samples(forged_token(test["token"]))
    assert keyed.post_json(path_of(test["result_url"]), forged)[0] == 403
    status, stats = get_json(keyed, "/api/telemetry/stats")
    assert status == 200 and stats["count"] >= 1 and stats["max_kept"] == 1000
    assert stats["grades"]["B"] == stats["count"] and stats["newest"] >= stats["oldest"]
    metrics = get(keyed, "/metrics")[2].decode()
    assert f"lqos_tests_completed_total {float(stats['count'])}" in metrics
    assert 'lqos_tests_failed_total{reason="forbidden"} 1.0' in metrics
    assert f'lqos_test_grades_total{{grade="B"}} {float(stats["count"])}' in metrics
    assert 'lqos_child_restarts_total{role="probe"} 0.0' in metrics
    assert 'lqos_served_bytes_total{direction="download"}' in metrics


# --- no key configured: loopback only ---


def test_without_a_key_a_forwarded_remote_client_is_refused(tmp_path):
    """Behind a proxy on this host the peer is loopback; the client it names is not."""
    daemon = start_daemon(tmp_path, config_text="trusted_proxies=127.0.0.0/8\n" + SINGLE_USER_ONLY)
    try:
        assert get(daemon, "/api/telemetry/stats", key=None)[0] == 200
        assert get(daemon, "/metrics", key=None)[0] == 200
        remote = {"X-Forwarded-For": "203.0.113.7"}
        status, body = get_json(daemon, "/api/telemetry/stats", key=None, headers=remote)
        assert status == 403 and "telemetry_api_key" in body["error"]
        assert get(daemon, "/metrics", key=None, headers=remote)[0] == 403
        status, _ = get_json(daemon, "/api/telemetry/recent", key=None, headers={"X-Forwarded-For": "127.0.0.1"})
        assert status == 200
    finally:
        daemon.stop()
