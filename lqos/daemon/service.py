"""The daemon as a tree of Twisted services, built from a :class:`Config`."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import resource
import socket
import sys
from pathlib import Path

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.web.server import Site

from lqos.daemon.config import Config, server_name
from lqos.daemon.endpoints import guard_outside_tls, main_endpoint
from lqos.daemon.secret import SECRET_FILE, load_or_create_secret
from lqos.daemon.supervisor import ChildSpec, Supervisor
from lqos.load.request import LoadRequestFactory
from lqos.net.connections import ConnectionLimits
from lqos.personas.household import Household
from lqos.personas.registry import discover_personas
from lqos.sessions import SessionLimits, SessionRegistry, offered_schedules
from lqos.telemetry.service import TelemetryService
from lqos.web.accesslog import access_log_line
from lqos.web.app import MainApp
from lqos.web.household import HouseholdEndpoints

log = Logger()

# Raise the soft limit on open files to this (or the hard limit): each
# connection is a descriptor, and the common soft default of 1024 is below
# max_connections.
WANTED_OPEN_FILES = 65536
# A child that sends nothing for this long (it sends a heartbeat every second)
# is reported "unresponsive" in /api/health, which then answers 503.
CHILD_SILENT_SECONDS = 5.0


def child_specs(config: Config, household: Household) -> list[ChildSpec]:
    """The child processes this daemon runs: the probe first, one per persona, then the load workers,
    then (with TLS) the networkQuality workers."""
    secret_file = str(Path(config.data_dir) / SECRET_FILE)
    return [_python_child("probe", "lqos.probe", config.probe_port, config)] + [
        _python_child(name, "lqos.personas", port, config, "--persona", name, "--secret-file", secret_file)
        for name, port in household.ports.items()
    ] + [
        _python_child(f"load-{number}", "lqos.load", config.load_port, config, "--secret-file", secret_file,
                      "--upload-port", str(config.upload_port),
                      "--nice", str(config.load_worker_nice),
                      "--idle-seconds", str(config.http_idle_timeout_seconds),
                      "--head-seconds", str(config.http_request_head_seconds),
                      "--connections-per-ip", str(config.max_connections_per_ip),
                      "--connections", str(config.max_connections))
        for number in range(1, load_worker_count(config) + 1)
    ] + [
        _python_child(f"nq-{number}", "lqos.nq", config.nq_port, config,
                      "--nice", str(config.load_worker_nice),
                      "--head-seconds", str(config.http_request_head_seconds),
                      "--connections-per-ip", str(config.nq_connections_per_ip),
                      "--bulk-seconds", str(config.nq_bulk_seconds),
                      "--connections", str(config.max_connections))
        for number in (range(1, load_worker_count(config) + 1) if config.nq_enabled else ())
    ]


def load_worker_count(config: Config) -> int:
    """``load_workers``, where 0 means one per CPU core this process may use."""
    return config.load_workers or len(os.sched_getaffinity(0)) or 1


def _python_child(role: str, module: str, port: int, config: Config, *extra: str) -> ChildSpec:
    argv = [sys.executable, "-m", module, "--port", str(port), *extra]
    if config.listen_address:
        argv += ["--interface", config.listen_address]
    if config.tls_enabled:
        argv += ["--tls-cert", config.tls_cert, "--tls-key", config.tls_key]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return ChildSpec(role=role, argv=tuple(argv), port=port, env=env)


def session_limits(config: Config) -> SessionLimits:
    return SessionLimits(
        concurrent_per_ip=config.max_concurrent_tests_per_ip,
        per_hour_per_ip=config.max_tests_per_hour_per_ip,
        concurrent_total=config.max_concurrent_tests,
    )


def make_service(config: Config, reactor) -> MultiService:
    """The supervisor (children start first) and the main HTTP port."""
    config = dataclasses.replace(config, server_id=server_name(config.server_id, socket.gethostname()))
    top = MultiService()
    secret = load_or_create_secret(config.data_dir)
    household = Household.from_config(config, discover_personas() if config.virtual_household else {})
    registry = SessionRegistry(secret, reactor, session_limits(config),
                               offered_schedules(config.quick_schedule, config.virtual_household))
    supervisor = Supervisor(child_specs(config, household), reactor,
                            on_message=child_message_router(registry, household),
                            silent_after=CHILD_SILENT_SECONDS)
    supervisor.setServiceParent(top)
    telemetry = TelemetryService(config, reactor, supervisor.snapshot, config.server_id)
    telemetry.setServiceParent(top)
    app = MainApp(config, supervisor, clock=reactor, registry=registry, store=telemetry.results,
                  telemetry=telemetry.api, household=HouseholdEndpoints(household, secret),
                  telemetry_health=telemetry.health)
    # Every request's body is held to a small cap before it is read (lqos/load/request.py).
    site = Site(app.resource(), timeout=config.http_idle_timeout_seconds,
                requestFactory=LoadRequestFactory(reactor),
                logFormatter=access_log_line)
    # Twisted's HTTPChannel already bounds a request's head: a 16 KiB line,
    # 500 headers, 16 KiB of headers in all (431/400 and close beyond them).
    guarded = lambda wrapped: ConnectionLimits(wrapped, reactor, per_ip=config.max_connections_per_ip,
                               total=config.max_connections, head_seconds=config.http_request_head_seconds,
                               exempt=lambda host: _is_trusted_proxy(host, config))
    raise_open_files_limit(config.max_connections)
    description = main_endpoint(config.port)
    # TLS goes on a TCP port; another kind of endpoint (unix:, or an operator's own ssl:) is served as written.
    tls_files = (config.tls_cert, config.tls_key) if description.startswith("tcp:") else ("", "")
    endpoint, guarded = guard_outside_tls(reactor, serverFromString(reactor, description), site, guarded, *tls_files)
    listener = StreamServerEndpointService(endpoint, guarded)
    listener._raiseSynchronously = True  # a port in use stops start-up, as strports does
    listener.setServiceParent(top)
    log.info("main site on {endpoint}{tls}", endpoint=description.split(":privateKey=")[0],
             tls=" with TLS" if tls_files[0] else "")
    if config.nq_enabled:
        log.info("networkQuality configuration at https://HOST:{port}/.well-known/nq", port=config.nq_port)
    elif config.nq_port:
        log.info("networkQuality port off: its clients speak HTTP/2 over TLS, and no certificate is configured")
    return top


def child_message_router(registry: SessionRegistry, household: Household):
    """Where a child's report goes: load workers' byte counts to the sessions, persona stats to the household."""
    def route(role: str, message: dict) -> None:
        if message.get("event") == "load-bytes" and role.startswith("load-"):
            registry.count_load_bytes(message.get("tests"))
        else:
            household.record_stats(role, message)
    return route


def _is_trusted_proxy(host: str, config: Config) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in config.trusted_proxies)


def raise_open_files_limit(connections: int) -> None:
    """Let the process hold *connections* sockets (plus some), within the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(WANTED_OPEN_FILES, connections + 1024)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as error:
            log.warn("could not raise the open-files limit from {soft}: {error}", soft=soft, error=error)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < connections + 64:
        log.warn("open-files limit {soft} is below max_connections={connections}; raise LimitNOFILE",
                 soft=soft, connections=connections)
