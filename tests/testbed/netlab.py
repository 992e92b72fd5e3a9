"""An emulated access link in network namespaces: client — router — server.

The router's two egress ports each carry a ``tbf`` bottleneck (one per
direction) whose ``limit`` is the FIFO depth, so queueing delay under load is
about ``limit * 8 / rate``: a deep FIFO is a bufferbloated modem, a shallow
one a well-managed link.  (``netem``, ``fq_codel`` and ``cake`` are not in
this kernel; ../shared/testbed/README.md has the measured facts.)

Two traps are handled here: new namespaces inherit the kernel's ``bbr``,
which barely fills a FIFO, so every namespace uses ``cubic``; and the default
``tcp_wmem`` maximum keeps one flow from filling a 2 MB FIFO, so it is raised.

Traffic only ever flows between namespaces this module created, and every
namespace is deleted on exit, even when the test fails.
"""

from __future__ import annotations

import itertools
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

CLIENT_ADDRESS = "10.203.1.2"
ROUTER_CLIENT_SIDE = "10.203.1.1"
ROUTER_SERVER_SIDE = "10.203.2.1"
SERVER_ADDRESS = "10.203.2.2"
BURST_BYTES = 15_000
BIG_SOCKET_BUFFER = 16 * 1024 * 1024

_counter = itertools.count()


@dataclass(frozen=True)
class Link:
    """One scenario's bottleneck: rates in Mbit/s, FIFO depths in bytes."""

    name: str
    down_mbit: float
    up_mbit: float
    down_fifo_bytes: int
    up_fifo_bytes: int

    def fifo_delay_ms(self, direction: str) -> float:
        """How long a full FIFO takes to drain: the bloat this link can show."""
        fifo, rate = ((self.down_fifo_bytes, self.down_mbit) if direction == "down"
                      else (self.up_fifo_bytes, self.up_mbit))
        return fifo * 8 / (rate * 1e6) * 1000

    @classmethod
    def with_queue_delay(cls, name: str, down_mbit: float, up_mbit: float, delay_ms: float) -> "Link":
        """A link whose FIFOs hold *delay_ms* of traffic in each direction."""
        def fifo(rate_mbit: float) -> int:
            return max(2 * BURST_BYTES, int(rate_mbit * 1e6 / 8 * delay_ms / 1000))
        return cls(name, down_mbit, up_mbit, fifo(down_mbit), fifo(up_mbit))


def run(command: str, namespace: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = shlex.split(command)
    if namespace:
        argv = ["ip", "netns", "exec", namespace, *argv]
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def kernel_can_emulate() -> str | None:
    """Why this machine cannot build the testbed, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = run("ip netns add lqos-probe-ns", check=False)
    if probe.returncode != 0:
        return f"ip netns add failed: {probe.stderr.strip()}"
    run("ip netns del lqos-probe-ns", check=False)
    if "cubic" not in Path("/proc/sys/net/ipv4/tcp_available_congestion_control").read_text():
        return "the kernel has no cubic congestion control"
    return None


class Testbed:
    """``with Testbed(link) as bed:`` — three namespaces joined by veth, torn down on exit."""

    def __init__(self, link: Link):
        self.link = link
        tag = f"lq{os.getpid() % 100000}x{next(_counter)}"
        self.client = f"{tag}c"
        self.router = f"{tag}r"
        self.server = f"{tag}s"

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
        self._use_cubic_and_big_buffers()

    def _address(self, namespace: str, device: str, cidr: str, via: str | None = None) -> None:
        run(f"ip addr add {cidr} dev {device}", namespace)
        run(f"ip link set {device} up", namespace)
        if via:
            run(f"ip route add default via {via}", namespace)

    def _shape(self, device: str, rate_mbit: float, fifo_bytes: int) -> None:
        run(f"tc qdisc add dev {device} root tbf rate {rate_mbit}mbit burst {BURST_BYTES} limit {fifo_bytes}",
            self.router)

    def _use_cubic_and_big_buffers(self) -> None:
        allowed_path = Path("/proc/sys/net/ipv4/tcp_allowed_congestion_control")
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
