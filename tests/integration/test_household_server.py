"""The household's server side: persona processes, profiles, tokens, a plugged-in persona."""

from __future__ import annotations

import json
import threading
import time

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect


DEFAULT_PERSONAS = ["streaming", "gaming", "video", "updates"]


def start_household(daemon) -> dict:
    status, session = daemon.post_json("/api/tests", {"mode": "virtual_household", "schedule": "short"})
    assert status == 201, session
    return session


def play(url: str, seconds: float) -> dict:
    """One persona connection: a ping, the load for *seconds*, what arrived."""
    received = {"down_bytes": 0, "acks": [], "bursts": [], "pong": None}
    with connect(url, max_size=None, open_timeout=5) as ws:
        received["hello"] = json.loads(ws.recv(timeout=5))
        ws.send(json.dumps({"type": "ping", "seq": 1, "t": 12.5}))
        ws.send(json.dumps({"type": "start", "seconds": seconds}))
        while True:
            message = ws.recv(timeout=10)
            if isinstance(message, bytes):
                received["down_bytes"] += len(message)
                continue
            event = json.loads(message)
            if event["type"] == "pong":
                received["pong"] = event
            elif event["type"] == "ack":
                received["acks"].append(event)
            elif event["type"] == "burst":
                received["bursts"].append(event)
            elif event["type"] == "done":
                received["done"] = event
                return received


def test_profiles_list_the_four_default_personas(shared_daemon):
    status, body = shared_daemon.get_json("/virtual-household/profiles")
    assert status == 200
    names = [profile["name"] for profile in body["personas"]]
    assert names == DEFAULT_PERSONAS
    gaming = body["personas"][1]
    assert gaming["port"] == shared_daemon.child_ports["gaming"]
    assert gaming["traffic"]["tick_hz"] == 60 and gaming["traffic"]["down_mbps"] == 1.5
    assert shared_daemon.get_json("/virtual-household/health")[0] == 200


def test_household_session_hands_out_a_url_per_persona(shared_daemon):
    session = start_household(shared_daemon)
    assert [phase["name"] for phase in session["phases"]] == ["baseline", "load"]
    for persona in session["personas"]:
        port = shared_daemon.child_ports[persona["name"]]
        assert persona["url"].startswith(f"ws://127.0.0.1:{port}/ws/virtual-household/{session['test_id']}?")


def test_each_persona_plays_its_plan(shared_daemon):
    session = start_household(shared_daemon)
    urls = {persona["name"]: persona["url"] for persona in session["personas"]}
    results = {}
    threads = [threading.Thread(target=lambda n=name: results.__setitem__(n, play(urls[n], 2.0)))
               for name in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results["gaming"]["pong"] == {"type": "pong", "seq": 1, "t": 12.5}
    assert results["gaming"]["down_bytes"] == pytest.approx(1.5e6 / 8 * 2, rel=0.1)
    assert results["video"]["down_bytes"] == pytest.approx(2.5e6 / 8 * 2, rel=0.1)
    # Streaming sends 25 Mbit/s during the first second of each 5 s period.
    assert results["streaming"]["down_bytes"] == pytest.approx(25e6 / 8, rel=0.1)
    assert [b["edge"] for b in results["streaming"]["bursts"]] == ["start", "end"]
    # Updates is bulk: it takes whatever the (loopback) line gives.
    assert results["updates"]["down_bytes"] > 10 * 25e6 / 8
    assert results["gaming"]["acks"][-1]["up_bytes"] == 0


def test_a_connection_that_never_starts_only_echoes(shared_daemon):
    """Gaming's echo-only connections (lqos.personas.model.Persona.echo_copies): answered, never loaded."""
    session = start_household(shared_daemon)
    url = next(p["url"] for p in session["personas"] if p["name"] == "gaming")
    with connect(url, max_size=None, open_timeout=5) as traffic, connect(url, max_size=None, open_timeout=5) as echo:
        assert json.loads(echo.recv(timeout=5))["type"] == "hello"
        traffic.recv(timeout=5)
        traffic.send(json.dumps({"type": "start", "seconds": 1.0}))
        pongs, timings, binary = [], [], 0
        for seq in range(10):
            echo.send(json.dumps({"type": "ping", "seq": seq, "t": seq * 100.0}))
            time.sleep(0.1)
        deadline = time.monotonic() + 2
        while len(timings) < 10 and time.monotonic() < deadline:
            message = echo.recv(timeout=2)
            if isinstance(message, bytes):
                binary += len(message)
            else:
                event = json.loads(message)
                (pongs if event["type"] == "pong" else timings).append(event)
    assert pongs == [{"type": "pong", "seq": seq, "t": seq * 100.0} for seq in range(10)]
    # Each pong is followed by a WebSocket Ping, which this client's library answers; the
    # server says how long that took.
    assert [(t["type"], t["seq"], t["t"]) for t in timings] == [("timing", seq, seq * 100.0) for seq in range(10)]
    assert all(0 <= t["server_rtt_ms"] < 1000 for t in timings), timings
    assert binary == 0  # the traffic went to the connection that started the load


def test_persona_refuses_a_wrong_or_missing_token(shared_daemon):
    session = start_household(shared_daemon)
    url = session["personas"][1]["url"]
    for bad in (url.replace("token=", "token=x"), url.split("?")[0]):
        with pytest.raises(InvalidStatus) as refused:
            connect(bad, open_timeout=5)
        assert refused.value.response.status_code == 403


def test_two_households_get_the_same_rates(shared_daemon):
    first, second = start_household(shared_daemon), start_household(shared_daemon)
    results = {}

    def run(label, session):
        url = next(p["url"] for p in session["personas"] if p["name"] == "video")
        results[label] = play(url, 2.0)

    threads = [threading.Thread(target=run, args=(label, s)) for label, s in (("a", first), ("b", second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    expected = 2.5e6 / 8 * 2
    assert results["a"]["down_bytes"] == pytest.approx(expected, rel=0.1)
    assert results["b"]["down_bytes"] == pytest.approx(expected, rel=0.1)


def test_a_plugged_in_persona_is_listed_run_and_supervised(daemon_with_fifth_persona):
    daemon = daemon_with_fifth_persona
    profiles = daemon.get_json("/virtual-household/profiles")[1]["personas"]
    assert [p["name"] for p in profiles][-1] == "cloud_gaming"
    health = daemon.get_json("/api/health")[1]
    assert {"cloud_gaming"} <= {child["role"] for child in health["children"] if child["state"] == "running"}
    session = start_household(daemon)
    url = next(p["url"] for p in session["personas"] if p["name"] == "cloud_gaming")
    started = time.monotonic()
    played = play(url, 1.0)
    assert played["hello"]["persona"]["label"] == "Priya, cloud gaming"
    assert played["down_bytes"] == pytest.approx(30e6 / 8 * 1.0, rel=0.15)
    assert time.monotonic() - started < 5
