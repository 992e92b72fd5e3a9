"""The page over HTTPS, end to end: a daemon with a self-signed certificate
(etc/create_test_certificates.sh), every port speaking TLS, and headless
Chromium trusting exactly that certificate's key (not ignoring every error)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.sync_api import sync_playwright

from daemon import REPO, start_daemon
from harness import CHROMIUM, CHROMIUM_ARGS, throttle, wait_for_screen

pytestmark = pytest.mark.browser

GRADES = ("A+", "A", "B", "C", "D", "F")

# The first message of a WebSocket, opened from the page (its CSP allows wss:).
FIRST_MESSAGE_JS = """url => new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const timer = setTimeout(() => { ws.close(); reject(new Error("no message from " + url)); }, 5000);
    ws.onmessage = event => { clearTimeout(timer); ws.close(); resolve(event.data); };
    ws.onerror = () => { clearTimeout(timer); reject(new Error("WebSocket error on " + url)); };
})"""


def spki_sha256(cert_path: str) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)): what --ignore-certificate-errors-spki-list takes."""
    certificate = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    der = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory, certificates):
    running = start_daemon(tmp_path_factory.mktemp("tls-daemon"), tls=certificates,
                           config_text="sponsor_name=Example Fibre\nsponsor_city=Springfield\n")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def playwright():
    if not (REPO / "web_client" / "vendor" / "uPlot.esm.js").exists():
        pytest.fail("web_client/vendor/ is missing: run `make install` (it runs npm ci and copies uPlot)")
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def trusting_browser(playwright, certificates):
    """Chromium that accepts the test certificate's key on every port (page, probe, personas),
    in workers too; any other certificate error still fails."""
    chromium = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki_sha256(certificates[0])}"])
    yield chromium
    chromium.close()


def page_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def test_a_test_over_https_reaches_a_grade(tls_daemon, trusting_browser):
    assert tls_daemon.url.startswith("https://")
    page = trusting_browser.new_page(viewport={"width": 390, "height": 844})
    errors = page_errors(page)
    throttle(page)
    page.goto(tls_daemon.url + "/?schedule=quick")
    assert page.evaluate("location.protocol") == "https:" and page.evaluate("window.isSecureContext")
    page.wait_for_selector("#sponsor:not([hidden])")

    with page.expect_response(lambda r: r.url.endswith("/api/tests") and r.request.method == "POST") as started:
        page.click("#start-button")
    session = started.value.json()
    # The page is told to use TLS everywhere: the probe and the load workers on their own ports.
    assert session["probe_url"].startswith(f"wss://127.0.0.1:{tls_daemon.child_ports['probe']}/")
    assert session["bulk_ws_url"].startswith(f"wss://127.0.0.1:{tls_daemon.child_ports['load']}/")
    assert session["download_url"].startswith("https://") and session["upload_url"].startswith("https://")

    wait_for_screen(page, "result")
    share_id = page.input_value("#share-link").rsplit("/r/", 1)[1]
    status, record = tls_daemon.get_json_accepting(f"/r/{share_id}")
    assert status == 200
    result = record["result"]
    grade = result["overall"]["grade"]
    assert grade in GRADES, result["overall"]
    assert page.get_attribute("#grade-letter", "data-grade") == grade
    assert page.text_content("#grade-letter").strip() == grade
    # The grade rests on probes answered through wss:// on the probe port.
    assert result["reliable"] and result["baseline"]["samples"] > 0
    assert all(result["phases"][name]["samples"] > 0 for name in ("download", "upload", "bidirectional"))
    assert errors == []
    page.close()


# Twisted 26's TLS server installs an ALPN callback on every connection; when the
# wrapped factory offers no protocol (IProtocolNegotiationFactory) and the client
# offers some (every browser does: h2, http/1.1), OpenSSL aborts the handshake.
# Every factory on a port therefore names http/1.1; this checks it in a browser.
def test_every_persona_port_speaks_wss_to_the_browser(tls_daemon, trusting_browser):
    status, session = tls_daemon.post_json("/api/tests", {"mode": "virtual_household", "schedule": "short"})
    assert status == 201, session
    page = trusting_browser.new_page()
    errors = page_errors(page)
    page.goto(tls_daemon.url + "/")
    seen = {}
    for persona in session["personas"]:
        assert persona["url"].startswith(f"wss://127.0.0.1:{tls_daemon.child_ports[persona['name']]}/")
        hello = json.loads(page.evaluate(FIRST_MESSAGE_JS, persona["url"]))
        seen[persona["name"]] = hello["type"]
    assert seen == {name: "hello" for name in ("streaming", "gaming", "video", "updates")}
    # And the probe port over wss://, the way the page's worker opens it.
    echo = page.evaluate("""url => new Promise((resolve, reject) => {
        const ws = new WebSocket(url);
        ws.onopen = () => ws.send(JSON.stringify({seq: 7, t: 1.5}));
        ws.onmessage = event => { ws.close(); resolve(event.data); };
        ws.onerror = () => reject(new Error("probe WebSocket error"));
    })""", tls_daemon.child_url("probe", "/ws/probe", websocket=True))
    assert json.loads(echo)["seq"] == 7
    assert errors == []
    page.close()


def test_chromium_without_the_key_pinned_refuses_the_page(tls_daemon, playwright):
    """The trust above comes from the pinned key, not from a browser that accepts anything."""
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        page = chromium.new_page()
        with pytest.raises(Exception, match="ERR_CERT_AUTHORITY_INVALID"):
            page.goto(tls_daemon.url + "/")
    finally:
        chromium.close()
