// The page's reading of the server's answers: Retry-After and error bodies.

import { test } from "node:test";
import assert from "node:assert/strict";

import { errorDetail, parseRetryAfter } from "../../web_client/api.js";

test("Retry-After in seconds is rounded up to whole seconds, at least one", () => {
  assert.equal(parseRetryAfter("30"), 30);
  assert.equal(parseRetryAfter("2.1"), 3);
  assert.equal(parseRetryAfter("0"), 1);
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter("soon"), null);
});

test("Retry-After as an HTTP date counts from now", () => {
  const inAMinute = new Date(Date.now() + 60_000).toUTCString();
  const seconds = parseRetryAfter(inAMinute);
  assert.ok(seconds >= 58 && seconds <= 60, `${seconds}`);
});

test("an error answer is read for its sentence, else named by its status", async () => {
  const refusal = new Response(JSON.stringify({ error: "too many tests from this address" }), { status: 429 });
  assert.equal(await errorDetail(refusal), "too many tests from this address");
  assert.equal(await errorDetail(new Response("<html>busy</html>", { status: 503, statusText: "Service Unavailable" })),
    "HTTP 503 Service Unavailable");
  assert.equal(await errorDetail(new Response(JSON.stringify({ error: 42 }), { status: 400 })), "HTTP 400");
});
