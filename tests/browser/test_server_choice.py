"""The page picks the nearest server of a fleet and lets the customer pick another (Chromium)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from daemon import SINGLE_USER_ONLY
from fleet_pair import start_fleet_pair
from harness import wait_for_screen
from wire import complete_test

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    pair = start_fleet_pair(tmp_path_factory.mktemp("fleet"), SINGLE_USER_ONLY)
    yield pair
    pair.stop()


def wait_for_choice(page) -> None:
    """Until the page has timed the servers and settled on one."""
    expect(page.locator("#server-status")).to_have_text(re.compile("^Testing with"), timeout=30_000)


def chosen(page) -> str:
    return page.eval_on_selector("#server-select", "select => select.selectedOptions[0].textContent")


def test_the_page_moves_to_the_nearest_server(fleet, browser):
    page = browser.new_page(viewport={"width": 360, "height": 740})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{fleet.far.url}/?schedule=quick")
    try:
        # Each of the 8 pings may take its 2 s timeout before the page moves.
        page.wait_for_url(f"{fleet.near.url}/?schedule=quick&server=Near", timeout=30_000)
    except PlaywrightTimeoutError:
        pytest.fail(f"the page stayed at {page.url}: {page.text_content('#server-status')!r}, "
                    f"servers {page.eval_on_selector_all('#server-select option', 'os => os.map(o => o.text)')}")
    wait_for_choice(page)
    assert page.text_content("#server-status") == "Testing with Near, the nearest server."
    assert chosen(page).startswith("Near (") and page.is_visible("#server-select")
    assert errors == []
    page.close()


def test_a_result_names_the_server_that_ran_it(fleet, browser):
    """A test's result, as its share link shows it on the server that ran it (the CLI's test in
    test_fleet_selection.py runs a whole test there; here the submission is the wire's)."""
    _, result = complete_test(fleet.near)
    page = browser.new_page()
    page.goto(f"{fleet.near.url}/r/{result['share_id']}")
    wait_for_screen(page, "result", timeout=15_000)
    assert "server near" in page.text_content("#result-details")
    assert page.input_value("#share-link") == f"{fleet.near.url}/r/{result['share_id']}"
    page.close()


def test_a_server_the_customer_picks_is_kept(fleet, browser):
    page = browser.new_page()
    page.goto(f"{fleet.near.url}/?server=Near")
    wait_for_choice(page)
    page.select_option("#server-select", label=page.eval_on_selector(
        "#server-select", "s => [...s.options].find(o => o.textContent.startsWith('Far')).textContent"))
    page.wait_for_url(f"{fleet.far.url}/?server=Far", timeout=10_000)
    wait_for_choice(page)
    assert page.text_content("#server-status") == "Testing with Far."  # farther, and kept: the customer chose it
    assert chosen(page).startswith("Far (")
    page.close()


def test_a_server_without_a_fleet_shows_no_choice(sponsored_daemon, browser):
    page = browser.new_page()
    page.goto(sponsored_daemon.url + "/")
    page.wait_for_selector("#server-choice[data-servers='0']", state="attached")  # it asked, and heard of none
    assert page.is_hidden("#server-choice")
    page.close()
