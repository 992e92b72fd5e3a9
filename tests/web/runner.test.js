// The page follows the schedule the server hands out: times, and what each phase loads.

import { test } from "node:test";
import assert from "node:assert/strict";

import { phaseAt, phaseSpans } from "../../web_client/runner.js";

test("spans follow each other and carry what the server says each phase loads", () => {
  const spans = phaseSpans([
    { name: "baseline", seconds: 2, load: [], warmup: false },
    { name: "upload_warmup", seconds: 2, load: ["up"], warmup: true },
    { name: "bidirectional", seconds: 3, load: ["down", "up"], warmup: false },
  ]);
  assert.deepEqual(spans.map((s) => [s.name, s.start, s.end, s.load, s.warmup]), [
    ["baseline", 0, 2000, [], false],
    ["upload_warmup", 2000, 4000, ["up"], true],
    ["bidirectional", 4000, 7000, ["down", "up"], false],
  ]);
  assert.equal(phaseAt(spans, 3999), "upload_warmup");
  assert.equal(phaseAt(spans, 9000), "bidirectional");
});

test("a phase the server sends without load fields loads nothing", () => {
  const [span] = phaseSpans([{ name: "load", seconds: 8 }]);
  assert.deepEqual([span.load, span.warmup], [[], false]);
});
