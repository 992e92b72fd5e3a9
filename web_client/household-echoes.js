// A household member's echoes: which pings are in flight, when each copy went, and how each
// ping was settled. Bookkeeping only, on test-clock times it is given (ms since the test
// start): no clock, no sockets, so Node tests it on its own (tests/web/household-echoes.test.js).
//
// The rules (docs/PROTOCOL.md, Virtual household):
// - a ping's RTT is that of the first pong back, measured from the send time of the copy it
//   answers; no pong within deadlineMs of the ping's first copy: lost (null), never made up;
// - the server follows each pong with a WebSocket Ping and reports that round trip in a
//   "timing" message naming the copy's t: the timing of the copy whose pong answered the ping
//   is kept, if it comes within deadlineMs of that pong, so both figures of a row describe the
//   same trip;
// - a pong that comes after the deadline leaves its ping lost, but the server's timing of it is
//   still kept: it tells the server whether the pong had reached this device in time and the page
//   was too busy to read it (a round trip the device held back counts at the server's timing).

const round3 = (value) => Math.round(value * 1000) / 1000;

export class EchoLog {
  constructor(deadlineMs) {
    this.deadlineMs = deadlineMs;
    this.inFlight = new Map();        // seq -> [phase, sent_ms]
    this.copiesSent = new Map();      // seq -> [t of each copy sent], for a ping sent in copies
    this.awaitingTiming = new Map();  // seq -> [its row, when its pong came, the answering copy's t]
    this.pastDeadline = new Map();    // seq -> [its row, its copies' t]: lost, but its pong may still come
    this.rows = [];                   // [seq, phase, sent_ms, rtt_ms | null, server_rtt_ms | null]
    this.newRtts = [];                // [sent_ms, rtt | null] since the last takeNewRtts()
    this.lastRtt = null;
  }

  /** Ping `seq` went at `sentMs`; `inCopies`: each copy will be recorded with copySent(). */
  sent(seq, phase, sentMs, inCopies = false) {
    this.inFlight.set(seq, [phase, sentMs]);
    if (inCopies) this.copiesSent.set(seq, []);
  }

  /** Whether ping `seq` still waits for its pong (no further copy is worth sending otherwise). */
  waiting(seq) {
    return this.inFlight.has(seq);
  }

  copySent(seq, t) {
    const copies = this.copiesSent.get(seq);
    if (copies && this.inFlight.has(seq)) copies.push(t);
  }

  /** A pong `{seq, t}` at `nowMs`: the first of a ping's copies settles it; true when it did. */
  pong(message, nowMs) {
    const flight = this.inFlight.get(message.seq);
    if (!flight) {  // answered already, lost already, or not ours
      this.latePong(message, nowMs);
      return false;
    }
    const sentMs = matchingCopy(this.copiesSent.get(message.seq) || [flight[1]], message.t);
    if (sentMs === undefined) return false;
    const late = nowMs - flight[1] >= this.deadlineMs;
    this.settle(message.seq, late ? null : nowMs - sentMs, nowMs, sentMs);
    return true;
  }

  /** The pong of a ping already lost: await the server's timing of that copy's trip. */
  latePong(message, nowMs) {
    const lost = this.pastDeadline.get(message.seq);
    const sentMs = lost && matchingCopy(lost[1], message.t);
    if (sentMs === undefined) return;
    this.pastDeadline.delete(message.seq);
    this.awaitingTiming.set(message.seq, [lost[0], nowMs, sentMs]);
  }

  /** The server's timing `{seq, t, server_rtt_ms}` of the round trip of the copy that answered a ping. */
  timing(message) {
    const awaited = this.awaitingTiming.get(message.seq);
    if (!awaited || !(Math.abs(message.t - awaited[2]) <= 0.01)) return;  // another copy's, or none awaited
    this.awaitingTiming.delete(message.seq);
    const serverRtt = message.server_rtt_ms;
    if (Number.isFinite(serverRtt) && serverRtt >= 0 && serverRtt < this.deadlineMs) awaited[0][4] = round3(serverRtt);
  }

  /** At `nowMs`: pings past their deadline are lost, and timings not come by then given up. */
  sweep(nowMs) {
    for (const [seq, [, sentMs]] of this.inFlight) {
      if (nowMs - sentMs >= this.deadlineMs) this.settle(seq, null, nowMs);
    }
    for (const [seq, [, pongedMs]] of this.awaitingTiming) {
      if (nowMs - pongedMs >= this.deadlineMs) this.awaitingTiming.delete(seq);
    }
  }

  /** The connection is gone: what is in flight can no longer be answered. */
  loseInFlight(nowMs) {
    for (const seq of [...this.inFlight.keys()]) this.settle(seq, null, nowMs);
  }

  /** How many pings wait for a pong or for the server's timing. */
  get pending() {
    return this.inFlight.size + this.awaitingTiming.size;
  }

  /** The rows in seq order, as the result submission wants them. */
  sortedRows() {
    return [...this.rows].sort((a, b) => a[0] - b[0]);
  }

  takeNewRtts() {
    const taken = this.newRtts;
    this.newRtts = [];
    return taken;
  }

  settle(seq, rtt, nowMs, answeredT = null) {
    const [phase, sentMs] = this.inFlight.get(seq);
    const copies = this.copiesSent.get(seq) || [sentMs];
    this.inFlight.delete(seq);
    this.copiesSent.delete(seq);
    const value = rtt === null ? null : round3(rtt);
    const row = [seq, phase, round3(sentMs), value, null];
    this.rows.push(row);
    this.newRtts.push([row[2], value]);
    if (value !== null) this.lastRtt = value;
    if (answeredT !== null) this.awaitingTiming.set(seq, [row, nowMs, answeredT]);
    else this.pastDeadline.set(seq, [row, copies]);
  }
}

/** The copy's send time among `copies` that a pong's `t` names, or undefined. */
function matchingCopy(copies, t) {
  return copies.find((sent) => Math.abs(t - sent) <= 0.01);
}
