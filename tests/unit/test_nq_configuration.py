"""The draft's configuration document, built from the authority the client used (lqos/nq/server.py)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from lqos.nq.server import nq_configuration


def urls(authority: bytes, port: int = 8443) -> dict:
    return json.loads(nq_configuration(authority, port))["urls"]


def test_every_url_names_the_host_and_port_the_client_used():
    assert urls(b"speedtest.isp.example:9443")["https_upload_url"] == "https://speedtest.isp.example:9443/nq/upload"
    assert urls(b"[2001:db8::1]:8443")["large_https_download_url"] == "https://[2001:db8::1]:8443/nq/large"


def test_an_authority_without_a_port_gets_the_port_written_out():
    assert urls(b"speedtest.isp.example")["small_https_download_url"] == "https://speedtest.isp.example:8443/nq/small"


def test_both_key_sets_name_the_same_urls():
    found = urls(b"a.example:1")
    assert found["small_download_url"] == found["small_https_download_url"]
    assert found["large_download_url"] == found["large_https_download_url"]
    assert found["upload_url"] == found["https_upload_url"]


def test_an_authority_that_is_no_host_gets_no_configuration():
    for authority in (b"", b"evil.example/path", b"a.example:0", b"a.example:70000", b"a b", b"user@a.example",
                      b"a.example:80:81", b"[::1", "h\u00f6st".encode()):
        assert nq_configuration(authority, 8443) is None, authority


@given(st.binary(max_size=300))
def test_any_authority_gives_none_or_https_urls_on_one_host(authority):
    document = nq_configuration(authority, 8443)
    if document is not None:
        found = set(json.loads(document)["urls"].values())
        assert len({url.rsplit("/nq/", 1)[0] for url in found}) == 1
        assert all(url.startswith("https://") and "\\n" not in url for url in found)
