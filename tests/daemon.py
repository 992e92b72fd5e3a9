"""Start the real daemon (``twistd -n lqos-bufferbloat``) on free loopback ports."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TWISTD = Path(sys.executable).parent / "twistd"
# The child ports, by the role that listens there ("load" is every load worker).
CHILD_ROLES = ("probe", "streaming", "gaming", "video", "updates", "load", "upload", "nq")
# What a test daemon's config says unless the test's own config names the key:
# - the quick schedule (lqos/sessions.py): tests whose point is not the schedule
#   run it, a test in 8 s rather than 15;
# - one load worker, not one per core: each child is an interpreter that takes
#   0.5 CPU-s to start, a test daemon lives for seconds, and loopback needs no
#   second worker to carry a test.
# The load worker keeps its nice 10: at nice 0 its loopback streams took the
# cores from the tests beside it, and the suite's first part ran 178 s, not 146.
TEST_CONFIG_DEFAULTS = {"quick_schedule": "on", "load_workers": "1"}

# The config line of a daemon for tests that run no household: it starts the
# probe and a load worker, not four persona processes beside them, so it is
# up in less than half the CPU time.
SINGLE_USER_ONLY = "virtual_household=off\n"


# Ports for the daemons tests start.  Each pytest-xdist worker takes its own
# block below the kernel's ephemeral range (32768 and up): the load workers
# listen with SO_REUSEPORT, so a port another worker's daemon also took would
# not fail to bind but silently share its connections between two daemons.
_PORT_BLOCK = 2000
_FIRST_PORT = 20000
_next_port = itertools.count()


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # "gw3" for the fourth worker
    return int(worker.removeprefix("gw")) if worker.removeprefix("gw").isdigit() else 0


def free_ports(count: int) -> list[int]:
    """Ports free now in this worker's block, each handed out once per process, for a daemon to take."""
    base = _FIRST_PORT + _worker_index() * _PORT_BLOCK
    ports: list[int] = []
    while len(ports) < count:
        offset = next(_next_port)
        if offset >= _PORT_BLOCK:
            raise RuntimeError(f"this test process used up its {_PORT_BLOCK} ports from {base}")
        port = base + offset
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    return ports


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has ended all the same.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(predicate, timeout: float, interval: float = 0.05):
    """Poll *predicate* until it returns something truthy; return it, or None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


@dataclass
class Daemon:
    process: subprocess.Popen
    port: int
    child_ports: dict[str, int]
    data_dir: Path
    log_path: Path
    tls_ca: str | None = None
    scheme: str = "http"
    _ssl_context: ssl.SSLContext | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def child_url(self, role: str, path: str, websocket: bool = False) -> str:
        scheme = ("wss" if websocket else "https") if self.tls_ca else ("ws" if websocket else "http")
        return f"{scheme}://127.0.0.1:{self.child_ports[role]}{path}"

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, dict, bytes]:
        """GET *path*; return status, headers and body (4xx/5xx included)."""
        request = urllib.request.Request(self.url + path)
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self._ssl_context) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                source_ip: str = "127.0.0.1") -> tuple[int, dict, bytes]:
        """One HTTP request from *source_ip* (any loopback address), any method."""
        if self.scheme == "https":
            connection = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10,
                                                     context=self._ssl_context,
                                                     source_address=(source_ip, 0))
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10,
                                                    source_address=(source_ip, 0))
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def post_json(self, path: str, document: object, source_ip: str = "127.0.0.1") -> tuple[int, object]:
        status, _, body = self.request("POST", path, json.dumps(document).encode(),
                                       {"Content-Type": "application/json"}, source_ip)
        return status, json.loads(body)

    def get_json(self, path: str) -> tuple[int, object]:
        status, _, body = self.get(path)
        return status, json.loads(body)

    def get_json_accepting(self, path: str) -> tuple[int, object]:
        """GET *path* asking for JSON, as an API client does."""
        status, _, body = self.request("GET", path, headers={"Accept": "application/json"})
        return status, json.loads(body)

    def health(self) -> tuple[int, dict] | None:
        try:
            return self.get_json("/api/health")
        except (OSError, ValueError):
            return None

    def child_pids(self) -> dict[str, int]:
        status, body = self.health()
        return {child["role"]: child["pid"] for child in body["children"]}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def twistd_command(*plugin_args: str) -> list[str]:
    return [str(TWISTD), "--nodaemon", "--pidfile=", "lqos-bufferbloat", *plugin_args]


def start_daemon(tmp_path: Path, config_text: str | None = None, tls: tuple[str, str] | None = None,
                 extra_args: tuple[str, ...] = (), env: dict | None = None, as_deployed: bool = False,
                 ports: list[int] | None = None, tls_ca: str | None = None) -> Daemon:
    """Start the daemon, wait until ``/api/health`` says every child runs.

    Its config is *config_text* and ``TEST_CONFIG_DEFAULTS`` for the keys it
    does not name; *as_deployed* (benchmarks) leaves the defaults out, so the
    daemon runs as an operator's does.  *ports* (main, then CHILD_ROLES'), from
    :func:`free_ports`, are for daemons that must know each other's before they start.
    *tls_ca* is the certificate clients trust, where it is not *tls*'s own (a chain's root).
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    main_port, *ports = ports or free_ports(1 + len(CHILD_ROLES))
    child_ports = dict(zip(CHILD_ROLES, ports))
    data_dir = tmp_path / "var"
    args = ["--port", f"tcp:{main_port}:interface=127.0.0.1", "--data-dir", str(data_dir),
            "--listen-address", "127.0.0.1"]
    for role, port in child_ports.items():
        args += [f"--{role}-port", str(port)]
    config_path = tmp_path / "lqos_test.conf"
    text = config_text or ""
    for key, value in ({} if as_deployed else TEST_CONFIG_DEFAULTS).items():
        if key not in text:
            text += ("\n" if text and not text.endswith("\n") else "") + f"{key}={value}\n"
    config_path.write_text(text)
    args += ["--config", str(config_path)]
    context = None
    if tls:
        cert, key = tls
        args += ["--tls-cert", cert, "--tls-key", key]
        context = ssl.create_default_context(cafile=tls_ca or cert)
    log_path = tmp_path / "twistd.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            twistd_command(*args, *extra_args), cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    daemon = Daemon(process, main_port, child_ports, data_dir, log_path,
                    tls_ca=(tls_ca or tls[0]) if tls else None, scheme="https" if tls else "http",
                    _ssl_context=context)
    ready = wait_until(lambda: process.poll() is not None or _all_running(daemon), timeout=20)
    if process.poll() is not None or not ready:
        daemon.stop()
        raise RuntimeError(f"daemon did not become healthy:\n{daemon.log()}")
    return daemon


def _all_running(daemon: Daemon) -> bool:
    answer = daemon.health()
    return answer is not None and answer[0] == 200
