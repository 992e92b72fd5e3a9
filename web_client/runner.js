// One single-user test, start to result: session, probes, phases, load, submission.
//
// The test clock is milliseconds since the schedule started (t0). The probe
// worker reports sent_ms on the same clock; download bytes and upload
// acknowledgements are binned into 250 ms windows of it. The phase of a probe
// or a window is the schedule's phase at its time, the same rule the server
// uses. Grading is not done here: the raw samples go to result_url and the
// page shows what the server computed.

import {
  AcknowledgedBytes, LoadError, ProgressPoller, ReceivedBytes, STREAMS_PER_ORIGIN,
  TimerLag, WINDOW_MS, warmUp,
} from "./load.js";
import { TestFailure, TestRun, openSession, submitResult } from "./api.js";
import { FLUSH_MS, LoadThread } from "./load-thread.js";

const PROBE_OPEN_TIMEOUT_MS = 5000;

/**
 * The phases with start and end on the test clock, and what the server says
 * each loads (`load`: "down", "up") and whether it is a warm-up.
 */
export function phaseSpans(phases) {
  let start = 0;
  return phases.map((phase) => {
    const span = {
      name: phase.name, seconds: phase.seconds, start, end: start + phase.seconds * 1000,
      load: phase.load || [], warmup: Boolean(phase.warmup),
    };
    start = span.end;
    return span;
  });
}

export function phaseAt(spans, ms) {
  for (const span of spans) if (ms < span.end) return span.name;
  return spans[spans.length - 1].name;
}

export class SingleUserTest extends TestRun {
  /**
   * `ui` receives: started(session, spans), phase(span, index), tick(live),
   * probes(samples), submitting(), waiting(seconds).
   */
  constructor({ mode = "single_user", schedule = "standard", ui = {} } = {}) {
    super();
    this.mode = mode;
    this.schedule = schedule;
    this.ui = ui;
    this.probes = [];           // {seq, phase, sent_ms, rtt_ms, client_rtt_ms, server_rtt_ms, ack_rtt_ms}
    this.groups = { down: null, up: null };
    this.counts = { down: 0, up: 0 };
    this.current = null;
    this.t0 = null;
    this.finished = false;
    this.failure = null;
    this.failed = new Promise((resolve, reject) => { this.rejectFailed = reject; });
    this.failed.catch(() => {});
  }

  clock() {
    return performance.now() - this.t0;
  }

  /** Wait until test time `ms`, or fail with the test. */
  sleepUntil(ms) {
    const wait = new Promise((resolve) => setTimeout(resolve, Math.max(0, this.t0 + ms - performance.now())));
    return Promise.race([wait, this.failed]);
  }

  async run() {
    try {
      this.session = await this.startSession();
      this.spans = phaseSpans(this.session.phases);
      this.duration = this.spans[this.spans.length - 1].end;
      await Promise.race([this.openProbes(), this.failed]);
      await Promise.race([this.openLoad(), this.failed]);
      this.startClock();
      await this.runPhases();
      await Promise.race([this.finishMeasuring(), this.failed]);
      this.emit("submitting");
      const record = await Promise.race([this.submit(), this.failed]);
      this.finished = true;
      this.cleanUp();
      return { session: this.session, record, probes: this.probes, spans: this.spans, submission: this.submission };
    } catch (error) {
      this.fail(error);
      throw this.failure;
    }
  }

  async startSession() {
    const session = await openSession(this.mode, this.schedule);
    this.limits = session.limits || {};
    return session;
  }

