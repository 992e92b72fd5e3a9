"""Hostile bytes against a live daemon's main port, load port, probe port and a persona port.

What an operator would notice is asserted: every bad connection gets a clear
status (4xx, or the WebSocket close code that names the violation) or is
closed, none is held open past its deadline, the daemon and its children
stay up with the same pids (nothing crashed and was restarted), nothing is
logged as a traceback, and a customer's test still completes afterwards.
The bytes are written on raw sockets, because no well-behaved client library
would send them.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from daemon import start_daemon
from lqos.load.limits import LoadLimits
from lqos.personas.protocol import MAX_UPSTREAM_MESSAGE_BYTES
from lqos.probe.server import MAX_PROBE_BYTES
from wire import frame_bytes, send_upgrade

CLI = Path(sys.executable).parent / "lqos-bufferbloat-test"
HEAD_SECONDS = 3  # the main port's http_request_head_seconds in this module's daemon
PROBE_HEAD_SECONDS = 10  # lqos.probe.server.HEAD_SECONDS
PERSONA_HANDSHAKE_SECONDS = 5  # the persona factory's openHandshakeTimeout
ANSWER_TIMEOUT = 15.0  # generous: two cores, other suites running
PERSONA = "gaming"

# RFC 6455 close codes the server must name.
PROTOCOL_ERROR = 1002
INVALID_PAYLOAD = 1007
MESSAGE_TOO_BIG = 1009
CLOSED_WITHOUT_CODE = None


@pytest.fixture(scope="module")
def hostile_target(tmp_path_factory):
    """A daemon of its own, with a short request-head deadline, and its pids at start."""
    running = start_daemon(tmp_path_factory.mktemp("hostile"),
                           config_text=f"http_request_head_seconds={HEAD_SECONDS}\n"
                                       "max_concurrent_tests_per_ip=1000\n"
                                       "max_tests_per_hour_per_ip=100000\n")
    running.pids_at_start = {"main": running.process.pid, **running.child_pids()}
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def still_up_with_the_same_processes(hostile_target):
    """After every test: health is 200 and no process was restarted (a crash would change a pid)."""
    yield
    assert hostile_target.process.poll() is None, hostile_target.log()
    status, body = hostile_target.health()
    assert status == 200, body
    assert {"main": hostile_target.process.pid, **hostile_target.child_pids()} == hostile_target.pids_at_start


def port_of(daemon, target: str | int) -> int:
    """A port by the role that listens there ("main", "load", "probe", a persona), or the number itself."""
    if isinstance(target, int):
        return target
    return daemon.port if target == "main" else daemon.child_ports[target]


# --- raw HTTP ---


def connect(daemon, target: str | int, timeout: float = ANSWER_TIMEOUT) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port_of(daemon, target)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket) -> tuple[bytes, str]:
    """Everything the server sends, and how it ended: "eof", "reset" or "timeout" (still open)."""
    received = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return received, "eof"
            received += chunk
    except ConnectionResetError:
        return received, "reset"
    except socket.timeout:
        return received, "timeout"


def answer_to(daemon, target: str | int, data: bytes) -> tuple[int | None, str]:
    """Send *data*, read to the close: the HTTP status (None if there was none) and how it ended.

    A server that refuses a large head closes while the rest is still in
    flight; the kernel then resets the connection and may discard the answer,
    so "closed without a status" is a legitimate outcome for large inputs.
    """
    sock = connect(daemon, target)
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received, ended = read_until_closed(sock)
    finally:
        sock.close()
    status = None
    if received.startswith(b"HTTP/1.1 "):
        status = int(received.split(b" ", 2)[1])
    return status, ended


def refused(status: int | None, ended: str) -> bool:
    """A client error answered (505 is the one right answer to an unknown HTTP version), or a close."""
    if ended == "timeout":
        return False
    return status is None or 400 <= status < 500 or status == 505


MALFORMED_HEADS = {
    "binary garbage": b"\x00\x01\x02\xff garbage\r\n\r\n",
    "request line without target": b"GET\r\n\r\n",
    "unknown HTTP version": b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    "100 kB request line": b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "1 MiB header": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n",
    "10k headers": b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)) + b"\r\n",
    "header without colon": b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    "negative content length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "bad chunk size": b"POST /api/tests HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}


HTTP_PORTS = ["main", "load", "probe", PERSONA]


@pytest.mark.parametrize("target", HTTP_PORTS)
@pytest.mark.parametrize("case", list(MALFORMED_HEADS))
def test_malformed_request_head_is_refused_or_closed(hostile_target, target, case):
    status, ended = answer_to(hostile_target, target, MALFORMED_HEADS[case])
    assert refused(status, ended), (status, ended)


@pytest.mark.parametrize("target", HTTP_PORTS)
def test_header_over_the_head_limit_is_refused_at_once(hostile_target, target):
    """A 32 KiB header line arrives in one read, so nothing is left unread to reset the answer:
    the server answers a 4xx, or (Twisted, for a single over-long line) closes in order.

    (Before the persona ports bounded their handshake they buffered any amount
    of it, and answered a large plain GET with Autobahn's 200 status page.)
    """
    head = b"GET /ws/virtual-household/x HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (32 * 1024) + b"\r\n\r\n"
    status, ended = answer_to(hostile_target, target, head)
    assert (status is not None and 400 <= status < 500) or (status is None and ended == "eof"), (status, ended)


def test_probe_refuses_a_request_body_instead_of_spooling_it(hostile_target):
    """Twisted would write any body to a temporary file; the probe answers 413 before reading one."""
    sock = connect(hostile_target, "probe")
    try:
        sock.sendall(b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n" + b"z" * 4096)
        received, ended = read_until_closed(sock)
    finally:
        sock.close()
    assert received.startswith(b"HTTP/1.1 413 "), (received[:100], ended)
    assert json.loads(received.split(b"\r\n\r\n", 1)[1]) == {"error": "the probe takes no request body"}


@pytest.mark.parametrize("target, path", [("probe", "/ws/probe"), (PERSONA, "/"), (PERSONA, "/ws/virtual-household/x")])
def test_websocket_ports_are_no_open_redirect(hostile_target, target, path):
    """Autobahn's status page would 303 to any ?redirect= URL, on the operator's domain."""
    request = f"GET {path}?redirect=https%3A%2F%2Fevil.example%2F HTTP/1.1\r\nHost: x\r\n\r\n"
    status, ended = answer_to(hostile_target, target, request.encode())
    assert status == 426, (status, ended)


@pytest.mark.parametrize("request_head", [
    b"GET /r/%ff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /app.js%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: \xff\r\nConnection: close\r\n\r\n",
])
@pytest.mark.parametrize("target", ["main", "load"])
def test_unroutable_url_gets_a_json_400_and_no_traceback(hostile_target, target, request_head):
    """Klein logs a traceback for a non-UTF-8 path or Host; twisted.web.static answers a NUL with 500.

    (A load worker's traceback would reach the daemon's log through the
    supervisor a moment later: the module's last test reads the whole log.)
    """
    tracebacks_before = hostile_target.log().count("Traceback")
    sock = connect(hostile_target, target)
    try:
        sock.sendall(request_head)
        received, ended = read_until_closed(sock)
    finally:
        sock.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), (received[:200], ended)
    assert ended == "eof", ended
    assert "error" in json.loads(body)
    assert hostile_target.log().count("Traceback") == tracebacks_before


def trickle(daemon, target: str, interval: float, most_seconds: float, outcome: dict) -> None:
    """Send a request head a byte at a time; record how long until the server closed it."""
    sock = connect(daemon, target, timeout=5)
    head = b"GET /ws/probe HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
    started = time.monotonic()
    try:
        for byte in head:
            sock.send(bytes([byte]))
            time.sleep(interval)
            if time.monotonic() - started > most_seconds:
                outcome[target] = None  # still open
                return
        outcome[target] = None
    except OSError:
        outcome[target] = time.monotonic() - started
    finally:
        sock.close()


def test_slowloris_is_cut_at_each_ports_head_deadline(hostile_target):
    """A head trickled byte by byte resets any idle timeout; only a deadline ends it."""
    deadlines = {"main": HEAD_SECONDS, "load": HEAD_SECONDS, "probe": PROBE_HEAD_SECONDS,
                 PERSONA: PERSONA_HANDSHAKE_SECONDS}
    outcome: dict[str, float | None] = {}
    threads = [threading.Thread(target=trickle, args=(hostile_target, target, 0.2, deadline + 20, outcome))
               for target, deadline in deadlines.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for target, deadline in deadlines.items():
        assert outcome[target] is not None, f"{target}: a trickled head was held open past {deadline + 20} s"
        assert outcome[target] >= deadline / 2, (target, outcome[target])  # the deadline, not a hasty cut


# --- raw WebSocket ---


class RawWebSocket:
    """A WebSocket client that frames whatever it is told to, valid or not."""

    def __init__(self, sock: socket.socket, leftover: bytes):
        self.sock = sock
        self.buffer = leftover

    def send_frame(self, opcode: int, payload: bytes, masked: bool = True, fin: bool = True,
                   rsv: int = 0, declared_length: int | None = None) -> None:
        self.send_raw(frame_bytes(opcode, payload, masked, fin, rsv, declared_length))

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _read(self, count: int) -> bytes | None:
        while len(self.buffer) < count:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def next_frame(self) -> tuple[int, bytes] | None:
        """The next frame from the server (unmasked), or None at the end of the connection."""
        head = self._read(2)
        if head is None:
            return None
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._read(8))[0]
        payload = self._read(length)
        return None if payload is None else (opcode, payload)

    def next_message(self) -> bytes:
        opcode, payload = self.next_frame()
        assert opcode in (1, 2), opcode
        return payload

    def close_code(self) -> int | None:
        """Skip data frames until the server's close frame; its code (None: closed without one)."""
        while True:
            frame = self.next_frame()
            if frame is None:
                return CLOSED_WITHOUT_CODE
            opcode, payload = frame
            if opcode == 8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else CLOSED_WITHOUT_CODE

    def close(self) -> None:
        self.sock.close()


def upgrade(daemon, port: int, path: str, version: bytes = b"13") -> tuple[int, RawWebSocket]:
    """The status of a WebSocket upgrade of *path* on *port*, and the socket (open on 101)."""
    sock = connect(daemon, port)
    head, leftover = send_upgrade(sock, path.encode(), version)
    return int(head.split(b" ", 2)[1]), RawWebSocket(sock, leftover)


WEBSOCKETS = ["bulk", "probe", PERSONA]  # /ws/bulk-download, /ws/probe, /ws/virtual-household/...


def websocket_endpoint(daemon, kind: str) -> tuple[int, str]:
    """Port and path of a WebSocket that upgrades, with a fresh test's token where one is needed."""
    if kind == "probe":
        return daemon.child_ports["probe"], "/ws/probe"
    mode = "single_user" if kind == "bulk" else "virtual_household"
    status, session = daemon.post_json("/api/tests", {"mode": mode, "schedule": "short"})
    assert status == 201, session
    if kind == "bulk":
        url = urlsplit(session["bulk_ws_url"])
    else:
        url = urlsplit(next(persona["url"] for persona in session["personas"] if persona["name"] == kind))
    return url.port, f"{url.path}?{url.query}"


def open_websocket(daemon, kind: str) -> RawWebSocket:
    status, ws = upgrade(daemon, *websocket_endpoint(daemon, kind))
    assert status == 101
    if kind == PERSONA:
        assert json.loads(ws.next_message())["type"] == "hello"
    return ws


BAD_HANDSHAKES = {
    # name: (request, statuses that say what is wrong)
    "no Sec-WebSocket-Key": (b"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Version: 13\r\n\r\n", range(400, 500)),
    "unsupported version": (b"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\n\r\n",
                            range(400, 500)),
    "upgrade to something else": (b"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
                                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                                  range(400, 500)),
    "no Upgrade header": (b"GET {path} HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          b"Sec-WebSocket-Version: 13\r\n\r\n", range(400, 500)),
}


@pytest.mark.parametrize("kind", WEBSOCKETS)
@pytest.mark.parametrize("case", list(BAD_HANDSHAKES))
def test_bad_websocket_handshake_gets_a_client_error(hostile_target, kind, case):
    request, statuses = BAD_HANDSHAKES[case]
    port, path = websocket_endpoint(hostile_target, kind)
    status, ended = answer_to(hostile_target, port, request.replace(b"{path}", path.encode()))
    assert status in statuses, (status, ended)


@pytest.mark.parametrize("kind", ["bulk", PERSONA])
def test_websocket_without_a_valid_token_is_forbidden(hostile_target, kind):
    port, path = websocket_endpoint(hostile_target, kind)
    status, ws = upgrade(hostile_target, port, path.replace("token=", "token=forged"))
    ws.close()
    assert status in (401, 403)


FRAME_VIOLATIONS = {
    # name: (what to send, the close code that names it)
    "unmasked client frame": (lambda ws: ws.send_frame(0x1, b'{"seq": 1, "t": 1}', masked=False), PROTOCOL_ERROR),
    "reserved bits set": (lambda ws: ws.send_frame(0x1, b'{"seq": 1, "t": 1}', rsv=0b111), PROTOCOL_ERROR),
    "reserved opcode": (lambda ws: ws.send_frame(0x3, b"x"), PROTOCOL_ERROR),
    "fragmented ping": (lambda ws: ws.send_frame(0x9, b"x", fin=False), PROTOCOL_ERROR),
    "control frame over 125 bytes": (lambda ws: ws.send_frame(0x9, b"x" * 200), PROTOCOL_ERROR),
    "continuation with nothing to continue": (lambda ws: ws.send_frame(0x0, b"x"), PROTOCOL_ERROR),
    "invalid UTF-8 in a text frame": (lambda ws: ws.send_frame(0x1, b'{"seq": 1, "t": "\xc3\x28\xff"}'),
                                      INVALID_PAYLOAD),
    "frame declaring 1 GiB": (lambda ws: ws.send_frame(0x2, b"\x00" * 1024, declared_length=1 << 30),
                              MESSAGE_TOO_BIG),
    "message over the size bound in small frames": ("fragments", MESSAGE_TOO_BIG),
}
# The most a client message may hold, per WebSocket.
MESSAGE_BOUNDS = {"bulk": LoadLimits().client_message_bytes, "probe": MAX_PROBE_BYTES,
                  PERSONA: MAX_UPSTREAM_MESSAGE_BYTES}


def send_fragments_past_the_bound(ws: RawWebSocket, bound: int) -> None:
    """Frames each within the frame bound, together one message over the message bound."""
    size = min(bound // 2 + 1, 64 * 1024)
    for index in range(bound // size + 1):
        ws.send_frame(0x2 if index == 0 else 0x0, b"\x00" * size, fin=False)


@pytest.mark.parametrize("kind", WEBSOCKETS)
@pytest.mark.parametrize("case", list(FRAME_VIOLATIONS))
def test_websocket_frame_violation_is_closed_with_the_code_that_names_it(hostile_target, kind, case):
    send, expected_code = FRAME_VIOLATIONS[case]
    ws = open_websocket(hostile_target, kind)
    try:
        if send == "fragments":
            send_fragments_past_the_bound(ws, MESSAGE_BOUNDS[kind])
        else:
            send(ws)
        code = ws.close_code()
    finally:
        ws.close()
    assert code == expected_code


@pytest.mark.parametrize("kind", WEBSOCKETS)
def test_binary_garbage_after_the_upgrade_ends_the_connection(hostile_target, kind):
    ws = open_websocket(hostile_target, kind)
    try:
        ws.send_raw(bytes(range(256)) * 64)  # 0x00 0x01 ...: frames of every kind of wrong
        code = ws.close_code()
    finally:
        ws.close()
    assert code in (PROTOCOL_ERROR, INVALID_PAYLOAD, MESSAGE_TOO_BIG, CLOSED_WITHOUT_CODE, 4400)


def reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN, as a crashed client or a middlebox does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("kind", WEBSOCKETS)
def test_reset_in_the_middle_of_a_frame_or_a_head_leaves_the_port_serving(hostile_target, kind):
    for _ in range(10):
        ws = open_websocket(hostile_target, kind)
        ws.send_frame(0x2, b"\x00" * 1000, declared_length=60_000)  # promises more than it sends
        port = ws.sock.getpeername()[1]
        reset(ws.sock)
        sock = connect(hostile_target, port)
        sock.sendall(b"GET /ws/probe HTTP/1.1\r\nHost: x\r\nUpgr")
        reset(sock)
    time.sleep(0.5)  # let the server see the resets
    ws = open_websocket(hostile_target, kind)  # the port still upgrades and answers
    try:
        if kind == "probe":
            ws.send_frame(0x1, b'{"seq": 7, "t": 1.5}')
            assert json.loads(ws.next_message()) == {"seq": 7, "t": 1.5}
        elif kind == PERSONA:
            ws.send_frame(0x1, b'{"type": "ping", "seq": 7, "t": 1.5}')
            assert json.loads(ws.next_message()) == {"type": "pong", "seq": 7, "t": 1.5}
        else:
            assert len(ws.next_message()) > 0  # the bulk stream flows
    finally:
        ws.close()


def play_for_a_second(ws: RawWebSocket) -> int:
    """Ask a persona session for one second of load; the downstream bytes before its "done"."""
    ws.send_frame(0x1, b'{"type": "start", "seconds": 1}')
    received = 0
    while True:
        frame = ws.next_frame()
        assert frame is not None, "the session ended before its load was done"
        opcode, payload = frame
        if opcode == 2:
            received += len(payload)
        elif opcode == 1 and json.loads(payload)["type"] == "done":
            return received


def test_a_household_client_that_misbehaves_mid_load_does_not_stop_the_persona_for_others(hostile_target):
    """The server closes on the bad message and waits for the client's close frame, which never
    comes; while it waits, the persona's shared tick must skip that session, not fail on it.
    (It once failed, and the persona sent nothing more to any household until restarted.)"""
    rude = open_websocket(hostile_target, PERSONA)
    rude.send_frame(0x1, b'{"type": "start", "seconds": 5}')
    assert rude.next_frame() is not None  # the load has started
    rude.send_frame(0x1, b'{"type": "no such message"}')
    assert rude.close_code() == 4400
    time.sleep(1.5)  # ticks go by while the server waits for the close frame (closeHandshakeTimeout 1 s)
    rude.close()
    polite = open_websocket(hostile_target, PERSONA)
    try:
        assert play_for_a_second(polite) > 100_000  # gaming plays 1.5 Mbit/s
    finally:
        polite.close()


@pytest.mark.parametrize("kind", ["probe", PERSONA])
def test_a_message_after_the_one_that_closed_the_connection_is_not_answered_or_logged_as_a_crash(
        hostile_target, kind):
    """Two messages in one read: the first makes the server close, the second must be ignored."""
    tracebacks_before = hostile_target.log().count("Traceback")
    ws = open_websocket(hostile_target, kind)
    try:
        valid = b'{"seq": 1, "t": 1}' if kind == "probe" else b'{"type": "ping", "seq": 1, "t": 1}'
        ws.send_raw(frame_bytes(0x2 if kind == "probe" else 0x1, b"\x00\x01" if kind == "probe" else b"[]")
                    + frame_bytes(0x1, valid) * 3)
        assert ws.close_code() == 4400
    finally:
        ws.close()
    time.sleep(1.0)  # a child's traceback reaches the daemon's log through the supervisor
    assert hostile_target.log().count("Traceback") == tracebacks_before


def test_after_all_of_it_a_customer_test_completes_and_nothing_was_logged_as_a_crash(hostile_target):
    """Runs last in the module: the whole of the above went through this daemon."""
    done = subprocess.run([str(CLI), hostile_target.url, "--schedule", "quick", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"]["overall"]["grade"]
    log = hostile_target.log()
    assert "Traceback" not in log and "Unhandled" not in log, log[-5000:]
