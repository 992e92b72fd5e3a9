"""The one parser of ``lqos_test.conf``.

The file is ``key=value`` lines, ``#`` comment lines and blank lines; a value
may be wrapped in single or double quotes (needed only to keep leading or
trailing spaces).  A ``#`` inside a value is part of the value, so URLs with
fragments survive.

Everything here is pure: text in, a frozen :class:`Config` out.  The daemon
calls :func:`load_config` once at start; a bad value raises
:class:`ConfigError` whose message is ``FILE:LINE: reason``, an unknown key
becomes a warning the caller logs.  Command-line options go through the same
coercers (:func:`apply_overrides`), so a value means the same thing wherever
it is written.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping
from urllib.parse import urlsplit

from lqos.measure.grading import GradeThresholds

MAX_FILE_BYTES = 64 * 1024
MAX_LINE_CHARS = 4096
MIN_SECRET_CHARS = 16

_KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]*\Z")
_ENDPOINT_PATTERN = re.compile(r"(tcp|tcp6|ssl|unix|systemd):\S+\Z")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_SERVER_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")


MAX_FLEET_SERVERS = 64
MAX_SERVERS_FILE_BYTES = 64 * 1024


@dataclass(frozen=True)
class FleetServer:
    """One server a customer may be sent to: its label, public base URL, and where to time it.

    An empty ``ping_url`` means the probe's ``/ping`` at the URL's host on
    this server's ``probe_port`` (a fleet's servers share their ports).
    """

    label: str
    url: str
    ping_url: str = ""


class ConfigError(ValueError):
    """A value that must stop the daemon; ``str()`` is ``SOURCE:LINE: reason``."""

    def __init__(self, source: str, line: int | None, reason: str):
        self.source = source
        self.line = line
        self.reason = reason
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Config:
    """Every setting of the daemon, with its default."""

    sponsor_name: str = "lqos-bufferbloat"
    sponsor_url: str = ""
    sponsor_city: str = ""
    webhook_url: str = ""
    webhook_secret: str = ""
    telemetry_api_key: str = ""
    central_url: str = ""
    telemetry_max_tests: int = 1000
    outbox_retry_seconds: float = 5.0
    # A fleet of servers shares one PostgreSQL database (lqos/telemetry/fleet.py):
    # ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=...]``.  Empty: this
    # server's SQLite file in data_dir is the only store, as for a single server.
    telemetry_database: str = ""
    # This server's name in a fleet, stamped on every test it stores; empty
    # means the host name (lqos.daemon.service.server_id).
    server_id: str = ""
    # What the fleet's database keeps, for every server together: the newest
    # fleet_max_tests tests, none older than fleet_max_age_days (0: no age limit).
    fleet_max_tests: int = 1_000_000
    fleet_max_age_days: int = 90
    # The fleet's servers the page and the CLI choose among, by round-trip time:
    # ``servers=LABEL=URL, LABEL=URL`` or ``servers_file=`` (a JSON list of
    # {"label", "url"[, "ping_url"]}).  Empty: this server alone, no choice shown.
    servers: tuple[FleetServer, ...] = ()
    servers_file: str = ""
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    port: str = "tcp:8000"
    listen_address: str = ""
    streaming_port: int = 8001
    gaming_port: int = 8002
    video_port: int = 8003
    updates_port: int = 8004
    probe_port: int = 8005
    # The bulk load endpoints (/download, /upload, /ws/bulk-download) are served
    # by this many worker processes sharing load_port (0: one per CPU core), at
    # this nice level, so that bulk data never delays the probe or the API.
    # The workers serve the same routes on upload_port too, and clients send
    # their uploads there: a browser opens at most six HTTP/1.1 connections to
    # one host and port, so one port could not carry four download and four
    # upload streams at once as fetch() requests.
    load_port: int = 8006
    upload_port: int = 8007
    load_workers: int = 0
    load_worker_nice: int = 10
    # The responsiveness endpoints of the IETF draft (networkQuality -C,
    # goresponsiveness) over HTTP/2: served by as many workers as load_port,
    # at the same nice level, on this port when TLS is configured (0: off).
    nq_port: int = 8443
    # goresponsiveness opens a new connection per probe and leaves it open;
    # each closes after http_request_head_seconds without a stream.
    nq_connections_per_ip: int = 512
    # A large download or an upload there is reset after this long: the client
    # chooses their size, so time bounds them (Apple's client reads a 413 as
    # an error).  networkQuality and goresponsiveness run for about 20 s.
    nq_bulk_seconds: float = 60.0
    tls_cert: str = ""
    tls_key: str = ""
    data_dir: str = "var"
    grade_thresholds_ms: GradeThresholds = GradeThresholds()
    max_concurrent_tests_per_ip: int = 2
    max_tests_per_hour_per_ip: int = 30
    max_concurrent_tests: int = 200
    # Open connections to the main port: per client address (a
    # trusted proxy is exempt) and in all; beyond them a connection gets 503.
    max_connections_per_ip: int = 128
    max_connections: int = 10000
    # A connection must deliver a request's line and headers this soon after it
    # opens or its previous response ends (slowloris); idle is any silence.
    http_request_head_seconds: float = 20.0
    http_idle_timeout_seconds: float = 60.0
    # Offer the "quick" schedule (lqos/sessions.py): a test in seconds, for
    # checking an installation end to end, not for grading a line.
    quick_schedule: bool = False
    # Run the virtual household (its persona processes and ports).  Off, the
    # server offers the single-user test alone, with four fewer processes and
    # ports to open.
    virtual_household: bool = True

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert and self.tls_key)

    @property
    def nq_enabled(self) -> bool:
        """The networkQuality port runs: its clients speak HTTP/2 over TLS only."""
        return self.tls_enabled and self.nq_port > 0

    def sponsor(self) -> dict[str, str]:
        """What ``/api/sponsor`` answers."""
        return {
            "sponsor_name": self.sponsor_name,
            "sponsor_url": self.sponsor_url,
            "sponsor_city": self.sponsor_city,
        }


@dataclass(frozen=True)
class ParsedFile:
    """The values a file set (already coerced) and the warnings it raised."""

    values: Mapping[str, object]
    warnings: tuple[str, ...]


# --- coercers: raw string -> value, ValueError with a reason on bad input ---


def _text(max_chars: int) -> Callable[[str], str]:
    def coerce(raw: str) -> str:
        if len(raw) > max_chars:
            raise ValueError(f"longer than {max_chars} characters")
        if _CONTROL_CHARS.search(raw):
            raise ValueError("contains a control character")
        return raw

    return coerce


def _secret(raw: str) -> str:
    raw = _text(256)(raw)
    if raw and len(raw) < MIN_SECRET_CHARS:
        raise ValueError(f"must be empty or at least {MIN_SECRET_CHARS} characters long")
    return raw


def _http_url(raw: str) -> str:
    raw = _text(2048)(raw)
    if not raw:
        return raw
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{raw!r} is not an http:// or https:// URL")
    return raw


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def coerce(raw: str) -> int:
        try:
            value = int(raw, 10)
        except ValueError:
            raise ValueError(f"{raw!r} is not a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"{value} is outside {low}..{high}")
        return value

    return coerce


_port_number = _int_between(1, 65535)


def _seconds_between(low: float, high: float) -> Callable[[str], float]:
    def coerce(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number of seconds") from None
        if not low <= value <= high:  # also refuses nan
            raise ValueError(f"{value:g} is outside {low:g}..{high:g} seconds")
        return value

    return coerce


_SWITCH_WORDS = {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}


def _on_off(raw: str) -> bool:
    try:
        return _SWITCH_WORDS[raw.strip().lower()]
    except KeyError:
        raise ValueError(f"{raw!r} is not on or off") from None


def _endpoint(raw: str) -> str:
    """A Twisted server endpoint string; a bare number means ``tcp:N``."""
    raw = raw.strip()
    if raw.isdigit():
        return f"tcp:{_port_number(raw)}"
    if not _ENDPOINT_PATTERN.match(raw):
        raise ValueError(f"{raw!r} is not a port number or an endpoint such as tcp:8000")
    return raw


def _ip_address_or_empty(raw: str) -> str:
    if not raw:
        return raw
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise ValueError(f"{raw!r} is not an IP address") from None


def _networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def _database_url(raw: str) -> str:
    """Empty (this server's SQLite file) or a libpq ``postgresql://`` URL."""
    raw = _text(2048)(raw.strip())
    if not raw:
        return raw
    parts = urlsplit(raw)
    if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
        raise ValueError("must be empty (SQLite in data_dir) or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB")
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        parameters = conninfo_to_dict(raw)  # libpq's own parser: what the daemon will connect with
    except ProgrammingError as error:
        raise ValueError(f"libpq cannot read it: {str(error).strip().splitlines()[0]}") from None
    if not str(parameters.get("port", "5432")).isdigit():
        raise ValueError(f"the port {parameters['port']!r} is not a number")
    return raw


def _server_id(raw: str) -> str:
    raw = raw.strip()
    if raw and not _SERVER_ID_PATTERN.match(raw):
        raise ValueError(f"{raw[:60]!r} must be 1 to 64 letters, digits, dots, dashes or underscores")
    return raw


def _base_url(raw: str) -> str:
    """An http(s) URL with a host and nothing after its path's root, without the trailing slash."""
    url = _http_url(raw.strip())
    parts = urlsplit(url)
    if not url or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ValueError(f"{raw[:80]!r} must be a base URL such as https://test.example.net")
    return url.rstrip("/")


def _fleet_server(label: str, url: str, ping_url: str = "") -> FleetServer:
    label = _text(64)(label.strip())
    if not label:
        raise ValueError("a server needs a label")
    return FleetServer(label, _base_url(url), _http_url(ping_url) if ping_url else "")


def _fleet_servers(servers: list[FleetServer]) -> tuple[FleetServer, ...]:
    if len(servers) > MAX_FLEET_SERVERS:
        raise ValueError(f"more than {MAX_FLEET_SERVERS} servers")
    for seen, key in (({s.label for s in servers}, "label"), ({s.url for s in servers}, "URL")):
        if len(seen) < len(servers):
            raise ValueError(f"two servers have the same {key}")
    return tuple(servers)


def _servers(raw: str) -> tuple[FleetServer, ...]:
    """``LABEL=URL, LABEL=URL``: a label ends at its first ``=``."""
    servers = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        label, equals, url = item.partition("=")
        if not equals:
            raise ValueError(f"{item[:80]!r} is not LABEL=URL")
        servers.append(_fleet_server(label, url))
    return _fleet_servers(servers)


def parse_servers_json(text: str) -> tuple[FleetServer, ...]:
    """``servers_file``'s content: ``[{"label": ..., "url": ..., "ping_url": ... (optional)}, ...]``."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(document, list) or not all(isinstance(item, dict) for item in document):
        raise ValueError('must be a JSON list of {"label": ..., "url": ...} objects')
    servers = []
    for number, item in enumerate(document, start=1):
        if set(item) - {"label", "url", "ping_url"} or not all(isinstance(v, str) for v in item.values()):
            raise ValueError(f"server {number}: only the strings label, url and ping_url are known")
        try:
            servers.append(_fleet_server(item.get("label", ""), item.get("url", ""), item.get("ping_url", "")))
        except ValueError as error:
            raise ValueError(f"server {number}: {error}") from None
    return _fleet_servers(servers)


def _thresholds(raw: str) -> GradeThresholds:
    return GradeThresholds.from_sequence([part.strip() for part in raw.split(",")])


def _path(raw: str) -> str:
    return _text(4096)(raw)


COERCERS: Mapping[str, Callable[[str], object]] = {
    "sponsor_name": _text(100),
    "sponsor_url": _http_url,
    "sponsor_city": _text(100),
    "webhook_url": _http_url,
    "webhook_secret": _secret,
    "telemetry_api_key": _secret,
    "central_url": _http_url,
    "telemetry_max_tests": _int_between(1, 1_000_000),
    "outbox_retry_seconds": _seconds_between(0.01, 3600),
    "telemetry_database": _database_url,
    "server_id": _server_id,
    "fleet_max_tests": _int_between(1, 1_000_000_000),
    "fleet_max_age_days": _int_between(0, 100_000),
    "servers": _servers,
    "servers_file": _path,
    "trusted_proxies": _networks,
    "port": _endpoint,
    "listen_address": _ip_address_or_empty,
    "streaming_port": _port_number,
    "gaming_port": _port_number,
    "video_port": _port_number,
    "updates_port": _port_number,
    "probe_port": _port_number,
    "load_port": _port_number,
    "upload_port": _port_number,
    "load_workers": _int_between(0, 64),
    "nq_port": _int_between(0, 65535),
    "nq_connections_per_ip": _int_between(1, 1_000_000),
    "nq_bulk_seconds": _seconds_between(1, 3600),
    "load_worker_nice": _int_between(0, 19),
    "tls_cert": _path,
    "tls_key": _path,
    "data_dir": _path,
    "grade_thresholds_ms": _thresholds,
    "max_concurrent_tests_per_ip": _int_between(1, 1000),
    "max_tests_per_hour_per_ip": _int_between(1, 100_000),
    "max_concurrent_tests": _int_between(1, 100_000),
    "max_connections_per_ip": _int_between(1, 1_000_000),
    "max_connections": _int_between(1, 1_000_000),
    "http_request_head_seconds": _seconds_between(1, 3600),
    "http_idle_timeout_seconds": _seconds_between(1, 3600),
    "quick_schedule": _on_off,
    "virtual_household": _on_off,
}

assert set(COERCERS) == {f.name for f in dataclasses.fields(Config)}


# --- the file format ---


def _unquote(raw: str) -> str:
    value = raw.strip()
    if value[:1] in ("'", '"'):
        if len(value) < 2 or value[-1] != value[0]:
            raise ValueError(f"unterminated quote in {value!r}")
        return value[1:-1]
    return value


def parse_config(text: str, source: str = "<config>") -> ParsedFile:
    """Parse the text of a config file; raise :class:`ConfigError` on the first bad line."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise ConfigError(source, None, f"larger than {MAX_FILE_BYTES} bytes")
    values: dict[str, object] = {}
    first_seen: dict[str, int] = {}
    warnings: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if len(line) > MAX_LINE_CHARS:
            raise ConfigError(source, number, f"line longer than {MAX_LINE_CHARS} characters")
        key, equals, raw_value = stripped.partition("=")
        key = key.strip()
        if not equals:
            raise ConfigError(source, number, f"expected key=value, got {stripped[:60]!r}")
        if not _KEY_PATTERN.match(key):
            raise ConfigError(source, number, f"{key[:60]!r} is not a valid key name")
        if key not in COERCERS:
            warnings.append(f"{source}:{number}: unknown key {key!r} ignored")
            continue
        if key in first_seen:
            warnings.append(f"{source}:{number}: {key} overrides line {first_seen[key]}")
        try:
            values[key] = COERCERS[key](_unquote(raw_value))
        except ValueError as error:
            raise ConfigError(source, number, f"{key}: {error}") from None
        first_seen[key] = number
    return ParsedFile(values=values, warnings=tuple(warnings))


def read_config_file(path: str) -> ParsedFile:
    """Read and parse *path*; unreadable or non-UTF-8 files are a :class:`ConfigError`."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(path, None, f"cannot read: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(path, None, f"not UTF-8 text ({error.reason})") from None
    return parse_config(text, path)


def apply_overrides(config: Config, overrides: Mapping[str, str], source: str) -> Config:
    """Return *config* with raw string *overrides* (e.g. from the command line) applied."""
    changes = {}
    for key, raw in overrides.items():
        try:
            changes[key] = COERCERS[key](raw)
        except ValueError as error:
            raise ConfigError(source, None, f"{key}: {error}") from None
    return dataclasses.replace(config, **changes)


def load_config(path: str | None, overrides: Mapping[str, str] = {}) -> tuple[Config, tuple[str, ...]]:
    """Build the daemon's :class:`Config` from an optional file and command-line overrides."""
    parsed = read_config_file(path) if path else ParsedFile(values={}, warnings=())
    config = Config(**parsed.values)
    config = apply_overrides(config, overrides, "command line")
    _check_ports_distinct(config, path or "command line")
    return _with_servers_file(config, path or "command line"), parsed.warnings


def _with_servers_file(config: Config, source: str) -> Config:
    """*config* with ``servers`` read from ``servers_file``, when that is set."""
    if not config.servers_file:
        return config
    if config.servers:
        raise ConfigError(source, None, "set servers or servers_file, not both")
    try:
        with open(config.servers_file, "rb") as handle:
            data = handle.read(MAX_SERVERS_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(config.servers_file, None, f"cannot read: {error.strerror}") from None
    if len(data) > MAX_SERVERS_FILE_BYTES:
        raise ConfigError(config.servers_file, None, f"larger than {MAX_SERVERS_FILE_BYTES} bytes")
    try:
        servers = parse_servers_json(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ConfigError(config.servers_file, None, str(error)) from None
    return dataclasses.replace(config, servers=servers)


def child_ports(config: Config) -> dict[str, int]:
    """The port of each child process, by role."""
    return {
        "probe": config.probe_port,
        "streaming": config.streaming_port,
        "gaming": config.gaming_port,
        "video": config.video_port,
        "updates": config.updates_port,
        "load": config.load_port,
        "upload": config.upload_port,
    } | ({"nq": config.nq_port} if config.nq_enabled else {})


def server_name(configured: str, hostname: str) -> str:
    """``server_id`` when set, else *hostname* made to fit its rule (``_SERVER_ID_PATTERN``)."""
    return configured or re.sub(r"[^A-Za-z0-9._-]", "-", hostname)[:64] or "lqos-bufferbloat"


def _check_ports_distinct(config: Config, source: str) -> None:
    seen: dict[int, str] = {}
    for role, port in child_ports(config).items():
        if port in seen:
            raise ConfigError(source, None, f"{role}_port and {seen[port]}_port are both {port}")
        seen[port] = role


def render_config(values: Iterable[tuple[str, str]]) -> str:
    """Write ``key=value`` lines, quoting where needed (used by tests and docs)."""
    lines = []
    for key, raw in values:
        needs_quotes = raw != raw.strip() or raw[:1] in ("'", '"')
        quote = "'" if '"' in raw else '"'
        lines.append(f"{key}={quote}{raw}{quote}" if needs_quotes else f"{key}={raw}")
    return "\n".join(lines) + "\n"
