"""The daemon as an operator runs it: twistd, its children, its signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from daemon import REPO, pid_alive, start_daemon, twistd_command, wait_until


CLI = Path(sys.executable).parent / "lqos-bufferbloat-test"


def probe_round_trip(daemon, seq: int = 1) -> dict:
    with connect(daemon.child_url("probe", "/ws/probe", websocket=True), open_timeout=5) as ws:
        ws.send(json.dumps({"seq": seq, "t": 12.5}))
        return json.loads(ws.recv(timeout=5))


def test_health_lists_the_running_probe_child(shared_daemon):
    status, body = shared_daemon.get_json("/api/health")
    assert status == 200
    assert body["status"] == "ok"
    assert body["version"]
    assert body["uptime_seconds"] >= 0
    (probe,) = [child for child in body["children"] if child["role"] == "probe"]
    assert probe["state"] == "running"
    assert probe["port"] == shared_daemon.child_ports["probe"]
    assert pid_alive(probe["pid"])
    assert probe["restarts"] == 0


def test_sponsor_comes_from_the_config_file(shared_daemon):
    status, body = shared_daemon.get_json("/api/sponsor")
    assert status == 200
    assert body == {
        "sponsor_name": "Example Fibre",
        "sponsor_url": "https://fibre.example/",
        "sponsor_city": "Springfield, IL",
    }


def test_start_page_is_served_with_a_content_security_policy(shared_daemon):
    status, headers, body = shared_daemon.get("/")
    assert status == 200
    assert b"Bufferbloat test" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]


def test_probe_echoes_the_message_unchanged(shared_daemon):
    assert probe_round_trip(shared_daemon, seq=42) == {"seq": 42, "t": 12.5}


def test_probe_times_a_ping_behind_each_echo_and_reports_it(shared_daemon):
    """The server's own timings of the round trip: the Pong the client's WebSocket library
    answered, and the acknowledgement the client's kernel sent, which can only come first."""
    acknowledged = []
    with connect(shared_daemon.child_url("probe", "/ws/probe", websocket=True), open_timeout=5) as ws:
        for seq in range(7, 17):
            ws.send(json.dumps({"seq": seq, "t": 1.0}))
            assert json.loads(ws.recv(timeout=5)) == {"seq": seq, "t": 1.0}
            report = json.loads(ws.recv(timeout=5))
            assert set(report) == {"seq", "server_rtt_ms", "ack_rtt_ms"} and report["seq"] == seq
            assert 0 < report["server_rtt_ms"] < 1000
            if report["ack_rtt_ms"] is not None:
                acknowledged.append(report["ack_rtt_ms"])
                assert 0 <= report["ack_rtt_ms"] <= report["server_rtt_ms"] + 0.01
            time.sleep(0.02)
    assert len(acknowledged) >= 5, acknowledged  # the kernel timed most of them


def test_behind_a_proxy_the_probe_times_no_acknowledgement(shared_daemon):
    """A proxy ends TCP: the acknowledgements would be the proxy's, so none is timed."""
    url = shared_daemon.child_url("probe", "/ws/probe", websocket=True)
    with connect(url, open_timeout=5, additional_headers={"X-Forwarded-For": "203.0.113.7"}) as ws:
        for seq in range(3):
            ws.send(json.dumps({"seq": seq, "t": 1.0}))
            ws.recv(timeout=5)
            report = json.loads(ws.recv(timeout=5))
            assert report["server_rtt_ms"] > 0 and report["ack_rtt_ms"] is None


def test_ping_is_readable_cross_origin_without_preflight(shared_daemon):
    import urllib.request

    url = shared_daemon.child_url("probe", "/ping")
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.read() == b"pong"
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.headers["Timing-Allow-Origin"] == "*"
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "message",
    [b"x" * 300, "not json", json.dumps({"seq": "one", "t": 1}), json.dumps([1, 2]), b"\x00binary"],
    ids=["oversized", "not-json", "bad-seq", "not-object", "binary"],
)
def test_bad_probe_closes_only_that_connection(shared_daemon, message):
    url = shared_daemon.child_url("probe", "/ws/probe", websocket=True)
    with connect(url) as bystander, connect(url) as offender:
        offender.send(message)
        with pytest.raises(ConnectionClosed) as closed:
            offender.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code in (4400, 1009)
        bystander.send(json.dumps({"seq": 7, "t": 1.0}))
        assert json.loads(bystander.recv(timeout=5))["seq"] == 7
    assert shared_daemon.health()[0] == 200


