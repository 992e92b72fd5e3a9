"""The load endpoints on a real daemon over loopback: streams, counts, caps, refusals."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import zlib
from io import BytesIO

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from daemon import SINGLE_USER_ONLY, start_daemon, wait_until
from lqos.load.admission import LoadRefused, StreamSlot, open_stream
from lqos.load.limits import KiB, LoadLimits, MiB
from lqos.load.tickets import LoadSession
from lqos.load.upload import BoundedBody, UploadSink

LIMITS = LoadLimits()
RELAXED_LIMITS = "max_concurrent_tests_per_ip=100\nmax_tests_per_hour_per_ip=1000\n" + SINGLE_USER_ONLY
SOCKET_TIMEOUT = 10.0
LOAD_PATHS = ("/download", "/upload", "/ws/")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_daemon(tmp_path_factory.mktemp("load"), config_text=RELAXED_LIMITS)
    yield running
    running.stop()
    # A traceback through the load code, or a producer left registered, is a bug here.
    for sign_of_a_bug in ("lqos/load/", "was not unregistered"):
        assert sign_of_a_bug not in running.log()


@pytest.fixture
def session(server) -> dict:
    """A fresh test session, so each test's counters start at zero."""
    status, body = request(server, "POST", "/api/tests", b'{"mode":"single_user"}')
    assert status == 201, body
    return json.loads(body)


# --- small clients ---


def load_port(server) -> int:
    """The port every load worker listens on."""
    return server.child_ports["load"]


def port_for(server, path: str) -> int:
    """The load paths are served by the load workers, everything else by the main process."""
    return load_port(server) if path.startswith(LOAD_PATHS) else server.port


def request(server, method: str, path: str, body=None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port_for(server, path), timeout=SOCKET_TIMEOUT)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def query(session: dict, token: str | None = None) -> str:
    """The signed query of the session's load URLs, or with another *token*."""
    signed = "?" + session["download_url"].partition("?")[2]
    if token is None:
        return signed
    return signed.partition("&token=")[0] + f"&token={token}"


def eventually(check, timeout: float = 5.0) -> bool:
    """Load workers report their counts every few ms: wait for a report to arrive."""
    return wait_until(check, timeout=timeout)


def counted(server, session: dict, **expected: int) -> bool:
    """True once the progress endpoint shows *expected* (some of upload_bytes, download_bytes)."""
    return eventually(lambda: all(progress(server, session)[key] == value for key, value in expected.items()))


def progress(server, session: dict) -> dict:
    status, body = request(server, "GET", f"/api/tests/{session['test_id']}/progress?token={session['token']}")
    assert status == 200, body
    return json.loads(body)


def raw_connection(server, receive_buffer: int | None = None, to_load: bool = True) -> socket.socket:
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(SOCKET_TIMEOUT)
    sock.connect(("127.0.0.1", load_port(server) if to_load else server.port))
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    """Status, headers and Content-Length body of the next response on *sock*."""
    reader = sock.makefile("rb")
    status = int(reader.readline().split()[1])
    headers = {}
    for line in iter(reader.readline, b"\r\n"):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, reader.read(int(headers.get("content-length", 0)))


def post_head(path: str, length: int | None, extra: str = "") -> bytes:
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    return f"POST {path} HTTP/1.1\r\nHost: localhost\r\n{framing}\r\n{extra}\r\n".encode()


def send_chunks_until_answered(sock: socket.socket, chunk: bytes, most: int) -> tuple[int, dict, bytes]:
    """Send chunked data until the server answers (or *most* bytes are sent); return the answer."""
    answer = {}
    reader = threading.Thread(target=lambda: answer.update(response=read_response(sock)), daemon=True)
    reader.start()
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    sent = 0
    try:
        while sent < most and reader.is_alive():
            sock.sendall(framed)
            sent += len(chunk)
    except OSError:
        pass  # the server closed after answering; the reader has the answer
    reader.join(SOCKET_TIMEOUT)
    return answer["response"]


def vm_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * KiB
    raise AssertionError("no VmRSS")


def load_workers_rss_bytes(server) -> int:
    return sum(vm_rss_bytes(pid) for role, pid in server.child_pids().items() if role.startswith("load-"))


def settled_download_bytes(server, session: dict, read_progress=progress, timeout: float = 5.0) -> int:
    """The download counter once it has stopped moving for 0.2 s."""
    deadline = time.monotonic() + timeout
    previous = read_progress(server, session)["download_bytes"]
    while time.monotonic() < deadline:
        time.sleep(0.2)
        current = read_progress(server, session)["download_bytes"]
        if current == previous:
            return current
        previous = current
    raise AssertionError("the download never paused")


