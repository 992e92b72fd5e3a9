"""The networkQuality port, as the draft's real clients use it: curl, h2load and a raw h2 client.

Apple's networkQuality and goresponsiveness cannot run here.  What each test
reproduces of them is named in its docstring (issue 18 lists their habits).
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import pytest

from daemon import SINGLE_USER_ONLY, TWISTD, start_daemon

BULK_SECONDS = 3
# Loopback bulk HTTP/2 runs as fast as the cores go: these tests would starve the suite's others
# (a household test's persona rates, a TLS handshake's deadline), and the others their probes.
ALONE = pytest.mark.alone


@pytest.fixture(scope="module")
def nq(tmp_path_factory, certificates):
    running = start_daemon(tmp_path_factory.mktemp("nq"), config_text=SINGLE_USER_ONLY + f"nq_bulk_seconds={BULK_SECONDS}\n",
                           tls=certificates)
    yield running
    running.stop()


def base(daemon, host: str = "127.0.0.1") -> str:
    return f"https://{host}:{daemon.child_ports['nq']}"


def curl(*args: str, stdin=None, timeout: float = 30) -> subprocess.CompletedProcess:
    """curl's answer, its output decoded as it came (text mode would turn the headers' CRLFs into LFs)."""
    answer = subprocess.run(["curl", "-sS", "-k", *args], stdin=stdin, capture_output=True, timeout=timeout)
    answer.stdout, answer.stderr = answer.stdout.decode(), answer.stderr.decode()
    return answer


def test_the_configuration_is_served_over_http2_with_every_url_on_the_host_the_client_used(nq):
    """Both key sets: goresponsiveness reads only the *_https_* ones and rejects a URL that is not https."""
    for host in ("127.0.0.1", "localhost"):
        answer = curl("--http2", "-w", "\n%{http_version} %{content_type}", f"{base(nq, host)}/.well-known/nq")
        body, versions = answer.stdout.rsplit("\n", 1)
        assert versions == "2 application/json"
        config = json.loads(body)
        assert config["version"] == 1
        expected = {"small": "/nq/small", "large": "/nq/large", "upload": "/nq/upload"}
        urls = config["urls"]
        for key, path in (("small_https_download_url", "small"), ("large_https_download_url", "large"),
                          ("https_upload_url", "upload"), ("small_download_url", "small"),
                          ("large_download_url", "large"), ("upload_url", "upload")):
            assert urls[key] == base(nq, host) + expected[path]


def test_a_client_without_http2_is_told_the_port_speaks_only_http2(nq):
    answer = curl("--http1.1", "-w", "\n%{http_code}", f"{base(nq)}/.well-known/nq")
    assert answer.stdout.endswith("HTTP/2 only (ALPN h2), over TLS\n\n505")


def test_small_is_one_byte_and_other_paths_and_methods_are_refused_with_a_reason(nq):
    small = curl("--http2", "-D", "-", f"{base(nq)}/nq/small")
    assert small.stdout.endswith("\r\n\r\nx")
    assert "content-type: application/octet-stream" in small.stdout
    missing = curl("--http2", "-w", "\n%{http_code}", f"{base(nq)}/nq/elsewhere")
    assert missing.stdout.endswith("\n404") and "no such path" in missing.stdout
    wrong = curl("--http2", "-X", "POST", "-d", "x", "-w", "\n%{http_code}", f"{base(nq)}/nq/small")
    assert wrong.stdout.endswith("\n405") and "takes GET" in wrong.stdout


@ALONE
def test_probes_on_a_loaded_connection_are_answered_while_its_large_download_runs(nq, tmp_path):
    """goresponsiveness's self probes: small GETs as extra streams on a load connection.

    h2load opens one connection (ALPN h2), starts the large download, then
    a probe every 100 ms on the same connection; the large download is cut
    at nq_bulk_seconds.  The client's window is h2load's (1 GiB), so the
    probes wait behind whatever bulk data the server has already queued.
    """
    url = base(nq)
    script = tmp_path / "timing.txt"
    script.write_text(f"0\t{url}/nq/large\n" + "".join(f"{300 + 100 * i}\t{url}/nq/small\n" for i in range(15)))
    log = tmp_path / "requests.tsv"
    run = subprocess.run(["h2load", "-c1", "-m100", f"--timing-script-file={script}", f"--log-file={log}"],
                         capture_output=True, text=True, timeout=60)
    assert "Application protocol: h2" in run.stdout, run.stdout
    rows = [line.split("\t") for line in log.read_text().splitlines()]
    large = [row for row in rows if int(row[2]) > 1_000_000]
    probes = [row for row in rows if row not in large]
    assert len(large) == 1 and large[0][1] == "-1", rows  # reset by the server, at its time bound
    large_start, large_end = int(large[0][0]), int(large[0][0]) + int(large[0][2])
    assert BULK_SECONDS - 0.5 < (large_end - large_start) / 1e6 < BULK_SECONDS + 2
    assert len(probes) == 15 and all(row[1] == "200" for row in probes), rows
    assert all(large_start < int(row[0]) and int(row[0]) + int(row[2]) < large_end for row in probes), rows
    assert max(int(row[2]) for row in probes) < 200_000, rows  # each answered within 200 ms
    traffic = next(line for line in run.stdout.splitlines() if line.startswith("traffic:"))
    assert int(traffic.split("(")[1].split(")")[0]) > 50_000_000, traffic  # the download ran meanwhile


def test_the_large_download_streams_8_gib_uncompressed_for_as_long_as_the_client_reads(nq):
    """The reference servers' large: 8 GiB with a Content-Length, no-store, no Content-Encoding."""
    answer = curl("--http2", "-H", "Accept-Encoding: gzip, br", "-D", "/dev/stdout", "-o", "/dev/null",
                  "-m", "1", "-w", "%{size_download}", f"{base(nq)}/nq/large")
    assert answer.returncode == 28, answer.stderr  # curl's own time limit ended it, not the server
    head, size = answer.stdout.rsplit("\r\n\r\n", 1)
    assert head.startswith("HTTP/2 200")
    assert "content-length: 8589934592" in head and "cache-control: no-store" in head
    assert "content-encoding" not in head.lower()
    assert int(size) > 10_000_000


