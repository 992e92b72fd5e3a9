// The page's API client on its own: Retry-After, error bodies, failures and the page's handlers.

import { test } from "node:test";
import assert from "node:assert/strict";

import { TestFailure, errorDetail, failureOf, notify, parseRetryAfter } from "../../web_client/api.js";

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

test("a failure keeps a TestFailure's words and places it in the phase; other errors become a sentence", () => {
  const own = new TestFailure("The server is busy.", { kind: "busy" });
  assert.equal(failureOf(own, "upload"), own);
  assert.equal(own.phase, "upload");
  const placed = new TestFailure("Lost.", { phase: "download" });
  assert.equal(failureOf(placed, "upload").phase, "download");
  const wrapped = failureOf(new Error("network error"), "baseline");
  assert.ok(wrapped instanceof TestFailure);
  assert.equal(wrapped.message, "Network error.");
  assert.equal(wrapped.phase, "baseline");
});

test("notify calls the page's handler if it has one, and a handler that throws does not stop the test", () => {
  const seen = [];
  notify({ phase: (name, index) => seen.push([name, index]) }, "phase", "upload", 2);
  notify({}, "phase", "ignored");
  const logged = console.error;
  console.error = () => seen.push("logged");
  try {
    notify({ tick: () => { throw new Error("broken"); } }, "tick");
  } finally {
    console.error = logged;
  }
  assert.deepEqual(seen, [["upload", 2], "logged"]);
});