def assert_healthy(server) -> None:
    assert server.health()[0] == 200


# --- download ---


def test_download_streams_incompressible_bytes_and_counts_them(server, session):
    connection = http.client.HTTPConnection("127.0.0.1", load_port(server), timeout=SOCKET_TIMEOUT)
    connection.request("GET", "/download" + query(session) + "&seconds=0.5")
    response = connection.getresponse()
    body = response.read()
    connection.close()

    assert response.status == 200
    assert response.getheader("content-type") == "application/octet-stream"
    assert response.getheader("cache-control") == "no-store"
    assert response.getheader("transfer-encoding") == "chunked"
    assert len(body) > 10 * MiB
    sample = body[: 1 * MiB]
    assert len(zlib.compress(sample)) > 0.99 * len(sample)
    assert response.getheader("access-control-allow-origin") == "*"  # the page is on another port
    assert counted(server, session, download_bytes=len(body), upload_bytes=0)


def test_download_ends_after_the_bytes_asked_for(server, session):
    status, body = request(server, "GET", "/download" + query(session) + "&bytes=1000000")
    assert status == 200 and len(body) == 1_000_000


@pytest.mark.parametrize("option", ["seconds=0", "seconds=31", "seconds=soon", "bytes=0"])
def test_download_options_out_of_range_are_400(server, session, option):
    status, body = request(server, "GET", "/download" + query(session) + "&" + option)
    assert status == 400 and "error" in json.loads(body)


