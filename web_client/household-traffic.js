// A household member's traffic, as bookkeeping on test-clock times it is given (ms since the
// test start): what arrived downstream in 1 s windows of the load, the server's upstream acks,
// the video segments' arrival times, the live rates the page shows, and which upstream ticks
// are due. No clock, no sockets: Node tests it on its own (tests/web/household-traffic.test.js);
// household-persona.js feeds it from its WebSockets.

const WINDOW_MS = 1000;
const RATE_SPAN_MS = 1000;
// After a stalled timer, ticks older than this are dropped, as a real-time app drops stale frames.
const UPSTREAM_CATCH_UP_SECONDS = 0.25;

const round3 = (value) => Math.round(value * 1000) / 1000;

const mbps = (bytes, ms) => bytes * 8 / (ms / 1000) / 1e6;

export class TrafficLog {
  /** `segmentMs`: one video segment's length, the period of a bursty plan (0 if none). */
  constructor(segmentMs = 0) {
    this.segmentMs = segmentMs;
    this.loadStartMs = null;    // test time the start message was sent
    this.windowBytes = [];      // bytes received in 1 s window k of the load
    this.acks = [];             // [t_ms, up_bytes], as the server said
    this.segments = new Map();  // n -> seconds from when segment n was due to be sent to its arrival, or null
    this.downTotal = 0;
    this.rateHistory = [];      // [test ms, downTotal] at each live report
  }

  /** The load began at `startMs` and lasts `loadMs`. */
  beginLoad(startMs, loadMs) {
    this.loadStartMs = startMs;
    this.windowBytes = new Array(Math.ceil(loadMs / WINDOW_MS)).fill(0);
  }

  /** `bytes` of downstream at `nowMs` (null before the test clock starts): into the load's window then. */
  down(bytes, nowMs) {
    this.downTotal += bytes;
    if (this.loadStartMs === null || nowMs === null) return;
    const index = Math.floor((nowMs - this.loadStartMs) / WINDOW_MS);
    if (index >= 0 && index < this.windowBytes.length) this.windowBytes[index] += bytes;
  }

  /** The server's `{t_ms, up_bytes}`: how much upstream it had received by then. */
  ack(message) {
    if (Number.isFinite(message.t_ms) && Number.isInteger(message.up_bytes)) {
      this.acks.push([Math.max(0, message.t_ms), message.up_bytes]);
    }
  }

  /** A `{n, edge}` burst marker at `nowMs`: segment n's start, or its arrival (its end). */
  burst(message, nowMs) {
    if (!Number.isInteger(message.n)) return;
    if (message.edge === "start" && !this.segments.has(message.n)) {
      this.segments.set(message.n, null);
    } else if (message.edge === "end" && this.segments.get(message.n) === null) {
      const dueMs = this.loadStartMs + message.n * this.segmentMs;
      this.segments.set(message.n, round3(Math.max(0, nowMs - dueMs) / 1000));
    }
  }

  /** `[start_ms, bytes]` per window; a dropped connection's unfinished windows would understate it. */
  windows(endedAtMs = null) {
    if (this.loadStartMs === null) return [];
    return this.windowBytes
      .map((bytes, index) => [round3(this.loadStartMs + index * WINDOW_MS), bytes])
      .filter(([start]) => endedAtMs === null || start + WINDOW_MS <= endedAtMs);
  }

  /** `[n, seconds | null]` per segment begun, in order. */
  bursts() {
    return [...this.segments.entries()].sort((a, b) => a[0] - b[0]);
  }

  /** The live figures at `atMs`: download and upload Mbit/s over about the last second, and the segments. */
  live(atMs) {
    this.rateHistory.push([atMs, this.downTotal]);
    while (this.rateHistory.length > 2 && atMs - this.rateHistory[1][0] >= RATE_SPAN_MS) this.rateHistory.shift();
    const [then, total] = this.rateHistory[0];
    const downMbps = atMs > then && this.loadStartMs !== null ? mbps(this.downTotal - total, atMs - then) : null;
    let upMbps = null;
    if (this.acks.length >= 2) {
      const [t0, b0] = this.acks[this.acks.length - 2];
      const [t1, b1] = this.acks[this.acks.length - 1];
      if (t1 > t0) upMbps = mbps(b1 - b0, t1 - t0);
    }
    const arrived = this.bursts().filter(([, seconds]) => seconds !== null);
    return {
      downMbps,
      upMbps,
      segments: { seen: this.segments.size, arrived: arrived.length,
        lastSeconds: arrived.length ? arrived[arrived.length - 1][1] : null },
    };
  }
}

/**
 * The upstream ticks to send `elapsedMs` into the load at `hz`, when `sentTicks` have gone:
 * every tick due, but after a stalled timer at most a quarter second of them (the older ones
 * are skipped). Returns `{send, skipped}`.
 */
export function dueTicks(elapsedMs, hz, sentTicks) {
  const due = Math.floor(elapsedMs * hz / 1000) + 1;
  const maxCatchUp = Math.max(1, Math.ceil(hz * UPSTREAM_CATCH_UP_SECONDS));
  const skipped = Math.max(0, due - sentTicks - maxCatchUp);
  return { send: Math.max(0, due - sentTicks - skipped), skipped };
}
