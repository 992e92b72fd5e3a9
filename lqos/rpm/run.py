"""The draft's responsiveness test against any server that serves it (``--rpm URL``).

Given the configuration URL (``https://HOST:PORT/.well-known/nq``), the test

1. reads the configuration and its three URLs (small, large, upload);
2. opens one load-generating connection each way (a large download, an
   endless upload) and adds one per direction every interval while that
   direction's goodput is not yet stable (at most 16 each);
3. every 100 ms sends a self probe (a small GET on a load connection, in
   turn) and a foreign probe (a new TCP+TLS+HTTP/2 connection, timed in its
   three parts, then closed);
4. ends when goodput and responsiveness are both stable, or after 20 s,
   and computes RPM from the probes of the last four intervals
   (``lqos/rpm/responsiveness.py``).

Both directions load at once, as networkQuality does by default.
"""

from __future__ import annotations

import json
import socket
import statistics
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from twisted.internet import defer, task
from twisted.internet.error import ConnectError, ConnectionLost
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.threads import deferToThread

from lqos.client.http import trust_root
from lqos.rpm.h2client import H2Client, H2Error
from lqos.rpm.responsiveness import (INTERVAL_SECONDS, MAX_LOAD_CONNECTIONS, MAX_TEST_SECONDS,
                                     MOVING_AVERAGE_DISTANCE, Probes, is_stable)

PROBE_INTERVAL_SECONDS = 0.1
PROBE_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 10.0
# Foreign probes still waiting for their connection: beyond this a probe is skipped, not queued.
MAX_FOREIGN_IN_FLIGHT = 50
MAX_CONFIG_BYTES = 64 * 1024
# What a connection that could not be opened, or broke, raises: a lost probe, a load connection not added.
CONNECTION_FAILURES = (H2Error, defer.TimeoutError, ConnectError, ConnectionLost, OSError)
DIRECTIONS = ("download", "upload")
URL_KEYS = {  # goresponsiveness's names first, then the draft's
    "small": ("small_https_download_url", "small_download_url"),
    "large": ("large_https_download_url", "large_download_url"),
    "upload": ("https_upload_url", "upload_url"),
}


class RPMError(Exception):
    """The test could not run; the message says why, for one line on stderr."""


@dataclass(frozen=True)
class Target:
    """Where the three endpoints are: one host and port, three paths."""

    host: str
    port: int
    paths: dict


