"""How fast the load endpoints move bytes, and what each byte costs the server.

Starts the real daemon (plaintext, then TLS with a throw-away certificate),
drives ``GET /download``, ``POST /upload`` and ``WS /ws/bulk-download`` on
loopback with parallel client processes, and prints for each: throughput,
server CPU-seconds per GB, and Gbit/s per server core.

Bytes are the server's own counters (``/api/tests/ID/progress``: written for
downloads, received for uploads) over a window that starts after the
streams are running; server CPU is the utime+stime of the main process and
every load worker, from ``/proc/PID/stat`` over the same window.  With
``--workers 1,2`` each run is repeated with that many load workers, which
shows whether throughput grows with the cores the server may use.  The clients are raw sockets
reading into or sending from one preallocated buffer, so on loopback they
cost less than the server; per-core figures do not depend on them anyway.

    .venv/bin/python bench/throughput.py [--seconds 4] [--streams 2] [--workers 0]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from urllib.parse import urlsplit
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from daemon import start_daemon  # noqa: E402

SECONDS = 1.0
KiB = 1024
MiB = 1024 * KiB
GB = 1e9
CLIENT_BUFFER_BYTES = 1 * MiB
UPLOAD_BODY_BYTES = 256 * MiB  # the server's per-request cap
WARM_UP = 1.0 * SECONDS
STREAM_SLACK = 3.0 * SECONDS  # streams outlast the window, so it never sees one end
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
RELAXED_LIMITS = "max_concurrent_tests_per_ip=1000\nmax_tests_per_hour_per_ip=100000\n"
KINDS = ("http-download", "http-upload", "ws-download")


# --- clients: one per process, started as `throughput.py client KIND ...` ---


def open_socket(port: int, ca_file: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MiB)
    if not ca_file:
        return sock
    context = ssl.create_default_context(cafile=ca_file)
    return context.wrap_socket(sock, server_hostname="localhost")


def read_until_closed(sock: socket.socket, deadline: float) -> None:
    """Read and drop until *deadline* (an ended response leaves the connection open)."""
    buffer = bytearray(CLIENT_BUFFER_BYTES)
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            if not sock.recv_into(buffer):
                return
        except TimeoutError:
            pass


def download_client(sock: socket.socket, path: str, deadline: float) -> None:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    read_until_closed(sock, deadline)


def websocket_client(sock: socket.socket, path: str, deadline: float) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    read_until_closed(sock, deadline)  # server frames are unmasked: counting bytes needs no parsing


def upload_client(sock: socket.socket, path: str, deadline: float) -> None:
    chunk = memoryview(os.urandom(CLIENT_BUFFER_BYTES))
    head = f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {UPLOAD_BODY_BYTES}\r\n\r\n".encode()
    while time.monotonic() < deadline:
        sock.sendall(head)
        for _ in range(UPLOAD_BODY_BYTES // len(chunk)):
            sock.sendall(chunk)
            if time.monotonic() >= deadline:
                return
        answer = sock.recv(4096)
        if not answer.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"upload refused: {answer[:200]!r}")


def run_client(kind: str, port: int, path: str, ca_file: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    sock = open_socket(port, ca_file)
    client = {"http-download": download_client, "http-upload": upload_client, "ws-download": websocket_client}[kind]
    try:
        client(sock, path, deadline)
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        sock.close()


# --- the measurement ---


@dataclass
class Figures:
    kind: str
    transport: str
    streams: int
    workers: int
    bytes: int
    wall_seconds: float
    cpu_seconds: float
    machine_busy_cores: float

    @property
    def gbit_per_second(self) -> float:
        return self.bytes * 8 / GB / self.wall_seconds

    @property
    def cpu_seconds_per_gb(self) -> float:
        return self.cpu_seconds / (self.bytes / GB)

    @property
    def gbit_per_core(self) -> float:
        return self.bytes * 8 / GB / self.cpu_seconds

    def row(self) -> str:
        return (f"{self.kind:<14} {self.transport:<6} {self.streams:>3} {self.workers:>7} {self.gbit_per_second:>8.2f} "
                f"{self.cpu_seconds_per_gb:>12.3f} {self.gbit_per_core:>15.2f} {self.cpu_seconds / self.wall_seconds:>10.0%} "
                f"{self.machine_busy_cores:>12.2f}")


HEADER = (f"{'endpoint':<14} {'proto':<6} {'n':>3} {'workers':>7} {'Gbit/s':>8} {'CPU-s per GB':>12} "
          f"{'Gbit/s per core':>15} {'server CPU':>10} {'busy cores':>12}")


def server_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_SECOND  # utime, stime


def machine_busy_seconds() -> float:
    """CPU time all cores spent on anything but idling: clients, server, kernel."""
    with open("/proc/stat") as stat:
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_SECOND


def api(daemon, method: str, path: str, body: bytes | None = None) -> dict:
    request = urllib.request.Request(daemon.url + path, data=body, method=method)
    with urllib.request.urlopen(request, timeout=10, context=daemon._ssl_context) as response:
        return json.loads(response.read())


def counted_bytes(daemon, sessions: list[dict], kind: str) -> int:
    field = "upload_bytes" if kind == "http-upload" else "download_bytes"
    return sum(api(daemon, "GET", f"/api/tests/{s['test_id']}/progress?token={s['token']}")[field]
               for s in sessions)


URL_OF = {"http-download": "download_url", "http-upload": "upload_url", "ws-download": "bulk_ws_url"}


def client_path(kind: str, session: dict, seconds: float) -> str:
    """The path and signed query of the session's load URL for *kind*."""
    split = urlsplit(session[URL_OF[kind]])
    path = f"{split.path}?{split.query}"
    return path if kind == "http-upload" else f"{path}&seconds={seconds:g}"