def test_probe_flood_is_cut_off(shared_daemon):
    url = shared_daemon.child_url("probe", "/ws/probe", websocket=True)
    with connect(url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            for seq in range(500):
                ws.send(json.dumps({"seq": seq, "t": 0}))
            while True:
                ws.recv(timeout=5)
        assert closed.value.rcvd.code == 4429


def test_bad_config_value_stops_the_daemon_with_file_and_line(tmp_path):
    config = tmp_path / "lqos_test.conf"
    config.write_text("# branding\nsponsor_name=Example\ntelemetry_max_tests=lots\n")
    result = subprocess.run(
        twistd_command("--config", str(config), "--data-dir", str(tmp_path / "var")),
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert f"{config}:3: telemetry_max_tests: 'lots' is not a whole number" in result.stdout + result.stderr


def test_unknown_key_is_a_warning_and_what_is_switched_off_is_not_offered(tmp_path):
    daemon = start_daemon(tmp_path, config_text="sponsor_name=Example\ncolour=blue\nquick_schedule=off\n"
                                                "virtual_household=off\n")
    try:
        assert daemon.get_json("/api/sponsor")[1]["sponsor_name"] == "Example"
        assert "lqos_test.conf:2: unknown key 'colour' ignored" in daemon.log()
        # Switched off (the default), the quick schedule is neither listed nor run.
        assert daemon.post_json("/api/tests", {"schedule": "quick"}) == (
            400, {"error": "schedule must be one of ['short', 'standard']"})
        schedules = daemon.get_json("/api/schedules")[1]
        assert "quick" not in schedules["single_user"]
        # Without the household: no persona runs, no household is listed, started or drawn.
        assert sorted(child["role"] for child in daemon.health()[1]["children"]) == ["load-1", "probe"]
        assert list(schedules) == ["single_user"]
        assert daemon.post_json("/api/tests", {"mode": "virtual_household"}) == (
            400, {"error": "mode must be one of ['single_user']"})
        assert daemon.get_json("/virtual-household/profiles") == (200, {"personas": []})
        household = subprocess.run([str(CLI), daemon.url, "--mode", "household"], capture_output=True, text=True,
                                   timeout=30)
        assert household.returncode == 2 and household.stdout == ""
        assert household.stderr == ("lqos-bufferbloat-test: error: the server refused to start a test: "
                                    "mode must be one of ['single_user']\n")
    finally:
        daemon.stop()


@pytest.mark.alone  # two seconds is a fresh interpreter's start-up on an idle machine, not a shared one
def test_killed_probe_is_restarted_within_two_seconds(daemon):
    old_pid = daemon.child_pids()["probe"]
    os.kill(old_pid, signal.SIGKILL)
    killed_at = time.monotonic()

    def restarted():
        status, body = daemon.health()
        (probe,) = [child for child in body["children"] if child["role"] == "probe"]
        return status == 200 and probe["pid"] != old_pid and probe["restarts"] == 1

    assert wait_until(restarted, timeout=2.0, interval=0.02)
    assert time.monotonic() - killed_at < 2.0
    assert probe_round_trip(daemon)["seq"] == 1


def test_health_is_503_while_a_child_is_down(tmp_path):
    daemon = start_daemon(tmp_path)
    try:
        os.kill(daemon.child_pids()["probe"], signal.SIGKILL)

        def degraded():
            answer = daemon.health()
            return answer if answer and answer[0] == 503 else None

        answer = wait_until(degraded, timeout=2.0, interval=0.01)
        assert answer, "health never reported the dead child"
        assert answer[1]["status"] == "degraded"
    finally:
        daemon.stop()


def test_sigterm_stops_every_child_within_five_seconds(daemon):
    pids = list(daemon.child_pids().values())
    daemon.process.send_signal(signal.SIGTERM)
    daemon.process.wait(timeout=5)
    # twistd ends by re-raising the signal, which systemd counts as a clean stop.
    assert daemon.process.returncode in (0, -signal.SIGTERM)
    assert "Server Shut Down." in daemon.log()
    assert wait_until(lambda: not any(pid_alive(pid) for pid in pids), timeout=5)


def test_sigkill_of_the_parent_leaves_no_orphan(daemon):
    pids = list(daemon.child_pids().values())
    daemon.process.kill()
    daemon.process.wait(timeout=5)
    # Each child sees its pipe close at once and then stops its ports; on a
    # machine as busy as the suite makes it, that once took more than 5 s.
    assert wait_until(lambda: not any(pid_alive(pid) for pid in pids), timeout=15)


def test_every_port_speaks_tls_with_a_certificate(tmp_path, certificates):
    import ssl

    daemon = start_daemon(tmp_path, tls=certificates)
    try:
        status, body = daemon.get_json("/api/health")
        assert status == 200 and daemon.url.startswith("https://")
        context = ssl.create_default_context(cafile=certificates[0])
        url = daemon.child_url("probe", "/ws/probe", websocket=True)
        assert url.startswith("wss://")
        with connect(url, ssl=context) as ws:
            ws.send(json.dumps({"seq": 3, "t": 1}))
            assert json.loads(ws.recv(timeout=5))["seq"] == 3
    finally:
        daemon.stop()


def test_mismatched_certificate_and_key_refuse_to_start(tmp_path, certificates):
    other = tmp_path / "other"
    subprocess.run([str(REPO / "etc" / "create_test_certificates.sh"), str(other)], check=True,
                   capture_output=True)
    result = subprocess.run(
        twistd_command("--tls-cert", certificates[0], "--tls-key", str(other / "key.pem"),
                       "--data-dir", str(tmp_path / "var")),
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "does not match the certificate" in result.stdout + result.stderr
