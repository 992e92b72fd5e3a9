"""Webhook and central deliveries to a real receiver on loopback: signed, private, exactly once."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from daemon import SINGLE_USER_ONLY, free_ports, start_daemon, wait_until
from wire import complete_test

SECRET = "webhook-secret-0123456789abcdef"
KEY = "webhook-test-key-0123456789"
CUSTOMER_IP = "127.0.0.2"
CUSTOMER_AGENT = "CustomerBrowser/7.7 (very identifiable)"
FAST_RETRIES = "outbox_retry_seconds=0.05\n"
HIGH_LIMITS = "max_concurrent_tests_per_ip=1000\nmax_tests_per_hour_per_ip=100000\n" + SINGLE_USER_ONLY
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict  # names in lower case: HTTP header names are case-insensitive
    body: bytes
    raw: bytes  # request line, headers and body as they arrived
    status: int


class Receiver:
    """An ISP portal on loopback: records every POST; can fail the first attempts of each delivery."""

    def __init__(self, port: int = 0, failures_before_success: int = 0):
        self.deliveries: list[Delivery] = []
        self._failures = failures_before_success
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def accepted(self, path: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.path == path and d.status == 200]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, path: str, headers: dict, body: bytes, raw: bytes) -> int:
        with self._lock:
            earlier = sum(1 for d in self.deliveries
                          if d.path == path and d.headers.get("x-lqos-delivery") == headers.get("x-lqos-delivery"))
            status = 503 if earlier < self._failures else 200
            self.deliveries.append(Delivery(path, headers, body, raw, status))
            return status

    def _handler_class(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(min(int(self.headers.get("Content-Length", 0)), MAX_BODY_BYTES))
                raw = self.raw_requestline + str(self.headers).encode("latin-1") + body
                headers = {name.lower(): value for name, value in self.headers.items()}
                status = receiver._record(self.path, headers, body, raw)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler


def valid_signature(delivery: Delivery) -> bool:
    """What an ISP's receiver checks (docs/ISP_TELEMETRY_GUIDE.md has the same recipe)."""
    timestamp = delivery.headers["x-lqos-timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + delivery.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(delivery.headers["x-lqos-signature"], f"sha256={expected}")


def outbox_depth(daemon) -> dict:
    status, _, body = daemon.request("GET", "/api/telemetry/stats", headers={"Authorization": f"Bearer {KEY}"})
    return json.loads(body)["outbox"] if status == 200 else {}


@pytest.fixture
def receiver():
    running = Receiver(failures_before_success=1)
    yield running
    running.close()


def test_webhook_is_signed_and_full_central_has_no_ip_and_no_user_agent(tmp_path, receiver):
    base = f"http://127.0.0.1:{receiver.port}"
    daemon = start_daemon(tmp_path, config_text=f"webhook_url={base}/hook\nwebhook_secret={SECRET}\n"
                                                f"central_url={base}/central\ntelemetry_api_key={KEY}\n"
                                                f"{FAST_RETRIES}{HIGH_LIMITS}")
    try:
        status, result = complete_test(daemon, CUSTOMER_IP, {"User-Agent": CUSTOMER_AGENT})
        assert status == 200
        assert wait_until(lambda: receiver.accepted("/hook") and receiver.accepted("/central"), timeout=10)
        [hook] = receiver.accepted("/hook")
        [central] = receiver.accepted("/central")
    finally:
        daemon.stop()
    assert valid_signature(hook) and valid_signature(central)
    assert abs(int(hook.headers["x-lqos-timestamp"]) - time.time()) < 30
    assert hook.headers["x-lqos-delivery"] == central.headers["x-lqos-delivery"] == result["test_id"]
    record = json.loads(hook.body)
    assert record["client_ip"] == CUSTOMER_IP and record["user_agent"] == CUSTOMER_AGENT
    assert record["result"] == result["result"] and record["share_id"] == result["share_id"]
    assert CUSTOMER_IP.encode() not in central.raw and CUSTOMER_AGENT.encode() not in central.raw
    assert b"CustomerBrowser" not in central.raw and result["share_id"].encode() not in central.raw
    assert json.loads(central.body)["result"] == result["result"]
    # The receiver failed the first attempt of each: they were retried, with the same body.
    failed = [d for d in receiver.deliveries if d.status == 503]
    assert sorted(d.path for d in failed) == ["/central", "/hook"]
    assert {d.body for d in failed} == {hook.body, central.body}


def test_outage_and_sigkill_lose_nothing_and_deliver_each_test_once(tmp_path):
    """The portal hangs, then is down; the daemon is killed in between; every test arrives once."""
    port = free_ports(1)[0]
    hanging = socket.create_server(("127.0.0.1", port), backlog=16)  # accepts nothing: requests hang
    config = (f"webhook_url=http://127.0.0.1:{port}/hook\nwebhook_secret={SECRET}\n"
              f"telemetry_api_key={KEY}\n{FAST_RETRIES}{HIGH_LIMITS}")
    daemon = start_daemon(tmp_path, config_text=config)
    receiver = None
    try:
        submitted = []
        for _ in range(6):
            started = time.monotonic()
            status, result = complete_test(daemon)
            assert status == 200 and time.monotonic() - started < 2.0  # the hanging portal delays no one
            submitted.append(result["test_id"])
        daemon.process.kill()
        daemon.process.wait()
        hanging.close()  # now the portal is down: connections are refused

        daemon = start_daemon(tmp_path, config_text=config)
        assert outbox_depth(daemon)["webhook"] == len(submitted)
        time.sleep(1.0)
        receiver = Receiver(port)
        assert wait_until(lambda: outbox_depth(daemon).get("webhook") == 0, timeout=20)
        time.sleep(0.5)  # several more outbox ticks: nothing may be sent again
        delivered = Counter(json.loads(d.body)["test_id"] for d in receiver.accepted("/hook"))
        assert delivered == Counter(submitted)
        assert all(valid_signature(d) for d in receiver.deliveries)
    finally:
        daemon.stop()
        hanging.close()
        if receiver:
            receiver.close()