def feeder(seconds: float, blocks: int | None = None) -> subprocess.Popen:
    """A process writing 64 KiB random blocks to its stdout, *blocks* of them spread over *seconds*
    (or one every 2.5 ms, about 200 Mbit/s, for *seconds*), then closing it.

    Paced, so that the upload is not a CPU race with the suite's other tests on two cores.
    """
    code = ("import os, sys, time\nblock = os.urandom(65536)\nseconds, blocks = float(sys.argv[1]), int(sys.argv[2])\n"
            "pause = seconds / blocks if blocks else 0.0025\nend = time.monotonic() + seconds\nsent = 0\n"
            "while (sent < blocks) if blocks else (time.monotonic() < end):\n"
            "    sys.stdout.buffer.write(block)\n    sent += 1\n    time.sleep(pause)\n")
    return subprocess.Popen([sys.executable, "-c", code, str(seconds), str(blocks or 0)], stdout=subprocess.PIPE)


def test_an_endless_upload_without_length_or_type_is_taken_until_it_ends_then_answered_200(nq):
    """goresponsiveness's upload: a POST with no Content-Length and no Content-Type, for as long as it likes."""
    source = feeder(1.0, blocks=64)
    answer = curl("--http2", "-X", "POST", "-H", "Content-Type:", "-T", "-", "-w", "%{http_code} %{size_upload}",
                  f"{base(nq)}/nq/upload", stdin=source.stdout)
    source.wait()
    status, size = answer.stdout.split()
    assert answer.returncode == 0 and status == "200", answer.stderr
    assert int(size) == 64 * 65536  # every byte, then the answer


def test_an_upload_longer_than_the_bound_is_reset_not_refused_with_413(nq):
    started = time.monotonic()
    source = feeder(BULK_SECONDS + 4)
    answer = curl("--http2", "-X", "POST", "-T", "-", "-w", "%{http_code}", f"{base(nq)}/nq/upload",
                  stdin=source.stdout)
    source.kill()
    source.wait()
    assert answer.returncode != 0 and "413" not in answer.stdout
    assert BULK_SECONDS - 0.5 < time.monotonic() - started < BULK_SECONDS + 3