def server_pids(daemon) -> list[int]:
    """The main process and its load workers: every process that serves the load."""
    return [daemon.process.pid] + [pid for role, pid in daemon.child_pids().items() if role.startswith("load-")]


def measure(daemon, kind: str, transport: str, streams: int, seconds: float) -> Figures:
    """Run *streams* clients; count bytes and server CPU over the middle *seconds*."""
    # One session per stream: the per-test upload cap would otherwise end the run.
    sessions = [api(daemon, "POST", "/api/tests", b'{"mode":"single_user"}') for _ in range(streams)]
    lifetime = WARM_UP + seconds + STREAM_SLACK
    clients = [
        subprocess.Popen([sys.executable, __file__, "client", kind, str(daemon.child_ports["load"]),
                          client_path(kind, session, lifetime), daemon.tls_ca or "", str(lifetime)])
        for session in sessions
    ]
    pids = server_pids(daemon)
    try:
        time.sleep(WARM_UP)
        start = sample(daemon, pids, sessions, kind)
        time.sleep(seconds)
        end = sample(daemon, pids, sessions, kind)
    finally:
        for client in clients:
            client.wait(timeout=lifetime + 10)
    wall, cpu, counted, busy = (after - before for after, before in zip(end, start))
    return Figures(kind, transport, streams, len(pids) - 1, counted, wall, cpu, busy / wall)


def sample(daemon, pids: list[int], sessions: list[dict], kind: str) -> tuple[float, float, int, float]:
    return (time.monotonic(), sum(map(server_cpu_seconds, pids)), counted_bytes(daemon, sessions, kind),
            machine_busy_seconds())


def certificates(directory: Path) -> tuple[str, str]:
    subprocess.run([str(REPO / "etc" / "create_test_certificates.sh"), str(directory)], check=True,
                   capture_output=True)
    return str(directory / "cert.pem"), str(directory / "key.pem")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measured window per run")
    parser.add_argument("--streams", type=int, default=2, help="parallel client processes")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--transports", default="plain,tls")
    parser.add_argument("--workers", default="0", help="comma-separated load_workers values (0: one per core)")
    options = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; {options.streams} streams; {options.seconds:g} s windows")
    print(HEADER)
    with tempfile.TemporaryDirectory() as scratch:
        for workers in options.workers.split(","):
            for transport in options.transports.split(","):
                tls = certificates(Path(scratch) / "tls") if transport == "tls" else None
                daemon = start_daemon(Path(tempfile.mkdtemp(dir=scratch)), tls=tls,
                                      config_text=RELAXED_LIMITS + f"load_workers={int(workers)}\n", as_deployed=True)
                try:
                    for kind in options.kinds.split(","):
                        print(measure(daemon, kind, transport, options.streams, options.seconds).row(), flush=True)
                finally:
                    daemon.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        kind, port, path, ca_file, seconds = sys.argv[2:7]
        run_client(kind, int(port), path, ca_file, float(seconds))
    else:
        main()
