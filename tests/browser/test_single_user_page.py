"""The customer's page in a real Chromium against the real daemon: start, run, result, share, failure."""

from __future__ import annotations

import os
import signal

import pytest

from daemon import SINGLE_USER_ONLY, pid_alive, start_daemon, wait_until
from harness import shared_record, throttle, wait_for_screen

pytestmark = pytest.mark.browser

LOADED_PHASES = ("download", "upload", "bidirectional")


def console_errors(page) -> list[str]:
    """Console errors and uncaught exceptions (a CSP violation is one)."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def shown_phase_grades(page) -> dict[str, str]:
    return {name: page.text_content(f".phase-card[data-phase='{name}'] .grade-chip").strip()
            for name in LOADED_PHASES}


def test_start_page_shows_the_configured_sponsor_and_one_start_button(sponsored_daemon, browser):
    page = browser.new_page(viewport={"width": 360, "height": 740})
    errors = console_errors(page)
    page.goto(sponsored_daemon.url + "/")
    page.wait_for_selector("#sponsor:not([hidden])")
    assert page.text_content("#sponsor").strip() == "Sponsor: Example Fibre | Springfield, IL"
    assert page.get_attribute("#sponsor a", "href") == "https://fibre.example/"
    assert page.is_visible("#start-button") and page.is_enabled("#start-button")
    # The virtual household is offered next to it (tests/browser/test_household_page.py), single user is the default.
    household = page.locator("input[name='mode'][value='virtual_household']")
    assert household.is_enabled() and not household.is_checked()
    assert page.is_checked("input[name='mode'][value='single_user']")
    assert page.is_hidden("#household-members")
    # Nothing is wider than a 360 px phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert errors == []
    page.close()


def test_a_test_shows_the_stored_grade_and_its_share_link_opens_it(sponsored_daemon, browser):
    page = browser.new_page(viewport={"width": 390, "height": 844})
    errors = console_errors(page)
    throttle(page)
    page.goto(sponsored_daemon.url + "/?schedule=quick")
    page.click("#start-button")
    page.wait_for_selector("#stepper .step[aria-current='step']", timeout=10_000)
    assert page.text_content("#phase-now").strip()
    wait_for_screen(page, "result")

    share_link = page.input_value("#share-link")
    share_id = share_link.rsplit("/r/", 1)[1]
    record = shared_record(sponsored_daemon, share_id)
    stored = record["result"]["overall"]["grade"]
    assert page.get_attribute("#grade-letter", "data-grade") == (stored or "none")
    if stored:
        assert page.text_content("#grade-letter").strip() == stored
    expected_phases = {name: record["result"]["phases"][name]["grade"] or "–" for name in LOADED_PHASES}
    for name in LOADED_PHASES:  # graded on the server's timing of the page's probes
        phase = record["result"]["phases"][name]
        assert phase["server_timed"] >= 0.9 * phase["samples"] > 0, (name, phase)
        assert phase["ack_timed"] >= 0.5 * phase["samples"], (name, phase)  # the page submits the kernel's
    assert shown_phase_grades(page) == expected_phases
    assert page.url == share_link  # a reload shows the same result
    assert page.is_visible("#cdf-chart canvas")  # the distribution of the probes this page kept
    assert errors == []
    page.close()

    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        shared = context.new_page()
        shared_errors = console_errors(shared)
        shared.goto(share_link)
        wait_for_screen(shared, "result", timeout=10_000)
        assert shared.get_attribute("#grade-letter", "data-grade") == (stored or "none")
        assert shown_phase_grades(shared) == expected_phases
        assert shared.is_visible("#shared-note")
        assert shared.is_hidden("#cdf-figure")  # no raw probes in a shared result
        assert shared.input_value("#share-link") == share_link
        assert shared_errors == []
    finally:
        context.close()


def test_a_busy_server_says_when_to_try_again_and_gives_no_grade(sponsored_daemon, browser):
    page = browser.new_page()
    page.route("**/api/tests", lambda route: route.fulfill(
        status=429, headers={"Retry-After": "42", "Content-Type": "application/json"},
        body='{"error": "a test from this address is already running"}'))
    page.goto(sponsored_daemon.url + "/?schedule=short")
    page.click("#start-button")
    wait_for_screen(page, "error", timeout=10_000)
    assert "already running" in page.text_content("#error-message")
    assert "42" in page.text_content("#retry-button")
    assert page.is_disabled("#retry-button")
    assert page.text_content("#grade-letter") == ""
    page.close()


def test_a_daemon_killed_mid_test_ends_in_an_error_and_no_grade(tmp_path, browser):
    daemon = start_daemon(tmp_path, config_text=SINGLE_USER_ONLY)
    children = daemon.child_pids()
    try:
        page = browser.new_page()
        throttle(page)
        # A server without the household offers no mode to choose, whatever the address asks for.
        page.goto(daemon.url + "/?mode=household&schedule=quick")
        page.wait_for_selector(".mode-switch", state="hidden")
        assert page.is_visible("#lead-single_user") and page.is_hidden("#household-members")
        assert page.url == daemon.url + "/?schedule=quick"
        page.click("#start-button")
        page.wait_for_selector("#stepper .step[data-phase='download'][data-state='current']", timeout=20_000)
        daemon.process.kill()
        daemon.process.wait()
        wait_for_screen(page, "error", timeout=15_000)
        assert page.text_content("#error-message").strip()
        assert "No grade" in page.text_content("#error-consequence")
        assert page.is_hidden("#screen-result")
        assert page.text_content("#grade-letter") == ""
        page.close()
    finally:
        daemon.stop()
        # Children notice their parent's death by themselves; none may outlive this test.
        wait_until(lambda: not any(pid_alive(pid) for pid in children.values()), timeout=5)
        for pid in children.values():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_without_module_workers_the_load_runs_on_the_page_itself(sponsored_daemon, browser):
    """Browsers without module workers (Firefox before 114, Safari before 15) still get a result."""
    page = browser.new_page()
    errors = console_errors(page)
    page.add_init_script("""{
        const Classic = window.Worker;
        window.Worker = function (url, options) {
            if (options && options.type === "module") throw new TypeError("module workers are not supported");
            return new Classic(url, options);
        };
    }""")
    throttle(page)
    page.goto(sponsored_daemon.url + "/?schedule=quick")
    page.click("#start-button")
    wait_for_screen(page, "result")
    record = shared_record(sponsored_daemon, page.input_value("#share-link").rsplit("/r/", 1)[1])
    for name in LOADED_PHASES:
        phase = record["result"]["phases"][name]
        assert phase["grade"] is not None, (name, phase)
        for direction in ("download", "upload"):
            if name in (direction, "bidirectional"):
                assert phase["throughput_mbps"][direction]["median"] > 1, (name, direction, phase)
    assert errors == []
    page.close()