@ALONE
def test_too_many_large_streams_from_one_address_get_429_with_retry_after(nq, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{base(nq)}/nq/large\n" * 70)
    log = tmp_path / "requests.tsv"
    run = subprocess.run(["h2load", "-c1", "-m100", "-n70", "-i", str(urls), f"--log-file={log}"],
                         capture_output=True, text=True, timeout=60)
    statuses = sorted(line.split("\t")[1] for line in log.read_text().splitlines())
    assert statuses.count("429") == 6 and statuses.count("-1") == 64, run.stdout
    headers = curl("--http2", "-D", "-", "-o", "/dev/null", f"{base(nq)}/nq/large", "-m", "1")
    assert headers.stdout.startswith("HTTP/2 200")  # the 64 have ended: a new one is admitted


def test_opening_and_resetting_streams_in_a_loop_ends_the_connection(nq):
    """HTTP/2 "rapid reset": streams opened and cancelled at once never reach the concurrent-stream bound."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", nq.child_ports["nq"]), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        connection.initiate_connection()
        for _ in range(1000):
            stream = connection.get_next_available_stream_id()
            connection.send_headers(stream, [(":method", "GET"), (":path", "/nq/small"), (":scheme", "https"),
                                             (":authority", "127.0.0.1")], end_stream=True)
            connection.reset_stream(stream)
        tls.sendall(connection.data_to_send())
        terminated = []
        while not terminated:
            data = tls.recv(65536)
            if not data:
                break
            try:
                events = connection.receive_data(data)
            except h2.exceptions.ProtocolError:
                continue
            terminated = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
        assert terminated and terminated[0].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


# --- the CLI's RPM client (lqos/rpm/), against this server and against nghttpd ---


def run_rpm(config_url: str, cafile: str, seconds: int = 3) -> dict:
    answer = subprocess.run([str(TWISTD.parent / "lqos-bufferbloat-test"), "--rpm", config_url, "--cafile", cafile,
                             "--rpm-seconds", str(seconds), "--json"], capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


def assert_a_full_result(result: dict) -> None:
    """Both directions loaded, both kinds of probe answered, and RPM from them as the draft says."""
    assert result["download_mbps"] > 10 and result["upload_mbps"] > 10, result
    assert result["download_connections"] >= 1 and result["upload_connections"] >= 1
    assert result["probes"]["foreign"] >= 10 and result["probes"]["self"] >= 10, result
    means = result["trimmed_means_ms"]
    assert result["foreign_rpm"] == pytest.approx(60000 / ((means["tcp_f"] + means["tls_f"] + means["http_f"]) / 3))
    assert result["loaded_rpm"] == pytest.approx(60000 / means["http_l"])
    assert result["rpm"] == pytest.approx((result["foreign_rpm"] + result["loaded_rpm"]) / 2)


@ALONE
def test_the_rpm_client_measures_this_server(nq, certificates):
    assert_a_full_result(run_rpm(f"{base(nq)}/.well-known/nq", certificates[0]))


@pytest.fixture
def nghttpd(tmp_path, certificates):
    """A second, independent server of the draft: nghttp2's nghttpd serving the files the draft names."""
    from daemon import free_ports

    port = free_ports(1)[0]
    root = tmp_path / "www"
    (root / ".well-known").mkdir(parents=True)
    (root / "small").write_bytes(b"x")
    with open(root / "large", "wb") as large:
        large.truncate(8 * 1024 ** 3)  # sparse: 8 GiB of zeros that take no disk
    (root / "upload").write_bytes(b"")
    url = f"https://127.0.0.1:{port}"
    (root / ".well-known" / "nq").write_text(json.dumps({"version": 1, "urls": {
        "small_https_download_url": f"{url}/small", "large_https_download_url": f"{url}/large",
        "https_upload_url": f"{url}/upload"}}))
    server = subprocess.Popen(["nghttpd", "-d", str(root), str(port), certificates[1], certificates[0]],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@ALONE
def test_the_rpm_client_measures_another_implementation_of_the_draft(nghttpd, certificates):
    """nghttpd knows nothing of this project: only the draft's configuration and three URLs in common."""
    assert_a_full_result(run_rpm(f"{nghttpd}/.well-known/nq", certificates[0]))


def test_the_rpm_client_refuses_a_server_without_http2_in_one_line(nq, certificates):
    answer = subprocess.run([str(TWISTD.parent / "lqos-bufferbloat-test"), "--rpm", f"{nq.url}/api/health".replace("http://", "https://"),
                             "--cafile", certificates[0]], capture_output=True, text=True, timeout=60)
    assert answer.returncode == 1
    assert answer.stderr.count("\n") == 1 and "HTTP/2" in answer.stderr, answer.stderr


@pytest.mark.parametrize("argv, reason", [
    (["https://test.example", "--rpm", "https://test.example:8443/.well-known/nq"], "not both"),
    ([], "give the server's URL, or --rpm CONFIG_URL"),
    (["--rpm", "http://test.example:8443/.well-known/nq"], "is not an https:// URL"),
    (["--rpm", "https://test.example:8443/.well-known/nq", "--rpm-seconds", "600"], "from 3 to 60"),
])
def test_a_wrong_rpm_command_line_says_what_is_wrong(argv, reason):
    answer = subprocess.run([str(TWISTD.parent / "lqos-bufferbloat-test"), *argv], capture_output=True, text=True,
                            timeout=30)
    assert answer.returncode == 2 and reason in answer.stderr, answer.stderr


def test_the_server_offers_large_flow_control_windows(nq):
    """nghttp shows the server's SETTINGS and WINDOW_UPDATE frames: 16 MiB per stream and 64 MiB per
    connection, so that an upload is not held to h2's 65,535 bytes per round trip."""
    answer = subprocess.run(["nghttp", "-nv", f"{base(nq)}/nq/small"], capture_output=True, text=True, timeout=30)
    assert "[SETTINGS_INITIAL_WINDOW_SIZE(0x04):16777216]" in answer.stdout, answer.stdout
    assert "[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):100]" in answer.stdout
    assert f"(window_size_increment={64 * 1024 * 1024 - 65535})" in answer.stdout
    assert "The negotiated protocol: h2" in answer.stdout
