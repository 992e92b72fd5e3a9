"""Fixtures shared by the whole suite: a real daemon, real certificates."""

from __future__ import annotations

import subprocess

import pytest

from daemon import REPO, start_daemon


@pytest.fixture
def daemon(tmp_path):
    """A daemon of its own for a test that kills or stops things."""
    running = start_daemon(tmp_path)
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
