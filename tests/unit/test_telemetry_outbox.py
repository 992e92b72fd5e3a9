"""The outbox service on a fake clock, fake store and fake HTTP: retries, bounds, no doubles."""

from __future__ import annotations

import hashlib
import hmac
import json

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from lqos.telemetry.outbox import Destination, Outbox, RetryPolicy
from lqos.telemetry.payloads import (CENTRAL, DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WEBHOOK,
                                     central_body, signature, webhook_body)
from lqos.telemetry.store import OutboxRow, OutboxTick

SECRET = "a-webhook-secret-of-some-length"
RECORD = {
    "test_id": "t1", "share_id": "s1", "created_at": "2025-01-01T00:00:00+00:00",
    "client_ip": "203.0.113.7", "user_agent": "Mozilla/5.0 Secret Browser", "mode": "single_user",
    "schedule": "short", "duration_seconds": 15, "streams": {"download": 4},
    "server_counters": {"download_bytes": 1, "upload_bytes": 2}, "result": {"overall": {"grade": "A"}},
}


class FakeStore:
    """The outbox's view of the store, in memory: rows by id with their next attempt time."""

    def __init__(self, clock: Clock, count: int, target: str = WEBHOOK):
        self.clock = clock
        self.rows = {i: OutboxRow(i, target, f"test-{i}", b'{"n":%d}' % i, 0, 10 ** 9) for i in range(count)}
        self.next_at = dict.fromkeys(self.rows, 0.0)
        self.errors: dict[int, str] = {}

    def outbox_tick(self, targets, limit, skip):
        now = self.clock.seconds()
        due = [row for i, row in sorted(self.rows.items())
               if row.target in targets and self.next_at[i] <= now and i not in skip][:limit]
        return defer.succeed(OutboxTick(tuple(due), 0, {WEBHOOK: len(self.rows)}))

    def delivered(self, row_id):
        del self.rows[row_id]
        return defer.succeed(None)

    def retry_later(self, row_id, attempts, next_attempt_at, error):
        row = self.rows[row_id]
        self.rows[row_id] = OutboxRow(row.id, row.target, row.test_id, row.body, attempts, row.expires_at)
        self.next_at[row_id] = next_attempt_at
        self.errors[row_id] = error
        return defer.succeed(None)


class FakePost:
    """Records each POST and leaves its answer to the test."""

    def __init__(self):
        self.calls: list[tuple[str, bytes, dict, defer.Deferred]] = []

    def __call__(self, url, body, headers, timeout):
        answer = defer.Deferred()
        self.calls.append((url, body, dict(headers), answer))
        return answer

    def answer_all(self, status: int) -> None:
        for *_, answer in list(self.calls):
            if not answer.called:
                answer.callback(status)


class OutboxTests(SynchronousTestCase):
    def make_outbox(self, rows: int, policy=RetryPolicy.starting_at(5.0)):
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.store = FakeStore(self.clock, rows)
        self.post = FakePost()
        outbox = Outbox(self.store, {WEBHOOK: Destination("http://portal.example/hook", SECRET)},
                        self.clock, self.post, policy)
        outbox.startService()
        self.addCleanup(outbox.stopService)
        return outbox

    def test_a_2xx_answer_deletes_the_row(self):
        self.make_outbox(1)
        [(url, body, headers, _)] = self.post.calls
        self.assertEqual(url, "http://portal.example/hook")
        self.post.answer_all(204)
        self.assertEqual(self.store.rows, {})

    def test_attempts_are_signed_and_carry_the_delivery_id(self):
        self.make_outbox(1)
        _, body, headers, _ = self.post.calls[0]
        timestamp = headers[TIMESTAMP_HEADER]
        self.assertEqual(timestamp, "1700000000")
        expected = hmac.new(SECRET.encode(), f"{timestamp}.{body.decode()}".encode(), hashlib.sha256).hexdigest()
        self.assertEqual(headers[SIGNATURE_HEADER], f"sha256={expected}")
        self.assertEqual(headers[DELIVERY_HEADER], "test-0")

    def test_failure_waits_for_the_backoff_before_the_next_attempt(self):
        self.make_outbox(1)
        self.post.answer_all(503)
        self.assertEqual(self.store.errors[0], "HTTP 503")
        self.clock.advance(4.9)
        self.assertEqual(len(self.post.calls), 1)
        self.clock.advance(0.2)
        self.assertEqual(len(self.post.calls), 2)
        self.post.calls[1][3].errback(ConnectionRefusedError("refused"))
        self.assertIn("ConnectionRefusedError", self.store.errors[0])
        self.clock.advance(9.0)
        self.assertEqual(len(self.post.calls), 2)  # second failure: 10 s
        self.clock.advance(1.1)
        self.assertEqual(len(self.post.calls), 3)

    def test_no_more_than_four_attempts_at_once(self):
        self.make_outbox(10)
        self.assertEqual(len(self.post.calls), 4)
        self.clock.advance(30)
        self.assertEqual(len(self.post.calls), 4)
        self.post.answer_all(200)
        self.assertEqual(len(self.post.calls), 8)
        self.assertEqual(sum(not call[3].called for call in self.post.calls), 4)

    def test_a_row_in_flight_is_never_handed_out_twice(self):
        self.make_outbox(2)
        for _ in range(20):
            self.clock.advance(1.0)
        self.assertEqual(sorted(call[2][DELIVERY_HEADER] for call in self.post.calls), ["test-0", "test-1"])

    def test_stopping_abandons_attempts_but_keeps_their_rows(self):
        outbox = self.make_outbox(2)
        stopped = outbox.stopService()
        self.successResultOf(stopped)
        self.assertEqual(sorted(self.store.rows), [0, 1])
        self.assertTrue(all("Cancelled" in error for error in self.store.errors.values()))
        self.clock.advance(60)
        self.assertEqual(len(self.post.calls), 2)

    def test_depth_is_cached_for_metrics(self):
        outbox = self.make_outbox(3)
        self.assertEqual(outbox.depth, {WEBHOOK: 3})


class RetryPolicyTests(SynchronousTestCase):
    def test_default_doubles_from_five_seconds_to_ten_minutes(self):
        policy = RetryPolicy.starting_at(5.0)
        self.assertEqual([policy.delay(n) for n in range(1, 10)], [5, 10, 20, 40, 80, 160, 320, 600, 600])

    def test_short_first_delay_shrinks_the_ceiling(self):
        policy = RetryPolicy.starting_at(0.05)
        self.assertAlmostEqual(policy.delay(50), 6.4)
        self.assertAlmostEqual(policy.poll_interval, 0.05)


class PayloadTests(SynchronousTestCase):
    def test_webhook_body_is_the_full_record(self):
        self.assertEqual(json.loads(webhook_body(RECORD)), RECORD)

    def test_central_body_has_no_ip_no_user_agent_no_share_id(self):
        body = central_body(RECORD)
        for private in (b"203.0.113.7", b"Secret Browser", b"client_ip", b"user_agent", b"share_id", b"s1"):
            self.assertNotIn(private, body)
        self.assertEqual(json.loads(body)["result"], RECORD["result"])

    def test_signature_is_hmac_sha256_of_timestamp_dot_body(self):
        expected = hmac.new(b"k" * 16, b"1700000000.{}", hashlib.sha256).hexdigest()
        self.assertEqual(signature("k" * 16, 1700000000, b"{}"), "sha256=" + expected)

    def test_central_target_is_named(self):
        self.assertEqual((WEBHOOK, CENTRAL), ("webhook", "central"))