  openProbes() {
    this.worker = new Worker("/probe-worker.js");
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new TestFailure("The latency probe could not connect to the test server.")), PROBE_OPEN_TIMEOUT_MS);
      this.worker.onerror = (event) => {
        clearTimeout(timer);
        reject(new TestFailure(`The latency probe could not start (${event.message || "worker error"}).`));
      };
      this.worker.onmessage = (event) => {
        const message = event.data;
        if (message.type === "open") {
          clearTimeout(timer);
          resolve();
        } else if (message.type === "closed") {
          clearTimeout(timer);
          const failure = message.wasOpen
            ? "The connection to the test server was lost"
            : "The latency probe could not connect to the test server";
          const error = new TestFailure(`${failure}.`);
          reject(error);
          this.fail(error);
        } else if (message.type === "probes") {
          this.addProbes(message.samples);
        } else if (message.type === "done") {
          if (this.probesDone) this.probesDone();
        }
      };
      this.worker.postMessage({ type: "open", url: this.session.probe_url });
    });
  }

  openLoad() {
    this.received = new ReceivedBytes();
    this.load = new LoadThread({
      onWindows: (windows) => this.received.addWindows(windows),
      onFatal: (message) => this.fail(new LoadError(message)),
    });
    return this.load.open();
  }

  addProbes(samples) {
    // rtt_ms is the round trip the page shows: the server's timing when there is
    // one, as the grade uses it; the submission sends both timings as measured.
    const added = samples.map(([seq, sent, rtt, serverRtt, ackRtt]) => ({
      seq, phase: phaseAt(this.spans, sent), sent_ms: sent,
      rtt_ms: serverRtt ?? rtt, client_rtt_ms: rtt, server_rtt_ms: serverRtt, ack_rtt_ms: ackRtt ?? null,
    }));
    this.probes.push(...added);
    this.emit("probes", added);
  }

  startClock() {
    this.t0 = performance.now();
    // When the test clock started, in Unix ms: lets an outside observer (the
    // accuracy testbed's ping) split its own samples by this test's phases.
    document.body.dataset.testStartedUnixMs = String(performance.timeOrigin + this.t0);
    this.worker.postMessage({
      type: "start",
      timeOrigin: performance.timeOrigin + this.t0,
      intervalMs: this.limits.probe_interval_ms || 100,
      timeoutMs: this.limits.probe_timeout_ms || 2000,
      durationMs: this.duration,
    });
    this.load.start({
      timeOrigin: performance.timeOrigin + this.t0,
      durationMs: this.duration,
      downloadUrl: this.session.download_url,
      uploadUrl: this.session.upload_url,
    });
    this.acknowledged = new AcknowledgedBytes();
    this.poller = new ProgressPoller(this.session.progress_url, () => this.clock(), this.acknowledged, (e) => this.fail(e));
    this.poller.start();
    this.lag = new TimerLag(() => this.clock(), this.duration);
    this.lag.start();
    this.ticker = setInterval(() => this.tick(), WINDOW_MS);
    this.emit("started", this.session, this.spans);
  }

  tick() {
    if (this.finished || this.failure) return;
    const now = this.clock();
    const { down, up } = this.groups;
    this.emit("tick", {
      elapsedMs: Math.min(now, this.duration),
      durationMs: this.duration,
      downloadMbps: down ? this.received.rate(now, 1000) * 8 / 1e6 : null,
      uploadMbps: up ? this.acknowledged.recentRate(1000) * 8 / 1e6 : null,
      streams: { down: down ? down.size : 0, up: up ? up.size : 0 },
    });
  }

  group(direction) {
    if (!this.groups[direction]) this.groups[direction] = this.load.group(direction);
    return this.groups[direction];
  }

  async runPhases() {
    const maxStreams = Math.min(this.limits.max_streams || STREAMS_PER_ORIGIN, STREAMS_PER_ORIGIN);
    for (const [index, span] of this.spans.entries()) {
      this.current = span;
      this.emit("phase", span, index);
      const warmups = [];
      for (const direction of span.load) {
        const group = this.group(direction);
        if (span.warmup) {
          warmups.push(warmUp({
            group,
            startMs: span.start,
            endMs: span.end,
            maxStreams,
            rateAt: direction === "down"
              ? (at) => this.received.rate(at, 500)
              : () => this.acknowledged.recentRate(500),
            // The load thread sends its counts every FLUSH_MS: wait for the last window's.
            sleepUntil: (ms) => this.sleepUntil(ms + FLUSH_MS),
          }).then((count) => {
            // At least the server's minimum: a household's bulk flows keep a deep buffer full.
            this.counts[direction] = Math.max(count, this.limits.min_streams || 1);
          }));
        } else {
          group.resize(this.counts[direction] || 1);
          if (!this.counts[direction]) this.counts[direction] = group.size;
        }
      }
      await Promise.all([this.sleepUntil(span.end), ...warmups]);
      // Stop a direction's streams when the next phase does not load it.
      const next = this.spans[index + 1];
      const nextDirections = next ? next.load : [];
      for (const direction of ["down", "up"]) {
        if (this.groups[direction] && !nextDirections.includes(direction)) {
          this.groups[direction].stop();
          this.groups[direction] = null;
        }
      }
    }
    this.current = { name: "finishing" };
  }

  /** Wait for the last probes (answered or lost) and the last upload acknowledgement. */
  async finishMeasuring() {
    const probesDone = new Promise((resolve) => { this.probesDone = resolve; });
    this.worker.postMessage({ type: "stop" });
    this.poller.stop();
    this.lag.stop();
    const [loadLag] = await Promise.all([this.load.finish(), probesDone, this.poller.finish()]);
    this.lagRows = worstLag(this.lag.rows, loadLag);
    clearInterval(this.ticker);
  }

  throughputRows() {
    const rows = [];
    for (const span of this.spans) {
      const directions = span.load;
      for (let start = span.start; start < span.end; start += WINDOW_MS) {
        if (directions.includes("down")) {
          rows.push([span.name, start, "down", this.received.windowBytes(Math.floor(start / WINDOW_MS))]);
        }
        if (directions.includes("up")) {
          const bytes = this.acknowledged.bytesBetween(start, start + WINDOW_MS);
          if (bytes !== null) rows.push([span.name, start, "up", bytes]);
        }
      }
    }
    return rows;
  }

  async submit() {
    this.probes.sort((a, b) => a.seq - b.seq);
    this.submission = {
      token: this.session.token,
      probes: this.probes.map((p) => [p.seq, p.phase, p.sent_ms, p.client_rtt_ms, p.server_rtt_ms, p.ack_rtt_ms]),
      throughput: this.throughputRows(),
      streams: { download: this.counts.down, upload: this.counts.up },
      lag: this.lagRows,
    };
    return submitResult(this.session.result_url, this.submission, (seconds) => this.emit("waiting", seconds));
  }

  cleanUp() {
    clearInterval(this.ticker);
    if (this.lag) this.lag.stop();
    this.groups = { down: null, up: null };
    if (this.load) this.load.terminate();
    this.load = null;
    if (this.poller) this.poller.stop();
    if (this.worker) this.worker.terminate();
    this.worker = null;
  }
}

/**
 * Each window's worse lag of two threads: the page's (where Firefox hands the
 * probe replies through) and the load thread's (which reads the download).
 */
function worstLag(pageRows, loadRows) {
  const worst = new Map(pageRows);
  for (const [start, lag] of loadRows) worst.set(start, Math.max(lag, worst.get(start) ?? 0));
  return [...worst].sort((a, b) => a[0] - b[0]);
}

export { LoadError };
