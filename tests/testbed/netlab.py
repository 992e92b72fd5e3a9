"""An emulated access link in network namespaces: client — router — server.

The router's two egress ports each carry a ``tbf`` bottleneck (one per
direction) whose ``limit`` is the FIFO depth, so queueing delay under load is
about ``limit * 8 / rate``: a deep FIFO is a bufferbloated modem, a shallow
one a well-managed link.  (``netem``, ``fq_codel`` and ``cake`` are not in
this kernel; ../shared/testbed/README.md has the measured facts.)

A link may also have a base round-trip time (``Link.rtt_ms``): a small C
delay line (``delayline.c``, built with gcc on first use) then holds every
packet in the router for half the RTT in each direction, on its way to the
tbf.  Without it the idle RTT is about 0.06 ms, and a deep FIFO at gigabit
rates is no fair test (four flows fill it erratically).

Two traps are handled here: new namespaces inherit the kernel's ``bbr``,
which barely fills a FIFO, so every namespace uses ``cubic``; and the default
``tcp_wmem`` maximum keeps one flow from filling a 2 MB FIFO, so it is raised.

Traffic only ever flows between namespaces this module created, and every
namespace is deleted on exit, even when the test fails.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import os
import select
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CLIENT_ADDRESS = "10.203.1.2"
ROUTER_CLIENT_SIDE = "10.203.1.1"
ROUTER_SERVER_SIDE = "10.203.2.1"
SERVER_ADDRESS = "10.203.2.2"
BURST_BYTES = 15_000  # tbf's bucket: this, or a millisecond of the rate where that is more
BIG_SOCKET_BUFFER = 16 * 1024 * 1024
DELAY_LINE_SOURCE = Path(__file__).with_name("delayline.c")
DELAY_LINE_PRIORITY = 10  # SCHED_FIFO, below the kernel's own threads (50)
DELAY_LINE_CFLAGS = ("-O2", "-pthread", "-Wall")
# The delay line's two TUN devices in the router, each with its own routing table:
# (device, routing table, traffic arriving on this router port goes into it, its destination subnet).
DELAY_LINE_TUNS = (("dld", 101, "rs", "10.203.1.0/24"),  # download: server -> client
                   ("dlu", 102, "rc", "10.203.2.0/24"))  # upload: client -> server

_counter = itertools.count()


@dataclass(frozen=True)
class Link:
    """One scenario's bottleneck: rates in Mbit/s, FIFO depths in bytes, base RTT in ms.

    ``rtt_ms`` is the idle round trip the link adds (0: none, the testbed's own
    ~0.06 ms); queueing in the FIFOs comes on top of it.
    """

    name: str
    down_mbit: float
    up_mbit: float
    down_fifo_bytes: int
    up_fifo_bytes: int
    rtt_ms: float = 0.0

    def fifo_delay_ms(self, direction: str) -> float:
        """How long a full FIFO takes to drain: the bloat this link can show."""
        fifo, rate = ((self.down_fifo_bytes, self.down_mbit) if direction == "down"
                      else (self.up_fifo_bytes, self.up_mbit))
        return fifo * 8 / (rate * 1e6) * 1000

    @classmethod
    def with_queue_delay(cls, name: str, down_mbit: float, up_mbit: float, delay_ms: float, *,
                         rtt_ms: float = 0.0) -> "Link":
        """A link whose FIFOs hold *delay_ms* of traffic in each direction, over a base RTT of *rtt_ms*."""
        def fifo(rate_mbit: float) -> int:
            return max(2 * BURST_BYTES, int(rate_mbit * 1e6 / 8 * delay_ms / 1000))
        return cls(name, down_mbit, up_mbit, fifo(down_mbit), fifo(up_mbit), rtt_ms)


def run(command: str, namespace: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = shlex.split(command)
    if namespace:
        argv = ["ip", "netns", "exec", namespace, *argv]
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def delay_line_binary() -> Path:
    """The compiled delay line, built with gcc at first use into a private cache outside the checkout.

    The cache is keyed by the source's hash and the flags, so an edited
    ``delayline.c`` is rebuilt, and concurrent builds cannot see a half-written file.
    """
    digest = hashlib.sha256(DELAY_LINE_SOURCE.read_bytes() + " ".join(DELAY_LINE_CFLAGS).encode()).hexdigest()
    cache = Path(tempfile.gettempdir()) / f"lqos-bufferbloat-delayline-{os.geteuid()}"
    binary = cache / f"delayline-{digest[:16]}"
    cache.mkdir(mode=0o700, exist_ok=True)
    info = cache.stat()
    if info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise RuntimeError(f"{cache} is not a private directory of this user: remove it")
    if binary.exists():
        return binary
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError(f"a Link with rtt_ms > 0 needs gcc to build {DELAY_LINE_SOURCE.name}: "
                           "apt-get install -y gcc")
    partial = cache / f"{binary.name}.{os.getpid()}.partial"
    built = subprocess.run([gcc, *DELAY_LINE_CFLAGS, "-o", str(partial), str(DELAY_LINE_SOURCE)],
                           capture_output=True, text=True)
    if built.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"gcc could not build {DELAY_LINE_SOURCE}:\n{built.stderr}")
    os.replace(partial, binary)
    return binary


def kernel_can_emulate() -> str | None:
    """Why this machine cannot build the testbed, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    namespace = f"lqos-probe-{os.getpid()}"
    probe = run(f"ip netns add {namespace}", check=False)
    if probe.returncode != 0:
        return f"ip netns add failed: {probe.stderr.strip()}"
    run(f"ip netns del {namespace}", check=False)
    if "cubic" not in Path("/proc/sys/net/ipv4/tcp_available_congestion_control").read_text():
        return "the kernel has no cubic congestion control"
    return None