def config_location(url: str) -> tuple[str, int, str]:
    """(host, port, path) of an https configuration URL."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise RPMError(f"{url!r} is not an https:// URL (the draft's servers speak HTTP/2 over TLS)")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, parts.port or 443, path


def parse_config(document: bytes) -> Target:
    """The three URLs of a configuration document; RPMError when it is not one the draft describes."""
    try:
        urls = json.loads(document)["urls"]
        found = {name: next(urls[key] for key in keys if isinstance(urls.get(key), str))
                 for name, keys in URL_KEYS.items()}
    except (ValueError, KeyError, TypeError, StopIteration):
        raise RPMError("the configuration is not the draft's JSON: {\"version\": 1, \"urls\": {...}}") from None
    places = {config_location(url)[:2] for url in found.values()}
    if len(places) != 1:
        raise RPMError("the configuration's URLs are not all on one host and port")
    (host, port), = places
    return Target(host, port, {name: config_location(url)[2] for name, url in found.items()})


@dataclass
class Measurement:
    """What the test has counted so far."""

    started: float
    sent: dict = field(default_factory=lambda: {direction: 0 for direction in DIRECTIONS})
    goodput: dict = field(default_factory=lambda: {direction: [] for direction in DIRECTIONS})  # Mbit/s per interval
    rpm: list = field(default_factory=list)  # per interval, from its probes
    probes: list = field(default_factory=list)  # one Probes per interval, by index
    lost: int = 0

    def interval(self, now: float) -> int:
        return int((now - self.started) / INTERVAL_SECONDS)

    def probes_of(self, index: int) -> Probes:
        while len(self.probes) <= index:
            self.probes.append(Probes())
        return self.probes[index]


class Responsiveness:
    """One run of the test against *target*."""

    def __init__(self, reactor, target: Target, address: tuple, cafile: str | None):
        self._reactor = reactor
        self._target = target
        self._address = address  # (family, ip): resolved once, so a foreign probe's tcp part is the connect alone
        self._authority = authority(target.host, target.port)
        self._tls = tls_options(target.host, cafile)
        self._loads: dict[str, list[H2Client]] = {direction: [] for direction in DIRECTIONS}
        self._foreign_in_flight = 0
        self._opening = {direction: 0 for direction in DIRECTIONS}  # load connections being opened
        self._next_self = 0
        self._running = True
        self.measurement = Measurement(started=reactor.seconds())

    async def connect(self) -> H2Client:
        return await connect(self._reactor, self._tls, self._address, self._target.port, self._authority)

    async def run(self, max_seconds: float = MAX_TEST_SECONDS) -> dict:
        measurement = self.measurement
        for direction in DIRECTIONS:
            await self._add_load(direction)
        prober = task.LoopingCall(self._probe)
        prober.clock = self._reactor
        prober.start(PROBE_INTERVAL_SECONDS)
        try:
            seen = dict(measurement.sent)
            for index in range(int(max_seconds / INTERVAL_SECONDS)):
                due = measurement.started + (index + 1) * INTERVAL_SECONDS
                await task.deferLater(self._reactor, max(0.0, due - self._reactor.seconds()), lambda: None)
                for direction in DIRECTIONS:
                    measurement.goodput[direction].append((measurement.sent[direction] - seen[direction]) * 8 / 1e6)
                seen = dict(measurement.sent)
                rpm = measurement.probes_of(index).summary()["rpm"]
                if rpm is not None:
                    measurement.rpm.append(rpm)
                if self._stable():
                    break
                for direction in DIRECTIONS:
                    if not is_stable(measurement.goodput[direction]) and self._load_count(direction) < MAX_LOAD_CONNECTIONS:
                        self._grow(direction)
        finally:
            self._running = False
            prober.stop()
            for client in self._loads["download"] + self._loads["upload"]:
                client.close()
        return self.result()

    def _stable(self) -> bool:
        return all(is_stable(self.measurement.goodput[d]) for d in DIRECTIONS) and is_stable(self.measurement.rpm)

    def _load_count(self, direction: str) -> int:
        return len(self._loads[direction]) + self._opening[direction]

    def _grow(self, direction: str) -> None:
        """Open one more load connection without holding up the test's clock: on a full
        queue the handshake itself can take longer than an interval."""
        self._opening[direction] += 1
        opened = defer.ensureDeferred(self._add_load(direction))
        opened.addErrback(lambda failure: failure.trap(*CONNECTION_FAILURES))
        opened.addBoth(lambda _: self._opening.__setitem__(direction, self._opening[direction] - 1))

    async def _add_load(self, direction: str) -> None:
        client = await self.connect()
        self._loads[direction].append(client)
        self._keep_loading(client, direction)

    def _keep_loading(self, client: H2Client, direction: str) -> None:
        """One bulk stream on *client*, opened again whenever the server ends it while the test runs."""
        if not (self._running and client.open):
            return
        if direction == "download":
            stream = client.get(self._target.paths["large"], on_data=lambda data: self._count(direction, len(data)))
        else:
            stream = client.post_endless(self._target.paths["upload"], on_sent=lambda size: self._count(direction, size))
        stream.addBoth(lambda _: self._keep_loading(client, direction))

    def _count(self, direction: str, size: int) -> None:
        self.measurement.sent[direction] += size

    def _probe(self) -> None:
        defer.ensureDeferred(self._self_probe())
        if self._foreign_in_flight < MAX_FOREIGN_IN_FLIGHT:
            defer.ensureDeferred(self._foreign_probe())

    async def _self_probe(self) -> None:
        loads = [client for client in self._loads["download"] + self._loads["upload"] if client.open]
        if not loads:
            return
        client = loads[self._next_self % len(loads)]
        self._next_self += 1
        began = self._reactor.seconds()
        try:
            status = await client.get(self._target.paths["small"]).addTimeout(PROBE_TIMEOUT_SECONDS, self._reactor)
        except (H2Error, defer.TimeoutError):
            self.measurement.lost += 1
            return
        ended = self._reactor.seconds()
        if status == 200 and self._running:
            self.measurement.probes_of(self.measurement.interval(ended)).loaded.append((ended - began) * 1000)

    async def _foreign_probe(self) -> None:
        self._foreign_in_flight += 1
        began = self._reactor.seconds()
        client = None
        try:
            client = await self.connect()
            asked = self._reactor.seconds()
            status = await client.get(self._target.paths["small"]).addTimeout(PROBE_TIMEOUT_SECONDS, self._reactor)
            ended = self._reactor.seconds()
        except CONNECTION_FAILURES:
            self.measurement.lost += 1
            return
        finally:
            self._foreign_in_flight -= 1
            if client is not None:
                client.close()
        if status == 200 and self._running:
            self.measurement.probes_of(self.measurement.interval(ended)).add_foreign(
                (client.tcp_at - began) * 1000, (client.tls_at - client.tcp_at) * 1000, (ended - asked) * 1000)

    def result(self) -> dict:
        """The figures over the last MAD intervals, as the draft computes them."""
        measurement = self.measurement
        summary = Probes.pooled(measurement.probes[-MOVING_AVERAGE_DISTANCE:]).summary()
        intervals = len(measurement.goodput["download"])
        summary.update({
            "intervals": intervals,
            "goodput_stable": all(is_stable(measurement.goodput[d]) for d in DIRECTIONS),
            "responsiveness_stable": is_stable(measurement.rpm),
            "lost_probes": measurement.lost,
        })
        for direction in DIRECTIONS:
            recent = measurement.goodput[direction][-MOVING_AVERAGE_DISTANCE:]
            summary[f"{direction}_mbps"] = statistics.fmean(recent) if recent else None
            summary[f"{direction}_connections"] = len(self._loads[direction])
        return summary


def authority(host: str, port: int) -> str:
    return host if port == 443 else f"{host}:{port}"


def tls_options(host: str, cafile: str | None):
    """TLS for *host*, offering only HTTP/2 (the draft's servers speak nothing else)."""
    return optionsForClientTLS(host, trustRoot=trust_root(cafile), acceptableProtocols=[b"h2"])


async def connect(reactor, tls, address: tuple, port: int, authority_text: str) -> H2Client:
    """A new HTTP/2 connection to *address* ((family, ip), resolved beforehand), once TLS chose h2."""
    family, ip = address
    endpoint_type = TCP6ClientEndpoint if family == socket.AF_INET6 else TCP4ClientEndpoint
    endpoint = wrapClientTLS(tls, endpoint_type(reactor, ip, port, timeout=CONNECT_TIMEOUT_SECONDS))
    client = H2Client(reactor, authority_text)
    await connectProtocol(endpoint, client)
    return await client.ready.addTimeout(CONNECT_TIMEOUT_SECONDS, reactor)


async def resolve(host: str) -> tuple:
    """(family, address) of *host*, looked up once before the test."""
    try:
        found = await deferToThread(socket.getaddrinfo, host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise RPMError(f"cannot resolve {host}: {error.strerror}") from None
    family, _, _, _, address = found[0]
    return family, address[0]


async def fetch_config(reactor, url: str, cafile: str | None) -> tuple[Target, tuple]:
    """The configuration's endpoints, and the address their host resolves to."""
    host, port, path = config_location(url)
    address = await resolve(host)
    client = await connect(reactor, tls_options(host, cafile), address, port, authority(host, port))
    body = bytearray()

    def keep(data: bytes) -> None:
        body.extend(data)
        if len(body) > MAX_CONFIG_BYTES:
            client.close()

    try:
        status = await client.get(path, on_data=keep).addTimeout(PROBE_TIMEOUT_SECONDS, reactor)
    except H2Error:
        if len(body) > MAX_CONFIG_BYTES:
            raise RPMError(f"{url} is larger than a configuration ({MAX_CONFIG_BYTES // 1024} KiB at most)") from None
        raise
    finally:
        client.close()
    if status != 200:
        raise RPMError(f"{url} answered {status}, not the configuration")
    target = parse_config(bytes(body))
    if target.host != host:
        address = await resolve(target.host)
    return target, address


async def measure_rpm(reactor, url: str, cafile: str | None = None, max_seconds: float = MAX_TEST_SECONDS) -> dict:
    """The whole test against the configuration at *url*; the figures of ``Responsiveness.result``."""
    target, address = await fetch_config(reactor, url, cafile)
    result = await Responsiveness(reactor, target, address, cafile).run(max_seconds)
    result["config_url"] = url
    return result


def render_rpm(result: dict) -> str:
    """The result for a terminal."""
    def figure(value, unit, digits=1):
        return "n/a" if value is None else f"{value:.{digits}f}{unit}"

    means = result["trimmed_means_ms"]
    stable = ("stable" if result["goodput_stable"] and result["responsiveness_stable"]
              else "not stable within the test's time (the figures are from its last 4 s)")
    lines = [
        f"Responsiveness (IETF draft, RPM) against {result['config_url']}",
        f"Download: {figure(result['download_mbps'], ' Mbit/s')} over {result['download_connections']} connections",
        f"Upload:   {figure(result['upload_mbps'], ' Mbit/s')} over {result['upload_connections']} connections",
        f"RPM:      {figure(result['rpm'], '', 0)} (new connections {figure(result['foreign_rpm'], '', 0)}, "
        f"loaded connections {figure(result['loaded_rpm'], '', 0)})",
        f"  a request on a loaded connection took {figure(means['http_l'], ' ms')} (trimmed mean)",
        f"  a new connection took TCP {figure(means['tcp_f'], ' ms')}, TLS {figure(means['tls_f'], ' ms')}, "
        f"HTTP {figure(means['http_f'], ' ms')}",
        f"  {result['probes']['foreign']} foreign and {result['probes']['self']} self probes in the last "
        f"{MOVING_AVERAGE_DISTANCE} s, {result['lost_probes']} lost; {result['intervals']} s, {stable}",
    ]
    return "\n".join(lines) + "\n"
