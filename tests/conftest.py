"""Fixtures shared by the whole suite: a real daemon, real certificates."""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest
from hypothesis import settings

from daemon import REPO, SINGLE_USER_ONLY, Daemon, free_ports, start_daemon
from postgres import Cluster

# No per-example deadline: the unit tests share two cores with daemons and browsers, where one
# example of test_keeping_up took 256 ms against hypothesis's 200 ms default. Speed is measured in
# bench/, not asserted in tests.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

# How much of each daemon's log a failed test's report carries: its last requests and errors.
DAEMON_LOG_TAIL_CHARS = 8000


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report ends with the log of every daemon it used, so that a failure in CI,
    where the temporary directories are gone, can still be read."""
    report = yield
    if report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, Daemon) and value.log_path.exists():
                report.sections.append((f"daemon {name}: end of twistd.log", value.log()[-DAEMON_LOG_TAIL_CHARS:]))
    return report


# The modules that take longest in the suite's first part, longest first (worker-seconds in one
# run on 2 cores).  `make test` hands modules to its workers whole and in collection order
# (--dist loadscope --no-loadscope-reorder), so these start first and the short ones fill in at
# the end; handed out by test count instead, the unit modules went first, and one worker was
# still in its third long module 50 s after another had run out of work.
LONGEST_MODULES_FIRST = (
    "tests/browser/test_household_page.py",  # 93
    "tests/integration/test_cli.py",  # 74
    "tests/integration/test_household_cli.py",  # 68
    "tests/integration/test_faults.py",  # 52
    "tests/integration/test_hostile_input.py",  # 46
    "tests/browser/test_single_user_page.py",  # 44
    "tests/integration/test_daemon.py",  # 42
    "tests/integration/test_household_server.py",  # 30
    "tests/integration/test_fleet_selection.py",  # 21
    "tests/browser/test_https_page.py",  # 19
    "tests/browser/test_firefox.py",  # 18
    "tests/browser/test_server_choice.py",  # 17
    "tests/integration/test_idle_connections.py",  # 16
    "tests/integration/test_fleet.py",  # 16
    "tests/integration/test_telemetry_webhook.py",  # 15
    "tests/integration/test_packaging.py",  # 15
    "tests/integration/test_load_endpoints.py",  # 14
    "tests/integration/test_fleet_store.py",  # 13
)


def pytest_collection_modifyitems(items):
    """The long modules first (``LONGEST_MODULES_FIRST``), the rest after them as collected."""
    rank = {module: place for place, module in enumerate(LONGEST_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture
def daemon(tmp_path):
    """A daemon of its own for a test that kills or stops things."""
    running = start_daemon(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def single_user_daemon(tmp_path):
    """A daemon of its own, without the household, for a test that kills or stops things."""
    running = start_daemon(tmp_path, config_text=SINGLE_USER_ONLY)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory):
    """One daemon for a module of tests that only read from it."""
    running = start_daemon(tmp_path_factory.mktemp("daemon"),
                           config_text="sponsor_name=Example Fibre\n"
                                       "sponsor_url=https://fibre.example/\n"
                                       'sponsor_city="Springfield, IL"\n'
                                       "max_concurrent_tests_per_ip=1000\n"
                                       "max_tests_per_hour_per_ip=100000\n")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory) -> tuple[str, str]:
    """A self-signed pair from the script operators use for development."""
    directory = tmp_path_factory.mktemp("tls")
    subprocess.run([str(REPO / "etc" / "create_test_certificates.sh"), str(directory)],
                   check=True, capture_output=True)
    return str(directory / "cert.pem"), str(directory / "key.pem")


CLOUD_GAMING_PLUGIN = '''
from lqos.measure.grading import GradeThresholds
from lqos.personas.model import Persona, PersonaScoring, TrafficPlan

cloud_gaming = Persona(
    name="cloud_gaming",
    label="Priya, cloud gaming",
    icon="☁️",
    description="A game streamed from the cloud: 30 Mbit/s down at 60 frames/s.",
    port={port},
    traffic=TrafficPlan(down_mbps=30.0, up_mbps=0.5, tick_hz=60),
    deadline_ms=150,
    scoring=PersonaScoring("latency", "game frames", "the picture would stutter",
                           latency_thresholds=GradeThresholds(5, 15, 30, 60, 100)),
)
'''


@pytest.fixture
def daemon_with_fifth_persona(tmp_path):
    """A daemon that finds an extra persona through the plugin path alone."""
    plugins = tmp_path / "operator" / "lqos" / "plugins"
    plugins.mkdir(parents=True)
    (port,) = free_ports(1)
    (plugins / "cloud_gaming.py").write_text(textwrap.dedent(CLOUD_GAMING_PLUGIN.format(port=port)))
    python_path = os.pathsep.join(filter(None, [str(tmp_path / "operator"), os.environ.get("PYTHONPATH")]))
    daemon = start_daemon(tmp_path, env={"PYTHONPATH": python_path})
    daemon.child_ports["cloud_gaming"] = port
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server of this test process's own (tests/postgres.py), removed at the end."""
    cluster = Cluster(free_ports(1)[0])
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def fleet_database(postgres) -> str:
    """The URL of a new, empty database on that server: a fleet's telemetry_database."""
    return postgres.new_database()
