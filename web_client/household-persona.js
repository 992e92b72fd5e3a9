// One member of the virtual household: its own WebSocket to its persona port,
// its latency pings, its upstream traffic, and what arrives downstream.
// Runs in a Web Worker of its own (household-worker.js) so that another
// member's bulk download cannot delay this member's pings or their replies;
// it has no DOM and no page state, so it runs on the main thread just as well
// (bench/household_browser_rtt.py compares the two).
//
// The wire format is lqos/personas/protocol.py's:
//   -> {"type":"ping","seq","t"}  every 100 ms from the test start, t = ms since the start
//   <- {"type":"pong","seq","t"}  RTT = now - send time; no pong within the persona's
//                                 deadline_ms: null (lost), never a made-up RTT
//   <- {"type":"timing","seq","server_rtt_ms"}  the server's timing of the WebSocket Ping it sent
//                                 right behind that pong, which the browser's network stack
//                                 answered without this script (household-echoes.js keeps it)
//   -> {"type":"start","seconds"} once, when the baseline ends
//   -> binary                     upstream, traffic.up_bytes_per_tick every 1000/tick_hz ms
//   <- {"type":"ack","t_ms","up_bytes"}      recorded as [t_ms, up_bytes]
//   <- {"type":"burst","n","edge"}           video segment n: its arrival (end marker) is timed in s
//                                            from when it was due to be sent, n x period_seconds
//                                            after the start message
//   <- binary                                downstream, counted into 1 s windows of the load
//   <- {"type":"done"}                       the load is over
//
// A persona with echo_copies N > 1 gets N more WebSockets that only answer pings,
// and its own connection carries no pings: copy k of ping n goes on echo socket (n + k) mod N,
// k ticks (1000 / tick_hz ms) after copy 0 unless the ping is answered by then, with its own
// send time as t. The ping's RTT is the first pong's, from that copy's t; later pongs are
// ignored. Over TCP a dropped segment holds back every later message on its connection until
// it is retransmitted (often a 200 ms timeout), which a game on UDP would feel as one lost
// packet, not as delay for the next ones. Through a FIFO the copies come back in the order
// they were sent, so a later copy comes back first only when a retransmission held the
// earlier one back; it then stands in for it with the delay the FIFO gave it. (The Persona
// docstring in lqos/personas/model.py says it at length.) The member is "ready" when all
// of its connections said hello; only its own connection breaking interrupts it.
//
// Clock: ms since the test start, which the page gives as an absolute time
// (performance.timeOrigin + performance.now() of the page) so any realm can use it.
//
// Reports (the `report` callback, postMessage'd by the worker):
//   {type: "ready", name}                        hello received: the member is connected
//   {type: "failed", name, message}              it could not connect
//   {type: "live", name, state, ...figures}      four times a second while running
//   {type: "finished", name, samples}            samples as the result submission wants them

import { EchoLog } from "./household-echoes.js";
import { TrafficLog, dueTicks } from "./household-traffic.js";

export const PING_INTERVAL_MS = 100;
const MAX_ECHO_COPIES = 4;  // lqos.personas.model.MAX_ECHO_COPIES
const LIVE_INTERVAL_MS = 250;
const SWEEP_INTERVAL_MS = 25;
// Upstream: skip a tick while more than this much of the plan waits in the socket.
const UPSTREAM_BUFFER_SECONDS = 1;
// How long after the end of the load a missing "done" is waited for.
const DONE_GRACE_MS = 5000;

const round3 = (value) => Math.round(value * 1000) / 1000;

function randomBytes(size) {
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65536) {
    crypto.getRandomValues(bytes.subarray(offset, Math.min(size, offset + 65536)));
  }
  return bytes;
}

