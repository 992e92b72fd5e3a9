// The page's load accounting on its own, in Node: what it counts as received and
// acknowledged, when it calls a timer late, and how the warm-up picks its streams.
// `make test` runs these with `node --test tests/web/`.

import { test } from "node:test";
import assert from "node:assert/strict";

import { AcknowledgedBytes, ReceivedBytes, TimerLag, WINDOW_MS, warmUp } from "../../web_client/load.js";

test("received bytes are counted per 250 ms window, and a rate uses whole windows only", () => {
  const received = new ReceivedBytes();
  received.addWindows([[0, 1000], [1, 2000]]);
  received.addWindows([[1, 500], [3, 4000]]);
  assert.equal(received.total, 7500);
  assert.equal(received.windowBytes(1), 2500);
  assert.equal(received.windowBytes(2), 0);
  // [0, 1000 ms) holds windows 0-3: 7500 bytes in a second.
  assert.equal(received.rate(1000, 1000), 7500);
  // At 1100 ms window 4 has only begun: the same four windows count.
  assert.equal(received.rate(1100, 1000), 7500);
  assert.equal(received.rate(0, 1000), 0);
});

test("acknowledged bytes ignore a stale answer and interpolate between polls", () => {
  const acked = new AcknowledgedBytes();
  acked.add(0, 0);
  acked.add(1000, 10_000);
  acked.add(1000, 50_000);  // the same moment again: ignored
  acked.add(2000, 8_000);   // smaller than before: a stale answer, held at 10 000
  acked.add(3000, 40_000);
  assert.equal(acked.valueAt(500), 5000);
  assert.equal(acked.valueAt(2000), 10_000);
  assert.equal(acked.bytesBetween(1000, 3000), 30_000);
  assert.equal(acked.bytesBetween(-1, 1000), null, "before the first poll nothing is known");
  assert.equal(acked.bytesBetween(0, 3001), null, "after the last poll nothing is known");
  assert.equal(acked.recentRate(1000), 30_000);
});

test("a timer that fires late records every window boundary it missed as late as that", () => {
  let now = 0;
  const lag = new TimerLag(() => now, 1000);
  now = 3;
  lag.fire();
  now = 760;  // missed the boundaries at 250, 500 and 750 ms
  lag.fire();
  lag.stop();
  assert.deepEqual(lag.rows, [[0, 3], [250, 510], [500, 260], [750, 10]]);
  now = 5000;
  lag.fire();
  lag.stop();
  assert.equal(lag.rows.at(-1)[0], 1000 - WINDOW_MS, "no boundary at or past the end is recorded");
});

/** A stream group that opens streams on request, up to a limit of connections. */
function fakeGroup(connections = 6) {
  return {
    size: 0,
    stopped: false,
    resize(count) {
      this.size = Math.min(count, connections);
      return this.size;
    },
  };
}

async function warmUpWith(rates, options = {}) {
  const group = fakeGroup(options.connections);
  let step = 0;
  const found = await warmUp({
    group,
    startMs: 0,
    endMs: options.endMs ?? 5000,
    maxStreams: options.maxStreams ?? 16,
    rateAt: () => rates[Math.min(step++, rates.length - 1)],
    sleepUntil: async () => {},
  });
  return found;
}

test("the warm-up adds streams while the rate grows by more than 5%", async () => {
  assert.equal(await warmUpWith([10, 20, 30, 31, 40]), 4);
});

test("the warm-up stops at the most streams it may open", async () => {
  assert.equal(await warmUpWith([10, 20, 40, 80, 160, 320], { maxStreams: 3 }), 3);
  assert.equal(await warmUpWith([10, 20, 40, 80, 160, 320], { connections: 2 }), 2);
});

test("the warm-up keeps what it has when its phase ends", async () => {
  // Steps at 500, 1000 and 1500 ms fit in a 1600 ms warm-up: one stream, then three more.
  assert.equal(await warmUpWith([10, 20, 40, 80, 160], { endMs: 1600 }), 4);
});
