"""What the probe accepts as a probe, and the rate bound on one connection."""

from __future__ import annotations

import json

import pytest

from lqos.net.ratelimit import TokenBucket
from lqos.probe.server import is_probe


@pytest.mark.parametrize(
    "payload, accepted",
    [
        ({"seq": 0, "t": 12.25}, True),
        ({"seq": 5, "t": 3, "extra": "ignored"}, True),
        ({"seq": -1, "t": 1}, False),
        ({"seq": True, "t": 1}, False),
        ({"seq": 1, "t": "now"}, False),
        ({"seq": 1}, False),
        ([1, 2], False),
    ],
)
def test_is_probe(payload, accepted):
    assert is_probe(json.dumps(payload).encode()) is accepted


def test_is_probe_rejects_non_json():
    assert not is_probe(b"\xff\xfe")
    assert not is_probe(b"{")


def test_token_bucket_allows_the_burst_then_the_rate():
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.1) is True
    assert bucket.take(0.1) is False
    assert all(bucket.take(1.0 + i * 0.1) for i in range(10))
