// A household member's traffic bookkeeping on its own, in Node: the load's 1 s windows, the
// video segments' times, the live rates, and which upstream ticks are due.
// `make test` runs these with `node --test tests/web/`.

import { test } from "node:test";
import assert from "node:assert/strict";

import { TrafficLog, dueTicks } from "../../web_client/household-traffic.js";

test("downstream bytes fall into the load's 1 s windows; before the load they only count live", () => {
  const traffic = new TrafficLog();
  traffic.down(500, 100);             // the baseline
  traffic.down(100, null);            // before the test clock started
  traffic.beginLoad(2000, 3000);
  traffic.down(1000, 2000);
  traffic.down(2000, 2999.9);
  traffic.down(4000, 4500);
  traffic.down(8000, 5000);           // after the load's last window
  assert.deepEqual(traffic.windows(), [[2000, 3000], [3000, 0], [4000, 4000]]);
  // A connection dropped at 4200 ms: its unfinished last window would understate what it got.
  assert.deepEqual(traffic.windows(4200), [[2000, 3000], [3000, 0]]);
  assert.equal(traffic.downTotal, 15600);
});

test("a segment is timed on the test clock from when it was due: n segment lengths after the load began", () => {
  const traffic = new TrafficLog(5000);
  traffic.beginLoad(1500, 8000);
  traffic.burst({ n: 0, edge: "start" }, 1510);
  traffic.burst({ n: 0, edge: "end" }, 2750);
  traffic.burst({ n: 0, edge: "end" }, 9000);   // a second end changes nothing
  traffic.burst({ n: 1, edge: "start" }, 6500);
  traffic.burst({ n: 1, edge: "end" }, 6400);   // before it was due: 0, never negative
  traffic.burst({ n: 2, edge: "start" }, 9000);
  traffic.burst({ n: 3, edge: "end" }, 9000);   // never started: ignored
  traffic.burst({ n: "4", edge: "start" }, 9000);
  assert.deepEqual(traffic.bursts(), [[0, 1.25], [1, 0], [2, null]]);
  assert.deepEqual(traffic.live(9000).segments, { seen: 3, arrived: 2, lastSeconds: 0 });
});

test("live rates: download over about the last second, upload from the server's last two acks", () => {
  const traffic = new TrafficLog();
  assert.deepEqual(traffic.live(0), { downMbps: null, upMbps: null, segments: { seen: 0, arrived: 0, lastSeconds: null } });
  traffic.beginLoad(0, 4000);
  traffic.down(125000, 100);
  traffic.ack({ t_ms: 0, up_bytes: 0 });
  traffic.ack({ t_ms: "1000", up_bytes: 5 });   // not a number: ignored
  traffic.ack({ t_ms: 1000, up_bytes: 62500 });
  const live = traffic.live(1000);
  assert.equal(live.downMbps, 1);
  assert.equal(live.upMbps, 0.5);
  assert.deepEqual(traffic.acks, [[0, 0], [1000, 62500]]);
});

test("upstream ticks: every tick due, but after a stall only the last quarter second of them", () => {
  assert.deepEqual(dueTicks(0, 60, 0), { send: 1, skipped: 0 });
  assert.deepEqual(dueTicks(50, 60, 1), { send: 3, skipped: 0 });     // ticks 2..4 are due by 50 ms
  assert.deepEqual(dueTicks(50, 60, 4), { send: 0, skipped: 0 });
  // A timer stalled for a second at 60 Hz: 60 ticks due, 15 (a quarter second) sent, 45 dropped.
  assert.deepEqual(dueTicks(1000, 60, 1), { send: 15, skipped: 45 });
});