def test_client_that_stops_reading_pauses_the_stream_and_costs_no_memory(server, session):
    request(server, "GET", "/download" + query(session) + "&bytes=10000000")  # warm up allocations
    rss_before = load_workers_rss_bytes(server)
    sock = raw_connection(server, receive_buffer=64 * KiB)
    sock.sendall(f"GET /download{query(session)}&seconds=20 HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    assert len(sock.recv(64 * KiB)) > 0
    paused_at = settled_download_bytes(server, session)  # the kernel buffers fill, the producer pauses
    time.sleep(1.0)
    assert progress(server, session)["download_bytes"] == paused_at
    assert load_workers_rss_bytes(server) - rss_before < 8 * MiB

    sock.close()  # the client goes away: nothing more is written
    time.sleep(0.3)
    assert progress(server, session)["download_bytes"] == paused_at
    assert_healthy(server)


def test_client_gone_mid_stream_stops_the_writing(server, session):
    sock = raw_connection(server)
    sock.sendall(f"GET /download{query(session)}&seconds=20 HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    for _ in range(50):
        sock.recv(256 * KiB)
    sock.close()
    stopped_at = settled_download_bytes(server, session)
    time.sleep(0.5)
    assert progress(server, session)["download_bytes"] == stopped_at
    assert_healthy(server)


# --- upload ---


def test_upload_of_5_mb_is_counted_and_acknowledged(server, session):
    status, body = request(server, "POST", "/upload" + query(session), body=b"\x5a" * 5_000_000)
    assert status == 200
    assert json.loads(body) == {"received": 5_000_000}
    assert counted(server, session, upload_bytes=5_000_000)


def test_chunked_upload_is_counted(server, session):
    pieces = (b"\xa5" * 1_000_000 for _ in range(3))  # no length: http.client sends it chunked
    status, body = request(server, "POST", "/upload" + query(session), body=pieces)
    assert (status, json.loads(body)) == (200, {"received": 3_000_000})
    assert counted(server, session, upload_bytes=3_000_000)


def test_upload_declaring_more_than_the_cap_is_refused_before_it_is_read(server, session):
    sock = raw_connection(server)
    too_big = LIMITS.upload_bytes_per_request + 1
    sock.sendall(post_head("/upload" + query(session), too_big, "Expect: 100-continue\r\n"))
    status, headers, body = read_response(sock)  # answered with no body byte sent, and no "100 Continue"
    sock.close()
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"].startswith("an upload body may be at most 256 MiB")
    assert progress(server, session)["upload_bytes"] == 0
    assert_healthy(server)


def test_chunked_upload_past_the_cap_is_cut_off_with_413(server, session):
    sock = raw_connection(server)
    sock.sendall(post_head("/upload" + query(session), None))
    status, _, body = send_chunks_until_answered(sock, b"\x00" * MiB, most=LIMITS.upload_bytes_per_request * 2)
    sock.close()
    answer = json.loads(body)
    assert status == 413
    assert answer["received"] == LIMITS.upload_bytes_per_request
    assert counted(server, session, upload_bytes=LIMITS.upload_bytes_per_request)
    assert_healthy(server)


def test_upload_to_the_wrong_method_is_not_counted(server, session):
    status, _ = request(server, "PUT", "/upload" + query(session), body=b"x" * 1000)
    assert status == 405
    assert progress(server, session)["upload_bytes"] == 0


def test_the_page_may_preflight_and_read_the_load_across_origins(server, session):
    """The page comes from the main port; the load port is another origin to the browser."""
    connection = http.client.HTTPConnection("127.0.0.1", load_port(server), timeout=SOCKET_TIMEOUT)
    try:
        connection.request("OPTIONS", "/upload" + query(session), headers={
            "Origin": f"http://127.0.0.1:{server.port}", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.status == 204
    assert response.getheader("access-control-allow-origin") == "*"
    assert "POST" in response.getheader("access-control-allow-methods")
    assert response.getheader("access-control-allow-headers") == "content-type"
    assert progress(server, session) == {"upload_bytes": 0, "download_bytes": 0}


def test_the_main_port_serves_no_load(server, session):
    """The load is the workers' alone: the main process, which answers the API, never carries it."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=SOCKET_TIMEOUT)
    try:
        connection.request("GET", "/download" + query(session))
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.status == 404


# --- every other path ---


def test_body_over_1_mib_to_another_path_is_413_unread(server):
    sock = raw_connection(server, to_load=False)
    sock.sendall(post_head("/api/tests", 2 * MiB))
    status, headers, body = read_response(sock)
    sock.close()
    assert status == 413
    assert headers["connection"] == "close"
    assert json.loads(body) == {"error": "a request body may be at most 1 MiB"}
    assert_healthy(server)


def test_chunked_body_over_1_mib_to_another_path_is_cut_off(server):
    sock = raw_connection(server, to_load=False)
    sock.sendall(post_head("/api/sponsor", None))
    status, _, body = send_chunks_until_answered(sock, b"{" * (256 * KiB), most=4 * MiB)
    sock.close()
    assert status == 413 and "1 MiB" in json.loads(body)["error"]
    assert_healthy(server)


def test_small_bodies_still_reach_their_routes(server):
    status, body = request(server, "POST", "/api/tests", b'{"mode":"nonsense"}')
    assert status == 400 and "mode" in json.loads(body)["error"]


# --- WebSocket ---


def test_bulk_websocket_sends_binary_messages_and_counts_them(server, session):
    url = f"ws://127.0.0.1:{load_port(server)}/ws/bulk-download{query(session)}&seconds=0.5&message_bytes=65536"
    received = []
    with connect(url, open_timeout=5, max_size=2 * MiB) as ws:
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None  # no compression
        for message in ws:
            received.append(message)
        assert ws.close_code == 1000
    assert received and all(isinstance(m, bytes) and len(m) == 64 * KiB for m in received)
    assert counted(server, session, download_bytes=sum(map(len, received)))


def test_bulk_websocket_stops_when_the_client_says_so(server, session):
    url = f"ws://127.0.0.1:{load_port(server)}/ws/bulk-download{query(session)}"
    with connect(url, open_timeout=5, max_size=2 * MiB) as ws:
        ws.recv(timeout=5)
        ws.send("stop")
        for _ in ws:
            pass
        assert ws.close_code == 1000 and ws.close_reason == "stopped by the client"


def test_plain_get_of_the_websocket_is_426_and_frees_its_stream_slot(server, session):
    for _ in range(LIMITS.streams_per_test + 2):
        status, _ = request(server, "GET", "/ws/bulk-download" + query(session))
        assert status == 426
    url = f"ws://127.0.0.1:{load_port(server)}/ws/bulk-download{query(session)}&seconds=0.1"
    with connect(url, open_timeout=5, max_size=2 * MiB) as ws:
        assert ws.recv(timeout=5)


# --- TLS: the producer chain runs through TLSMemoryBIOProtocol ---


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, certificates):
    running = start_daemon(tmp_path_factory.mktemp("load-tls"), config_text=RELAXED_LIMITS, tls=certificates)
    yield running
    running.stop()


def test_tls_streams_count_pause_and_stop(tls_server):
    server = tls_server
    session = json.loads(urlopen_tls(server, "/api/tests", b'{"mode":"single_user"}'))
    assert json.loads(urlopen_tls(server, "/upload" + query(session), b"u" * 5_000_000)) == {"received": 5_000_000}
    websocket_url = f"wss://127.0.0.1:{load_port(server)}/ws/bulk-download{query(session)}&seconds=0.3"
    with connect(websocket_url, ssl=server._ssl_context, open_timeout=5, max_size=2 * MiB) as ws:
        websocket_bytes = sum(len(message) for message in ws)

    sock = server._ssl_context.wrap_socket(raw_connection(server, receive_buffer=64 * KiB),
                                           server_hostname="localhost")
    sock.sendall(f"GET /download{query(session)}&seconds=20 HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    assert sock.recv(16 * KiB)
    paused_at = settled_download_bytes(server, session, tls_progress)
    time.sleep(0.5)
    assert tls_progress(server, session) == {"upload_bytes": 5_000_000, "download_bytes": paused_at}
    sock.close()
    assert websocket_bytes > 0 and paused_at > websocket_bytes


def urlopen_tls(server, path: str, body: bytes | None = None) -> bytes:
    connection = http.client.HTTPSConnection("127.0.0.1", port_for(server, path), timeout=SOCKET_TIMEOUT,
                                             context=server._ssl_context)
    try:
        connection.request("POST" if body is not None else "GET", path, body=body)
        return connection.getresponse().read()
    finally:
        connection.close()


def tls_progress(server, session: dict) -> dict:
    return json.loads(urlopen_tls(server, f"/api/tests/{session['test_id']}/progress?token={session['token']}"))


# --- refusals ---


@pytest.mark.parametrize("token", ["", "forged", None], ids=["empty", "wrong", "missing"])
def test_bad_or_missing_token_is_403_json_and_counts_nothing(server, session, token):
    suffix = f"?test={session['test_id']}" if token is None else query(session, token)

    status, body = request(server, "GET", "/download" + suffix)
    assert status == 403 and "error" in json.loads(body)

    sock = raw_connection(server)
    sock.sendall(post_head("/upload" + suffix, 100 * MiB))  # refused before any body byte is sent
    status, _, body = read_response(sock)
    sock.close()
    assert status == 403 and "error" in json.loads(body)

    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{load_port(server)}/ws/bulk-download{suffix}", open_timeout=5)
    assert refused.value.response.status_code == 403

    progress_query = "" if token is None else f"?token={token}"
    status, body = request(server, "GET", f"/api/tests/{session['test_id']}/progress{progress_query}")
    assert status == 403 and "error" in json.loads(body)
    assert progress(server, session) == {"upload_bytes": 0, "download_bytes": 0}


# --- the sinks, without a network ---


def small_session(until: float = 20.0) -> LoadSession:
    return LoadSession("t", until)


def test_upload_sink_shares_the_per_test_cap_between_parallel_uploads():
    limits = LoadLimits(upload_bytes_per_request=100, upload_bytes_per_test=150)
    session = small_session()
    first = UploadSink(session, StreamSlot(session, 2), limits)
    second = UploadSink(session, StreamSlot(session, 2), limits)
    first.write(b"x" * 100)
    second.write(b"x" * 50)
    with pytest.raises(LoadRefused) as refused:
        second.write(b"x")
    assert refused.value.status == 413 and refused.value.details == {"received": 50}
    with pytest.raises(LoadRefused):
        UploadSink(session, StreamSlot(session, 3), limits).check_declared_length(1)
    assert session.upload_bytes == 150


def test_stream_slots_are_bounded_and_released_once():
    session = small_session()
    slot = StreamSlot(session, 1)
    with pytest.raises(LoadRefused) as refused:
        StreamSlot(session, 1)
    assert refused.value.status == 429
    slot.release()
    slot.release()
    assert session.active_streams == 0


def test_bounded_body_keeps_up_to_its_cap():
    content = BytesIO()
    body = BoundedBody(content, 10)
    body.write(b"0123456789")
    with pytest.raises(LoadRefused):
        body.write(b"!")
    assert content.getvalue() == b"0123456789"


def test_streams_open_only_until_the_signed_time():
    session = small_session(until=20.0)
    open_stream(session, LIMITS, now=20.0).release()
    with pytest.raises(LoadRefused) as refused:
        open_stream(session, LIMITS, now=20.5)
    assert refused.value.status == 410 and session.active_streams == 0


def test_access_log_keeps_tokens_out(server):
    """Load URLs carry the test's token; the access log (a load worker's, in the daemon's log) records only the path."""
    status, _ = request(server, "GET", "/download?test=abc&until=1&token=NOT-FOR-THE-LOG")
    assert status == 403
    assert wait_until(lambda: '"GET /download HTTP/1.1" 403' in server.log(), timeout=5)
    assert "NOT-FOR-THE-LOG" not in server.log()
