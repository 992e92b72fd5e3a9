"""Chromium for the browser tests, and a daemon with a sponsor for the tests that only read."""

from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from daemon import REPO, start_daemon
from harness import launch

SPONSOR_CONFIG = ("sponsor_name=Example Fibre\n"
                  "sponsor_url=https://fibre.example/\n"
                  'sponsor_city="Springfield, IL"\n')


@pytest.fixture(scope="module")
def browser():
    if not (REPO / "web_client" / "vendor" / "uPlot.esm.js").exists():
        pytest.fail("web_client/vendor/ is missing: run `make install` (it runs npm ci and copies uPlot)")
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def sponsored_daemon(tmp_path_factory):
    running = start_daemon(tmp_path_factory.mktemp("daemon"), config_text=SPONSOR_CONFIG)
    yield running
    running.stop()
