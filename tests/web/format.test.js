// How the page says numbers: one missing figure never shows as "NaN" or "null".

import { test } from "node:test";
import assert from "node:assert/strict";

import { mbps, ms, needsFix, percent, phaseInfo, signedMs } from "../../web_client/format.js";

test("milliseconds keep one decimal below 10 and none above", () => {
  assert.equal(ms(4.26), "4.3 ms");
  assert.equal(ms(42.6), "43 ms");
  assert.equal(ms(42.6, 2), "42.60 ms");
});

test("a rise is signed, a fall with a true minus sign", () => {
  assert.equal(signedMs(3.21), "+3.2 ms");
  assert.equal(signedMs(-3.21), "−3.2 ms");
});

test("rates keep three significant figures up to 100 Mbit/s", () => {
  assert.equal(mbps(9.456), "9.46 Mbit/s");
  assert.equal(mbps(94.56), "94.6 Mbit/s");
  assert.equal(mbps(945.6), "946 Mbit/s");
  assert.equal(percent(4.44), "4.4%");
  assert.equal(percent(0), "0%");
  assert.equal(percent(44.4), "44%");
});

test("a missing figure is a dash, whatever the unit", () => {
  for (const say of [ms, signedMs, mbps, percent]) {
    for (const missing of [null, undefined, NaN, Infinity]) assert.equal(say(missing), "–");
  }
});

test("grades from B down ask for a fix; an unknown phase still has words", () => {
  assert.deepEqual(["A+", "A", "B", "C", "D", "F"].map(needsFix), [false, false, true, true, true, true]);
  assert.equal(phaseInfo("download").label, "Download");
  assert.equal(phaseInfo("later_phase").label, "later_phase");
});