export class PersonaConnection {
  constructor(persona, report) {
    this.persona = persona;
    this.name = persona.name;
    this.report = report;
    this.plan = persona.traffic || {};
    this.deadlineMs = persona.deadline_ms || 2000;
    const copies = Number.isInteger(persona.echo_copies)
      ? Math.max(1, Math.min(MAX_ECHO_COPIES, persona.echo_copies)) : 1;
    this.echoSockets = new Array(copies > 1 ? copies : 0).fill(null);  // copy k -> its echo-only socket
    this.state = "connecting";
    this.socket = null;
    this.helloCount = 0;
    this.timers = new Set();
    this.stopped = false;
    // The test clock, on this realm's performance.now().
    this.startAt = null;
    this.baselineMs = 0;
    this.loadMs = 0;
    this.loadStartMs = null;    // test time the start message was sent
    this.endedAtMs = null;      // test time of done or of the drop
    // Samples: the echoes, and the rest of the traffic (one video segment per burst).
    this.seq = 0;
    this.echoes = new EchoLog(this.deadlineMs);
    this.traffic = new TrafficLog((Number(this.plan.period_seconds) || 0) * 1000);
    this.done = false;
    this.interrupted = false;
    this.reason = "";
    this.upSentTicks = 0;
    this.upSkippedTicks = 0;
    this.upPayload = null;
  }

  now() {
    return performance.now() - this.startAt;
  }

  later(fn, delay) {
    const handle = setTimeout(() => {
      this.timers.delete(handle);
      if (!this.stopped) fn();
    }, Math.max(0, delay));
    this.timers.add(handle);
    return handle;
  }

  every(fn, interval) {
    const handle = setInterval(() => { if (!this.stopped) fn(); }, interval);
    this.timers.add(handle);
    return handle;
  }

  cancelTimer(handle) {
    clearTimeout(handle);
    clearInterval(handle);
    this.timers.delete(handle);
  }

  // --- connecting ---

  open() {
    let socket;
    try {
      socket = new WebSocket(this.persona.url);
    } catch (error) {
      this.report({ type: "failed", name: this.name, message: String(error.message || error) });
      return;
    }
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.onmessage = (event) => this.onMessage(event);
    socket.onerror = () => {};  // onclose follows and says what happened
    socket.onclose = (event) => this.onClose(event);
    for (let copy = 0; copy < this.echoSockets.length; copy += 1) this.openEcho(copy);
  }

