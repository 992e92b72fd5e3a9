// Load: parallel download and upload streams, and how their throughput is counted.
//
// - Download streams read fetch() response bodies chunk by chunk; every chunk's
//   bytes are counted into the 250 ms window of the test clock in which it
//   arrived (bytes the page really received, never bytes merely requested).
// - Upload streams POST large Blob bodies one after another; the throughput is
//   what the server says it received (progress_url, polled every 250 ms), never
//   what was handed to the socket.
// - The warm-up adds a stream every 0.5 s while throughput still grows by more
//   than 5%, up to a maximum; the saturation phase keeps that count.
// - Every stream has its own AbortController; stop() aborts it at once.
// - Downloads and uploads go to ports of their own (download_url, upload_url),
//   each with its own six HTTP/1.1 connections.

import { errorDetail } from "./api.js";

export const WINDOW_MS = 250;
const MiB = 1024 * 1024;
const MIN_UPLOAD_BYTES = 1 * MiB;
const MAX_UPLOAD_BYTES = 32 * MiB;
// Each upload request should last about this long, so that request gaps are rare.
const UPLOAD_TARGET_SECONDS = 1.5;
const PROGRESS_INTERVAL_MS = 250;
// Progress polls that may fail in a row (2 s) before the server counts as gone.
const PROGRESS_MAX_FAILURES = 8;

/** A stream that cannot go on: the server refused it or the network is gone. */
export class LoadError extends Error {
  constructor(message, { fatal = true } = {}) {
    super(message);
    this.fatal = fatal;
  }
}

/**
 * Bytes the page received, binned into 250 ms windows of the test clock. The
 * load thread counts them as they arrive and sends them here by window.
 */
export class ReceivedBytes {
  constructor() {
    this.bins = new Map();
    this.total = 0;
  }

  /** [[window index, bytes], ...] counted on the load thread. */
  addWindows(windows) {
    for (const [index, count] of windows) {
      this.bins.set(index, (this.bins.get(index) || 0) + count);
      this.total += count;
    }
  }

  /** Bytes of the 250 ms window that starts at index * 250 ms. */
  windowBytes(index) {
    return this.bins.get(index) || 0;
  }

  /** Bytes per second over the whole windows of [endMs - spanMs, endMs). */
  rate(endMs, spanMs) {
    const last = Math.floor(endMs / WINDOW_MS);
    const first = Math.max(0, last - Math.round(spanMs / WINDOW_MS));
    if (last <= first) return 0;
    let bytes = 0;
    for (let index = first; index < last; index += 1) bytes += this.windowBytes(index);
    return bytes / ((last - first) * WINDOW_MS / 1000);
  }
}

/**
 * Bytes the server acknowledged, from progress polls: (time, cumulative count)
 * samples, each timed at the middle of its request, linearly interpolated.
 */
export class AcknowledgedBytes {
  constructor() {
    this.samples = [];  // [t_ms, cumulative], t increasing
  }

  add(timeMs, cumulative) {
    const last = this.samples[this.samples.length - 1];
    if (last && timeMs <= last[0]) return;
    // A counter never goes backwards; a smaller number is a stale answer.
    this.samples.push([timeMs, last ? Math.max(last[1], cumulative) : cumulative]);
  }

  get first() { return this.samples.length ? this.samples[0][0] : null; }
  get last() { return this.samples.length ? this.samples[this.samples.length - 1][0] : null; }

  /** The cumulative count at timeMs, or null outside the sampled span. */
  valueAt(timeMs) {
    const samples = this.samples;
    if (!samples.length || timeMs < samples[0][0] || timeMs > samples[samples.length - 1][0]) return null;
    let low = 0;
    let high = samples.length - 1;
    while (high - low > 1) {
      const middle = (low + high) >> 1;
      if (samples[middle][0] <= timeMs) low = middle;
      else high = middle;
    }
    const [t0, c0] = samples[low];
    const [t1, c1] = samples[high];
    if (t1 === t0) return c1;
    return c0 + (c1 - c0) * (timeMs - t0) / (t1 - t0);
  }

  /** Bytes in [startMs, endMs), or null when the polls do not cover that span. */
  bytesBetween(startMs, endMs) {
    const start = this.valueAt(startMs);
    const end = this.valueAt(endMs);
    return start === null || end === null ? null : Math.max(0, Math.round(end - start));
  }

  /** Bytes per second over the latest spanMs the polls cover (0 if none yet). */
  recentRate(spanMs) {
    const end = this.last;
    if (end === null) return 0;
    const start = Math.max(this.first, end - spanMs);
    if (end <= start) return 0;
    return (this.valueAt(end) - this.valueAt(start)) / ((end - start) / 1000);
  }
}

/**
 * How late this thread's timer fires at each 250 ms window boundary of the
 * test clock. A thread starved of CPU fires late, and the download bytes it
 * should have read wait with it; the server marks a phase with many late
 * windows as one this device could not fill. Rows: [window start ms, ms late].
 */
