// A household member's echo bookkeeping on its own, in Node: when a ping is answered, lost
// or stood in for by a later copy, and which of the server's timings it keeps.
// `make test` runs these with `node --test tests/web/`.

import { test } from "node:test";
import assert from "node:assert/strict";

import { EchoLog } from "../../web_client/household-echoes.js";

test("a pong settles its ping with the RTT from its send time, and the server's timing joins the row", () => {
  const echoes = new EchoLog(250);
  echoes.sent(0, "baseline", 100);
  assert.equal(echoes.pending, 1);
  assert.equal(echoes.pong({ seq: 0, t: 100 }, 112.5), true);
  assert.equal(echoes.pong({ seq: 0, t: 100 }, 113), false);  // a second pong changes nothing
  assert.equal(echoes.pending, 1);                             // its timing is still awaited
  echoes.timing({ seq: 0, t: 100, server_rtt_ms: 11.25 });
  echoes.timing({ seq: 0, t: 100, server_rtt_ms: 1 });         // only the first counts
  assert.equal(echoes.pending, 0);
  assert.deepEqual(echoes.sortedRows(), [[0, "baseline", 100, 12.5, 11.25]]);
  assert.deepEqual(echoes.takeNewRtts(), [[100, 12.5]]);
  assert.deepEqual(echoes.takeNewRtts(), []);
  assert.equal(echoes.lastRtt, 12.5);
});

test("no pong within the deadline is a lost ping; a pong after it keeps it lost, with the server's timing", () => {
  const echoes = new EchoLog(150);
  echoes.sent(3, "load", 1000);
  echoes.sweep(1149);
  assert.equal(echoes.waiting(3), true);
  echoes.sweep(1150);
  assert.equal(echoes.waiting(3), false);
  // The page read the pong 400 ms late; the server's Ping behind it came back in 5 ms.
  assert.equal(echoes.pong({ seq: 3, t: 1000 }, 1400), false);
  assert.equal(echoes.pending, 1);
  echoes.timing({ seq: 3, t: 1000, server_rtt_ms: 5 });
  assert.deepEqual(echoes.sortedRows(), [[3, "load", 1000, null, 5]]);
  assert.deepEqual(echoes.takeNewRtts(), [[1000, null]]);
  assert.equal(echoes.pending, 0);
});

test("a pong that comes late but before the sweep is lost all the same, and awaits its timing", () => {
  const echoes = new EchoLog(150);
  echoes.sent(4, "load", 1000);
  assert.equal(echoes.pong({ seq: 4, t: 1000 }, 1200), true);
  assert.equal(echoes.pending, 1);
  echoes.timing({ seq: 4, t: 1000, server_rtt_ms: 400 });  // the line's own lateness: not kept
  assert.deepEqual(echoes.sortedRows(), [[4, "load", 1000, null, null]]);
  assert.equal(echoes.pending, 0);
});

test("a late pong is matched to the copy it answers, and one that names no copy is ignored", () => {
  const echoes = new EchoLog(150);
  echoes.sent(5, "load", 500, true);
  echoes.copySent(5, 500);
  echoes.copySent(5, 516.667);
  echoes.sweep(650);
  assert.equal(echoes.pong({ seq: 5, t: 510 }, 900), false);  // no such copy
  assert.equal(echoes.pending, 0);
  echoes.pong({ seq: 5, t: 516.667 }, 900);
  echoes.timing({ seq: 5, t: 500, server_rtt_ms: 3 });       // the other copy's timing
  echoes.timing({ seq: 5, t: 516.667, server_rtt_ms: 4 });
  assert.deepEqual(echoes.sortedRows(), [[5, "load", 500, null, 4]]);
});

test("with copies, the first copy back stands in for the ping, timed from its own send time", () => {
  const echoes = new EchoLog(150);
  echoes.sent(7, "load", 700, true);
  echoes.copySent(7, 700);
  echoes.copySent(7, 716.667);
  // Copy 1 comes back first (copy 0 waits behind a retransmission): 20 ms after it was sent.
  assert.equal(echoes.pong({ seq: 7, t: 716.667 }, 736.667), true);
  assert.equal(echoes.pong({ seq: 7, t: 700 }, 900), false);
  echoes.copySent(7, 733.333);  // a copy due after the answer is not recorded
  // Copy 0's timing comes first (shorter), but copy 1 answered: its timing is the one kept.
  echoes.timing({ seq: 7, t: 700, server_rtt_ms: 9 });
  assert.equal(echoes.pending, 1);
  echoes.timing({ seq: 7, t: 716.667, server_rtt_ms: 19.5 });
  assert.deepEqual(echoes.sortedRows(), [[7, "load", 700, 20, 19.5]]);
  // A pong whose t matches no copy sent is not ours.
  echoes.sent(8, "load", 800, true);
  echoes.copySent(8, 800);
  assert.equal(echoes.pong({ seq: 8, t: 805 }, 810), false);
  assert.equal(echoes.waiting(8), true);
});

test("a timing out of bounds, or later than the deadline after the pong, is not kept", () => {
  const echoes = new EchoLog(150);
  for (const seq of [0, 1, 2]) echoes.sent(seq, "load", seq * 100);
  for (const seq of [0, 1, 2]) echoes.pong({ seq, t: seq * 100 }, seq * 100 + 10);
  echoes.timing({ seq: 0, t: 0, server_rtt_ms: -1 });
  echoes.timing({ seq: 1, t: 100, server_rtt_ms: "9" });
  echoes.sweep(210 + 150);  // seq 2's timing never came
  assert.equal(echoes.pending, 0);
  assert.deepEqual(echoes.sortedRows().map((row) => row[4]), [null, null, null]);
});

test("a closed connection loses what is in flight, and rows come out in seq order", () => {
  const echoes = new EchoLog(250);
  echoes.sent(2, "load", 200);
  echoes.sent(1, "load", 100);
  echoes.pong({ seq: 2, t: 200 }, 205);
  echoes.loseInFlight(210);
  assert.deepEqual(echoes.sortedRows().map((row) => [row[0], row[3]]), [[1, null], [2, 5]]);
});