  openEcho(copy) {
    let socket;
    try {
      socket = new WebSocket(this.persona.url);
    } catch (error) {
      this.failConnecting(String(error.message || error));
      return;
    }
    this.echoSockets[copy] = socket;
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message && message.type === "hello") this.helloed();
      else if (message && message.type === "pong") this.onPong(message, performance.now());
      else if (message && message.type === "timing") this.onTiming(message);
    };
    socket.onerror = () => {};
    socket.onclose = (event) => {
      if (this.echoSockets[copy] === socket) this.echoSockets[copy] = null;
      // Before the test starts, every connection is needed; afterwards the other copies go on.
      if (this.state === "connecting" && !this.readySent && !this.stopped) {
        this.failConnecting(event.code === 1006 ? "no connection" : `closed (${event.code})`);
      }
    };
  }

  /** One of the member's connections said hello; all of them: the member is ready. */
  helloed() {
    this.helloCount += 1;
    if (this.state === "connecting" && !this.readySent && this.helloCount >= 1 + this.echoSockets.length) {
      this.readySent = true;
      this.report({ type: "ready", name: this.name });
    }
  }

  failConnecting(message) {
    if (this.failedSent) return;
    this.failedSent = true;
    this.report({ type: "failed", name: this.name, message });
    this.stop();
  }

  // --- the schedule ---

  /** Begin the test clock: pings now, the load after the baseline. */
  start({ timeOrigin, baselineMs, loadMs }) {
    this.startAt = timeOrigin - performance.timeOrigin;
    this.baselineMs = baselineMs;
    this.loadMs = loadMs;
    if (this.state === "connecting") this.state = "baseline";
    const sinceStart = this.now();
    this.later(() => this.ping(), -sinceStart);
    this.later(() => this.beginLoad(), baselineMs - sinceStart);
    this.every(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.every(() => this.live(), LIVE_INTERVAL_MS);
    // A server that never says "done" does not hold the household up.
    this.watchdog = this.later(() => this.endLoad({ interrupted: true, reason: "no end of test from the server" }),
      baselineMs + loadMs + DONE_GRACE_MS - sinceStart);
  }

  ping() {
    if (this.done || this.interrupted || !this.isOpen()) return;
    const elapsed = this.now();
    if (elapsed >= this.baselineMs + this.loadMs) return;  // the load is over: no more pings
    if (elapsed >= this.baselineMs && this.loadStartMs === null) this.beginLoad();
    const seq = this.seq;
    this.seq += 1;
    const phase = this.loadStartMs === null ? "baseline" : "load";
    const sentMs = round3(this.now());
    const inCopies = this.echoSockets.length > 0;
    this.echoes.sent(seq, phase, sentMs, inCopies);
    if (!inCopies) {
      this.socket.send(JSON.stringify({ type: "ping", seq, t: sentMs }));
    } else {
      this.sendCopy(seq, 0);
      const tickMs = 1000 / this.plan.tick_hz;
      for (let copy = 1; copy < this.echoSockets.length; copy += 1) {
        this.later(() => this.sendCopy(seq, copy), copy * tickMs);
      }
    }
    // The next slot on the 100 ms grid from the start; a stalled timer skips slots, never bunches pings.
    const next = (Math.floor((performance.now() - this.startAt) / PING_INTERVAL_MS) + 1) * PING_INTERVAL_MS;
    this.later(() => this.ping(), next - this.now());
  }

  /** Copy `copy` of ping `seq`, stamped with its own send time; none once the ping is settled. */
  sendCopy(seq, copy) {
    const socket = this.echoSockets[(seq + copy) % this.echoSockets.length];
    if (!this.echoes.waiting(seq) || !socket || socket.readyState !== WebSocket.OPEN) return;
    const t = round3(this.now());
    this.echoes.copySent(seq, t);
    socket.send(JSON.stringify({ type: "ping", seq, t }));
  }

  beginLoad() {
    if (this.loadStartMs !== null || this.done || this.interrupted || !this.isOpen()) return;
    this.loadStartMs = this.now();
    this.traffic.beginLoad(this.loadStartMs, this.loadMs);
    this.state = "loaded";
    this.socket.send(JSON.stringify({ type: "start", seconds: this.loadMs / 1000 }));
    const perTick = this.plan.up_bytes_per_tick || 0;
    const hz = this.plan.tick_hz || 0;
    if (perTick > 0 && hz > 0) {
      this.upPayload = randomBytes(perTick);
      this.upTick();
      this.uploader = this.every(() => this.upTick(), 1000 / hz);
    }
  }

  /** Send the upstream ticks that are due, skipping while a second of upstream is still buffered. */
  upTick() {
    if (!this.isOpen() || this.done || this.interrupted) return;
    const hz = this.plan.tick_hz;
    const elapsed = this.now() - this.loadStartMs;
    if (elapsed >= this.loadMs) {
      this.cancelTimer(this.uploader);
      return;
    }
    const { send, skipped } = dueTicks(elapsed, hz, this.upSentTicks);
    this.upSkippedTicks += skipped;
    this.upSentTicks += skipped;
    const bufferLimit = this.upPayload.byteLength * hz * UPSTREAM_BUFFER_SECONDS;
    for (let tick = 0; tick < send; tick += 1) {
      this.upSentTicks += 1;
      if (this.socket.bufferedAmount > bufferLimit) this.upSkippedTicks += 1;
      else this.socket.send(this.upPayload);
    }
  }

  /** Pings without an answer within the deadline are lost; a timing not come by then, given up. */
  sweep() {
    this.echoes.sweep(this.now());
    this.maybeFinish();
  }

  // --- what arrives ---

  onMessage(event) {
    if (typeof event.data !== "string") {
      this.traffic.down(event.data.byteLength, this.startAt === null ? null : this.now());
      return;
    }
    const now = performance.now();
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (!message || typeof message !== "object") return;
    switch (message.type) {
      case "hello":
        this.helloed();
        break;
      case "pong":
        this.onPong(message, now);
        break;
      case "timing":
        this.onTiming(message);
        break;
      case "ack":
        this.traffic.ack(message);
        break;
      case "burst":
        // An end marker after "done" is too late: that burst never finished within the test.
        if (this.done || this.interrupted || this.startAt === null) return;
        this.traffic.burst(message, now - this.startAt);
        break;
      case "done":
        this.endLoad({ interrupted: false });
        break;
      default:
        break;
    }
  }

  /** A pong, received at `now` (this realm's clock): the first of a ping's copies settles it. */
  onPong(message, now) {
    if (this.startAt === null) return;
    if (this.echoes.pong(message, now - this.startAt)) this.maybeFinish();
  }

  /** The server's timing of an answered ping's round trip. */
  onTiming(message) {
    this.echoes.timing(message);
    this.maybeFinish();
  }

  onClose(event) {
    this.socket = null;
    if (this.stopped) return;
    if (this.state === "connecting" && !this.readySent) {
      this.failConnecting(event.code === 1006 ? "no connection" : `closed (${event.code}${event.reason ? `: ${event.reason}` : ""})`);
      return;
    }
    if (!this.done) {
      this.endLoad({ interrupted: true, reason: `the connection closed (code ${event.code})` });
    }
    // Whatever is still in flight can no longer be answered.
    this.echoes.loseInFlight(this.now());
    this.maybeFinish();
  }

  isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  endLoad({ interrupted, reason = "" }) {
    if (this.done || this.interrupted) return;
    this.endedAtMs = this.startAt === null ? 0 : this.now();
    if (interrupted) {
      this.interrupted = true;
      this.reason = reason;
      this.state = "interrupted";
      this.echoes.loseInFlight(this.now());
    } else {
      this.done = true;
      this.state = "done";
    }
    this.cancelTimer(this.watchdog);
    if (this.uploader) this.cancelTimer(this.uploader);
    this.maybeFinish();
  }

  /** Once the load is over and every ping is settled (its timing too): report the samples, close. */
  maybeFinish() {
    if (this.finishedSent || (!this.done && !this.interrupted) || this.echoes.pending) return;
    this.finishedSent = true;
    this.live();
    this.report({ type: "finished", name: this.name, samples: this.samples(), reason: this.reason });
    this.stop();
  }

  samples() {
    return {
      pings: this.echoes.sortedRows(),
      down: this.traffic.windows(this.interrupted ? this.endedAtMs : null),
      up_acks: this.traffic.acks,
      bursts: this.traffic.bursts(),
      interrupted: this.interrupted,
    };
  }

  // --- live figures for the page ---

  live() {
    if (this.startAt === null) return;
    const at = this.now();
    const { downMbps, upMbps, segments } = this.traffic.live(at);
    const over = this.done || this.interrupted;
    this.report({
      type: "live",
      name: this.name,
      state: this.state,
      elapsedMs: at,
      lastRtt: this.echoes.lastRtt,
      rtts: this.echoes.takeNewRtts(),
      downMbps: over ? null : downMbps,
      upMbps: over ? null : upMbps,
      segments,
      upSkippedTicks: this.upSkippedTicks,
    });
  }

  /** Stop everything (a cancelled test, or a finished member). */
  stop() {
    this.stopped = true;
    for (const handle of this.timers) {
      clearTimeout(handle);
      clearInterval(handle);
    }
    this.timers.clear();
    const sockets = [this.socket, ...this.echoSockets];
    this.socket = null;
    this.echoSockets = this.echoSockets.map(() => null);
    for (const socket of sockets) {
      if (!socket) continue;
      socket.onclose = null;
      socket.onmessage = null;
      if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
        socket.close(1000, "test finished");
      }
    }
  }
}
