"""The daemon as a tree of Twisted services, built from a :class:`Config`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.web.server import Site

from lqos.config import Config
from lqos.personas.household import Household
from lqos.personas.registry import discover_personas
from lqos.secret import SECRET_FILE, load_or_create_secret
from lqos.sessions import SessionLimits, SessionRegistry
from lqos.endpoints import main_endpoint
from lqos.load.request import LoadRequestFactory
from lqos.supervisor import ChildSpec, Supervisor
from lqos.telemetry.service import TelemetryService
from lqos.web.app import MainApp
from lqos.web.household import HouseholdEndpoints

log = Logger()

HTTP_IDLE_TIMEOUT = 60.0


def child_specs(config: Config, household: Household) -> list[ChildSpec]:
    """The child processes this daemon runs: the probe first, then one per persona."""
    secret_file = str(Path(config.data_dir) / SECRET_FILE)
    return [_python_child("probe", "lqos.probe", config.probe_port, config)] + [
        _python_child(name, "lqos.personas", port, config, "--persona", name, "--secret-file", secret_file)
        for name, port in household.ports.items()
    ]


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
    top = MultiService()
    secret = load_or_create_secret(config.data_dir)
    household = Household.from_config(config, discover_personas())
    supervisor = Supervisor(child_specs(config, household), reactor, on_message=household.record_stats)
    supervisor.setServiceParent(top)
    registry = SessionRegistry(secret, reactor, session_limits(config))
    telemetry = TelemetryService(config, reactor, supervisor.snapshot)
    telemetry.setServiceParent(top)
    app = MainApp(config, supervisor, clock=reactor, registry=registry, store=telemetry.store,
                  telemetry=telemetry.api, household=HouseholdEndpoints(household, secret))
    # Every request's body goes to a bounded sink chosen before it is read (lqos/load/request.py).
    site = Site(app.resource(), timeout=HTTP_IDLE_TIMEOUT,
                requestFactory=LoadRequestFactory(registry, reactor, app.client_ip))
    description = main_endpoint(config.port, config.tls_cert, config.tls_key)
    endpoint = serverFromString(reactor, description)
    listener = StreamServerEndpointService(endpoint, site)
    listener._raiseSynchronously = True  # a port in use stops start-up, as strports does
    listener.setServiceParent(top)
    log.info("main site on {endpoint}", endpoint=description.split(":privateKey=")[0])
    return top
