// Latency probes, in a Web Worker of their own so that the page's own work
// (counting download bytes, drawing charts) never delays a probe or its reply.
//
// Protocol with the page (postMessage):
//   page -> worker  {type: "open", url}                      open the probe WebSocket
//   worker -> page  {type: "open"} | {type: "closed", code, reason, wasOpen}
//   page -> worker  {type: "start", timeOrigin, intervalMs, timeoutMs, durationMs}
//                   timeOrigin is the test start as an absolute time (the page's
//                   performance.timeOrigin + performance.now() at the start), so this
//                   worker, whose performance.now() has another origin, can report
//                   sent_ms relative to the test start.
//   worker -> page  {type: "probes", samples: [[seq, sent_ms, rtt_ms | null, server_rtt_ms | null,
//                                               ack_rtt_ms | null], ...]}
//   page -> worker  {type: "stop"}    stop sending; answers {type: "done"} once every
//                                     probe in flight is answered or lost
//
// On the wire: {"seq": N, "t": T} every intervalMs, T = performance.now() of this
// worker when sent; the probe server echoes it unchanged. RTT = performance.now() at
// the reply minus T. No reply within timeoutMs: lost (null), never a made-up RTT.
// Behind each echo the server sends a WebSocket Ping, which the browser's network
// stack answers without this worker, and reports the round trip it timed, with the
// kernel's timing of the TCP acknowledgement of both: {"seq": N, "server_rtt_ms": X,
// "ack_rtt_ms": Y | null}. A browser busy with a gigabit download can take 10 ms and
// more to hand an echo to this worker, and its network thread a few to answer the
// Ping; the kernel's acknowledgement has none of that, so the grade uses the
// server's timings. A probe is reported once its report is in, or timeoutMs after
// its echo without one (server_rtt_ms and ack_rtt_ms null).
//
// Probes take turns over PROBE_CONNECTIONS WebSockets. TCP delivers in order, so
// when a loaded queue drops one probe's segment every later probe on that
// connection waits for the retransmission (head-of-line blocking, about five
// probes per drop at 100 ms spacing); over four connections a drop delays the
// dropped probe and at most one more, as close as TCP gets to ping's "lost".

"use strict";

const PROBE_CONNECTIONS = 4;
let sockets = [];
let wasOpen = false;
let startAt = 0;          // the test start on this worker's clock
let intervalMs = 100;
let timeoutMs = 2000;
let durationMs = Infinity;
let seq = 0;
let sending = null;       // setInterval handle while probing
let sweeping = null;      // setInterval handle that finds lost probes
let stopping = false;
const inFlight = new Map();  // seq -> {t, rtt: null until the echo, echoAt}
let outbox = [];

function round(value) {
  return Math.round(value * 1000) / 1000;
}

function flush() {
  if (outbox.length) {
    postMessage({ type: "probes", samples: outbox });
    outbox = [];
  }
}

function record(probeSeq, sentAt, rtt, serverRtt = null, ackRtt = null) {
  const sent = round(Math.max(0, sentAt - startAt));
  const rounded = (value) => (value === null ? null : round(value));
  outbox.push([probeSeq, sent, rounded(rtt), rounded(serverRtt), rounded(ackRtt)]);
}

function sendProbe() {
  const now = performance.now();
  if (now - startAt >= durationMs) {
    stop();
    return;
  }
  const socket = sockets[seq % sockets.length];
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  const probe = { seq, t: now };
  inFlight.set(seq, { t: now, rtt: null, echoAt: null });
  seq += 1;
  socket.send(JSON.stringify(probe));
}

function sweep() {
  const now = performance.now();
  for (const [probeSeq, probe] of inFlight) {
    const waited = probe.rtt === null ? now - probe.t : now - probe.echoAt;
    if (waited >= timeoutMs) {
      inFlight.delete(probeSeq);
      record(probeSeq, probe.t, probe.rtt);  // lost, or answered without the server's report
    }
  }
  flush();
  if (stopping && inFlight.size === 0) finish();
}

function onEcho(probeSeq, probe, now) {
  const rtt = now - probe.t;
  if (rtt >= timeoutMs) {
    inFlight.delete(probeSeq);
    record(probeSeq, probe.t, null);
  } else {
    probe.rtt = rtt;
    probe.echoAt = now;
  }
}

function believable(rtt) {
  return typeof rtt === "number" && rtt >= 0 && rtt < timeoutMs ? rtt : null;
}

function onReport(probeSeq, probe, reply) {
  if (probe.rtt === null) return;  // the echo comes first on the same connection
  inFlight.delete(probeSeq);
  record(probeSeq, probe.t, probe.rtt, believable(reply.server_rtt_ms), believable(reply.ack_rtt_ms));
}

function onReply(event) {
  const now = performance.now();
  let reply;
  try {
    reply = JSON.parse(event.data);
  } catch {
    return;
  }
  const probe = inFlight.get(reply && reply.seq);
  if (probe === undefined) return;  // settled already (lost or reported), or not ours
  if ("server_rtt_ms" in reply) onReport(reply.seq, probe, reply);
  else if (probe.rtt === null && reply.t === probe.t) onEcho(reply.seq, probe, now);
  if (stopping && inFlight.size === 0) {
    flush();
    finish();
  }
}

function stop() {
  if (sending !== null) clearInterval(sending);
  sending = null;
  stopping = true;
  sweep();
}

function finish() {
  if (sweeping !== null) clearInterval(sweeping);
  sweeping = null;
  flush();
  const closing = sockets;
  sockets = [];
  for (const socket of closing) {
    socket.onclose = null;
    socket.onerror = null;
    socket.close(1000, "test finished");
  }
  postMessage({ type: "done" });
}

function open(url) {
  let opened = 0;
  for (let i = 0; i < PROBE_CONNECTIONS; i += 1) {
    let socket;
    try {
      socket = new WebSocket(url);
    } catch (error) {
      postMessage({ type: "closed", code: 0, reason: String(error.message || error), wasOpen: false });
      return;
    }
    socket.onopen = () => {
      opened += 1;
      if (opened === PROBE_CONNECTIONS) {
        wasOpen = true;
        postMessage({ type: "open" });
      }
    };
    socket.onmessage = onReply;
    // A close we did not ask for: the server or the network went away.
    socket.onclose = (event) => {
      if (sending !== null) clearInterval(sending);
      if (sweeping !== null) clearInterval(sweeping);
      sending = sweeping = null;
      flush();
      for (const other of sockets) {
        other.onclose = null;
        if (other !== socket) other.close();
      }
      sockets = [];
      postMessage({ type: "closed", code: event.code, reason: event.reason, wasOpen });
    };
    socket.onerror = () => {};  // onclose follows and says what happened
    sockets.push(socket);
  }
}

function start(message) {
  // Another realm's clock: move the absolute start onto this worker's performance.now().
  startAt = message.timeOrigin - performance.timeOrigin;
  intervalMs = message.intervalMs || intervalMs;
  timeoutMs = message.timeoutMs || timeoutMs;
  durationMs = message.durationMs || durationMs;
  const wait = Math.max(0, startAt - performance.now());
  setTimeout(() => {
    if (stopping) return;
    sendProbe();
    sending = setInterval(sendProbe, intervalMs);
    sweeping = setInterval(sweep, 100);
  }, wait);
}

onmessage = (event) => {
  const message = event.data || {};
  if (message.type === "open") open(message.url);
  else if (message.type === "start") start(message);
  else if (message.type === "stop") stop();
};