class Testbed:
    """``with Testbed(link) as bed:`` — three namespaces joined by veth, torn down on exit.

    With ``link.rtt_ms > 0`` the router also runs the delay line (``delay_line``,
    a child of the thread that entered the Testbed: it exits when that thread
    does, so enter and leave in one thread).  ``delay_line_report`` holds its
    packet counts (forwarded, dropped, failed) after teardown.
    """

    def __init__(self, link: Link):
        self.link = link
        tag = f"lq{os.getpid() % 100000}x{next(_counter)}"
        self.client = f"{tag}c"
        self.router = f"{tag}r"
        self.server = f"{tag}s"
        self.delay_line: subprocess.Popen | None = None
        self.delay_line_report = ""

    @property
    def namespaces(self) -> tuple[str, str, str]:
        return self.client, self.router, self.server

    def __enter__(self) -> "Testbed":
        try:
            self._build()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.teardown()

    def teardown(self) -> None:
        if self.delay_line is not None:
            # Asked politely first so that it reports its counts; the loop below kills it otherwise.
            self.delay_line.terminate()
            try:
                self.delay_line_report = self.delay_line.communicate(timeout=3)[1].strip()
            except subprocess.TimeoutExpired:
                self.delay_line.kill()
                self.delay_line.communicate()
            self.delay_line = None
        for namespace in self.namespaces:
            # Killing what still runs inside first, so nothing outlives the namespace.
            pids = run(f"ip netns pids {namespace}", check=False).stdout.split()
            for pid in pids:
                run(f"kill -9 {pid}", check=False)
            run(f"ip netns del {namespace}", check=False)

    def _build(self) -> None:
        for namespace in self.namespaces:
            run(f"ip netns add {namespace}")
            run("ip link set lo up", namespace)
        run(f"ip link add c0 netns {self.client} type veth peer name rc netns {self.router}")
        run(f"ip link add s0 netns {self.server} type veth peer name rs netns {self.router}")
        self._address(self.client, "c0", f"{CLIENT_ADDRESS}/24", via=ROUTER_CLIENT_SIDE)
        self._address(self.server, "s0", f"{SERVER_ADDRESS}/24", via=ROUTER_SERVER_SIDE)
        self._address(self.router, "rc", f"{ROUTER_CLIENT_SIDE}/24")
        self._address(self.router, "rs", f"{ROUTER_SERVER_SIDE}/24")
        run("sysctl -qw net.ipv4.ip_forward=1", self.router)
        for device in ("rc", "rs"):
            # No segmentation offload on the bottleneck: tbf then sees real packets.
            run(f"ethtool -K {device} tso off gso off gro off", self.router, check=False)
        self._shape("rc", self.link.down_mbit, self.link.down_fifo_bytes)
        self._shape("rs", self.link.up_mbit, self.link.up_fifo_bytes)
        if self.link.rtt_ms > 0:
            self._insert_delay_line()
        self._use_cubic_and_big_buffers()

    def _address(self, namespace: str, device: str, cidr: str, via: str | None = None) -> None:
        run(f"ip addr add {cidr} dev {device}", namespace)
        run(f"ip link set {device} up", namespace)
        if via:
            run(f"ip route add default via {via}", namespace)

    def _shape(self, device: str, rate_mbit: float, fifo_bytes: int) -> None:
        """A tbf of *rate_mbit* with a FIFO of *fifo_bytes*, its bucket a millisecond of the rate (15 kB at least).

        At gigabit rates a 15 kB bucket empties every 120 µs, and each time
        tbf re-arms its watchdog timer.  tbf runs in the delay line's write(),
        and on this VM `perf` found a fifth of both cores' time in that re-arm
        (under tbf_dequeue): on the cable row the delay line's download thread
        was at 0.9 of a core, the packets queued in front of it instead of in
        tbf, and Firefox's reference page read 805-815 Mbit/s.  With 125 kB it
        read 971, the FIFO full.  Such a bucket lets at most a millisecond's
        worth through above the rate after an idle spell; below 120 Mbit/s it
        stays 15 kB, as the slower rows were validated.
        """
        burst = max(BURST_BYTES, round(rate_mbit * 1e6 / 8 / 1000))
        run(f"tc qdisc add dev {device} root tbf rate {rate_mbit}mbit burst {burst} limit {fifo_bytes}",
            self.router)

    def _insert_delay_line(self) -> None:
        """Route forwarded traffic through the delay line, half the RTT in each direction.

        Path: (arrives on rs) -> dld -> delay line -> dld -> main table -> tbf on rc -> client,
        and the mirror image through dlu for the upload.  Policy rules by input port send
        forwarded traffic into its direction's TUN; what the delay line writes back arrives
        on the TUN, so the main table routes it on to the egress veth and its tbf as before.
        The tbf therefore still sees every packet and shapes at its rate; GSO super-packets
        that the delay line carries whole are cut to segments by tbf where they exceed its
        bucket, and otherwise on their way out of the segmentation-free egress veth.

        Why half each way rather than all of it in one direction: it is what a real path
        does, so one-way delays (irtt reports them; the namespaces share one clock) are
        realistic, and each direction's data and ACKs are delayed alike whichever way the
        bulk flows.  The price is that a gigabit download's ACKs cross the upload TUN one
        by one; measured on 2 cores, 1000/100 Mbit/s at 10 ms still carried 937 Mbit/s down.
        Traffic to the router's own addresses is delivered locally, without delay.
        """
        total_us = round(self.link.rtt_ms * 1000)
        down_us = total_us // 2
        delays = {"dld": down_us, "dlu": total_us - down_us}
        argv = [str(delay_line_binary()), *(f"{tun}:{delays[tun]}" for tun, *_ in DELAY_LINE_TUNS)]
        self.delay_line = self.popen(self.router, argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        # Real-time priority: a packet's delay is only as exact as the delay line's wake-ups, and a
        # browser starting beside it (another bed, another test) would otherwise hold it off a core.
        # It sleeps in ppoll between packets, so it takes no more CPU than the traffic needs.
        os.sched_setscheduler(self.delay_line.pid, os.SCHED_FIFO, os.sched_param(DELAY_LINE_PRIORITY))
        # It prints "ready" once its TUN devices exist; only then can they be configured.
        readable, _, _ = select.select([self.delay_line.stdout], [], [], 5.0)
        if not readable or self.delay_line.stdout.readline().strip() != "ready":
            self.delay_line.kill()
            errors = self.delay_line.communicate()[1].strip()
            code, self.delay_line = self.delay_line.returncode, None
            raise RuntimeError(f"the delay line did not start (exit code {code}): "
                               f"{errors or 'no ready line within 5 s'}")
        run("sysctl -qw net.ipv4.conf.all.rp_filter=0", self.router)
        for tun, table, arrives_on, subnet in DELAY_LINE_TUNS:
            # Written-back packets come in on the TUN with a source routed via a veth: no rp_filter.
            run(f"sysctl -qw net.ipv4.conf.{tun}.rp_filter=0", self.router)
            run(f"sysctl -qw net.ipv6.conf.{tun}.disable_ipv6=1", self.router, check=False)
            run(f"ip link set {tun} up", self.router)
            run(f"ip route add {subnet} dev {tun} table {table}", self.router)
            run(f"ip rule add iif {arrives_on} lookup {table} priority {table}", self.router)

    def _use_cubic_and_big_buffers(self) -> None:
        # The allowed list is the host's, shared by every testbed: beds built
        # side by side take turns, or one could put the list back while
        # another is choosing cubic from it.
        allowed_path = Path("/proc/sys/net/ipv4/tcp_allowed_congestion_control")
        with open(Path(tempfile.gettempdir()) / f"lqos-bufferbloat-testbed-{os.geteuid()}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            allowed = allowed_path.read_text().split()
            if "cubic" not in allowed:
                allowed_path.write_text(" ".join(allowed + ["cubic"]))
            try:
                for namespace in (self.client, self.server):
                    run("sysctl -qw net.ipv4.tcp_congestion_control=cubic", namespace)
                    buffers = f"4096 131072 {BIG_SOCKET_BUFFER}"
                    run(f"sysctl -qw net.ipv4.tcp_wmem={shlex.quote(buffers)}", namespace)
                    run(f"sysctl -qw net.ipv4.tcp_rmem={shlex.quote(buffers)}", namespace)
            finally:
                if "cubic" not in allowed:
                    allowed_path.write_text(" ".join(allowed))

    def popen(self, namespace: str, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", namespace, *argv], **kwargs)