export class TimerLag {
  constructor(clock, endMs) {
    this.clock = clock;
    this.endMs = endMs;
    this.rows = [];
    this.next = 0;
    this.timer = null;
  }

  start() {
    this.timer = setTimeout(() => this.fire(), Math.max(0, this.next * WINDOW_MS - this.clock()));
  }

  fire() {
    const now = this.clock();
    // Every boundary this timer missed was as late as this firing.
    for (; this.next * WINDOW_MS <= now && this.next * WINDOW_MS < this.endMs; this.next += 1) {
      const due = this.next * WINDOW_MS;
      this.rows.push([due, Math.round((now - due) * 10) / 10]);
    }
    if (this.next * WINDOW_MS < this.endMs) this.start();
  }

  stop() {
    clearTimeout(this.timer);
  }
}

/** GET progress_url every 250 ms; the server's upload byte counter feeds AcknowledgedBytes. */
export class ProgressPoller {
  constructor(url, clock, acknowledged, onFatal) {
    this.url = url;
    this.clock = clock;
    this.acknowledged = acknowledged;
    this.onFatal = onFatal;
    this.failures = 0;
    this.lastError = "";
    this.running = false;
    this.controller = new AbortController();
  }

  start() {
    this.running = true;
    this.loop();
  }

  async loop() {
    while (this.running) {
      const began = this.clock();
      await this.poll();
      if (this.failures >= PROGRESS_MAX_FAILURES) {
        this.running = false;
        this.onFatal(new LoadError(`the server stopped reporting upload progress (${this.lastError})`));
        return;
      }
      const wait = Math.max(0, began + PROGRESS_INTERVAL_MS - this.clock());
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  /** One poll; true when it answered. */
  async poll() {
    const sent = this.clock();
    try {
      const response = await fetch(this.url, { cache: "no-store", signal: this.controller.signal });
      if (!response.ok) {
        this.lastError = await errorDetail(response);
        this.failures += 1;
        return false;
      }
      const body = await response.json();
      const received = this.clock();
      if (typeof body.upload_bytes !== "number") throw new Error("no upload_bytes in the answer");
      this.acknowledged.add((sent + received) / 2, body.upload_bytes);
      this.failures = 0;
      return true;
    } catch (error) {
      if (this.controller.signal.aborted) return false;
      this.lastError = error.message || String(error);
      this.failures += 1;
      return false;
    }
  }

  stop() {
    this.running = false;
    this.controller.abort();
  }

  /** After the load stopped: one last sample so the final windows are covered. */
  async finish() {
    this.running = false;
    this.controller = new AbortController();
    for (let attempt = 0; attempt < 3; attempt += 1) {
      if (await this.poll()) return;
    }
  }
}

/**
 * How many streams of one direction the page runs at most. Browsers open at
 * most six HTTP/1.1 connections to one host and port, and the server takes
 * downloads and uploads on ports of their own, so each direction has six.
 * They are fetch() streams, never WebSockets: a browser applies backpressure
 * to a fetch body it has not read, but Firefox reads WebSocket messages from
 * the network as fast as they come and queues them inside the browser, where
 * the probe's replies then wait behind seconds of bulk data (measured on
 * loopback: every probe of the download phase lost).
 */
export const STREAMS_PER_ORIGIN = 6;

function abortable(signal) {
  return signal.aborted;
}

/** One download stream: GET download_url, count the body as it arrives, re-open when it ends. */
class DownloadStream {
  constructor(url, meter, onFailure) {
    this.url = url;
    this.meter = meter;
    this.onFailure = onFailure;
    this.controller = new AbortController();
  }

  async run() {
    const signal = this.controller.signal;
    let emptyAnswers = 0;
    while (!signal.aborted) {
      let response;
      try {
        response = await fetch(this.url, { cache: "no-store", signal });
      } catch (error) {
        if (abortable(signal)) return;
        this.onFailure(this, new LoadError("the connection to the test server was lost"));
        return;
      }
      if (!response.ok) {
        this.onFailure(this, new LoadError(`the server refused a download stream: ${await errorDetail(response)}`, { fatal: false }));
        return;
      }
      let bytes = 0;
      try {
        const reader = response.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          bytes += value.byteLength;
          this.meter.add(value.byteLength);
        }
      } catch {
        if (abortable(signal)) return;
        // The stream broke off; opening the next one tells whether the server is still there.
      }
      emptyAnswers = bytes ? 0 : emptyAnswers + 1;
      if (emptyAnswers >= 3) {
        this.onFailure(this, new LoadError("the server sent no download data", { fatal: false }));
        return;
      }
    }
  }

  stop() {
    this.controller.abort();
  }
}

let uploadPayload = null;

/** One large buffer of incompressible bytes; every upload body is a slice of it (no copies). */
function payload() {
  if (!uploadPayload) {
    const bytes = new Uint8Array(MAX_UPLOAD_BYTES);
    const chunk = new Uint8Array(65536);
    crypto.getRandomValues(chunk);
    for (let offset = 0; offset < bytes.length; offset += chunk.length) bytes.set(chunk, offset);
    uploadPayload = new Blob([bytes]);
  }
  return uploadPayload;
}

function uploadSize(bytesPerSecond) {
  let size = MIN_UPLOAD_BYTES;
  while (size < MAX_UPLOAD_BYTES && size < bytesPerSecond * UPLOAD_TARGET_SECONDS) size *= 2;
  return size;
}

/**
 * One upload stream: POST a Blob, then the next, each sized to last about
 * 1.5 s. `size` is the first body's size: a stream that starts where an
 * earlier one already learnt the rate skips the doubling from 1 MiB, each
 * step of which costs a loaded round trip between requests.
 */
class UploadStream {
  constructor(url, onFailure, size = MIN_UPLOAD_BYTES) {
    this.url = url;
    this.onFailure = onFailure;
    this.controller = new AbortController();
    this.size = Math.min(Math.max(size, MIN_UPLOAD_BYTES), MAX_UPLOAD_BYTES);
  }

  async run() {
    const signal = this.controller.signal;
    let failures = 0;
    while (!signal.aborted) {
      const began = performance.now();
      let response;
      try {
        response = await fetch(this.url, { method: "POST", body: payload().slice(0, this.size), cache: "no-store", signal });
      } catch {
        if (abortable(signal)) return;
        // A request can break off mid-body (a server bound); twice in a row means the server is gone.
        failures += 1;
        if (failures >= 2) {
          this.onFailure(this, new LoadError("the connection to the test server was lost"));
          return;
        }
        continue;
      }
      if (!response.ok) {
        this.onFailure(this, new LoadError(`the server refused an upload stream: ${await errorDetail(response)}`, { fatal: false }));
        return;
      }
      failures = 0;
      let received = this.size;
      try {
        const body = await response.json();
        if (typeof body.received === "number") received = body.received;
      } catch {
        if (abortable(signal)) return;
      }
      const seconds = Math.max(0.001, (performance.now() - began) / 1000);
      this.size = uploadSize(received / seconds);
    }
  }

  stop() {
    this.controller.abort();
  }
}

/**
 * The streams of one direction. `resize(n)` opens streams up to n (at most
 * STREAMS_PER_ORIGIN); `stop()` aborts them all.
 */
export class StreamGroup {
  constructor({ direction, url, meter, onFatal, uploadBytes = MIN_UPLOAD_BYTES }) {
    this.direction = direction;  // "down" | "up"
    this.uploadBytes = uploadBytes;  // first body size of new upload streams
    this.url = url;
    this.meter = meter;
    this.onFatal = onFatal;
    this.streams = new Set();
    this.refusal = null;
    this.stopped = false;
  }

  get size() {
    return this.streams.size;
  }

  /** Open streams until there are n (at most STREAMS_PER_ORIGIN); returns how many run. */
  resize(count) {
    const wanted = Math.min(count, STREAMS_PER_ORIGIN);
    while (!this.stopped && !this.refusal && this.streams.size < wanted) {
      const onFailure = (stream, error) => this.failed(stream, error);
      const stream = this.direction === "up"
        ? new UploadStream(this.url, onFailure, this.uploadBytes)
        : new DownloadStream(this.url, this.meter, onFailure);
      this.streams.add(stream);
      stream.run();
    }
    return this.streams.size;
  }

  failed(stream, error) {
    if (!this.streams.delete(stream) || this.stopped) return;
    if (error.fatal) {
      this.onFatal(error);
    } else {
      // A refused stream: go on with the others; with none left, the test cannot go on.
      this.refusal = error;
      if (this.streams.size === 0) this.onFatal(new LoadError(error.message));
    }
  }

  /** The body size the upload streams have settled on: where a later group of uploads can start. */
  learntUploadBytes() {
    let size = this.uploadBytes;
    for (const stream of this.streams) if (stream instanceof UploadStream) size = Math.max(size, stream.size);
    return size;
  }

  stop() {
    this.stopped = true;
    for (const stream of this.streams) stream.stop();
    this.streams.clear();
  }
}

/**
 * The warm-up rule: one stream, then one more every 0.5 s while the throughput
 * of the last 0.5 s is more than 5% above that of the 0.5 s before, up to
 * maxStreams, until the warm-up phase ends. `rateAt(t)` gives bytes/s of the
 * 0.5 s before test time t. Returns the stream count found.
 */
export async function warmUp({ group, startMs, endMs, maxStreams, rateAt, sleepUntil, stepMs = 500, growth = 1.05 }) {
  group.resize(1);
  let previous = null;
  for (let at = startMs + stepMs; at < endMs; at += stepMs) {
    await sleepUntil(at);
    if (group.stopped) break;
    const rate = rateAt(at);
    const growing = previous === null || rate > previous * growth;
    previous = rate;
    if (!growing || group.size >= maxStreams) break;
    const before = group.size;
    if (group.resize(before + 1) === before) break;  // no connection left for another stream
  }
  return group.size;
}
