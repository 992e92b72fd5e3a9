// The load streams run on a thread of their own (a module Worker), not on the page.
//
// Reading a gigabit download is thousands of chunks a second. On the page's
// main thread that work delays everything else there, and Firefox hands a
// worker's WebSocket messages through the main thread too: on loopback the
// probe's replies waited 20-50 ms behind the page's download reading, a
// grade worse than the line deserved. In a worker of its own the load keeps
// the main thread idle for the probes and the charts.
//
// The worker says {type: "ready"} once its modules loaded. LoadEngine runs
// the streams and counts the bytes received into 250 ms windows of the test
// clock; it reports with post(message):
//   {type: "windows", windows: [[index, bytes], ...]}   new bytes, every FLUSH_MS
//   {type: "size", direction, size}                      streams running
//   {type: "fatal", message}                             the load cannot go on
//   {type: "finished", lag: [[start_ms, ms_late], ...]}  after finish()
// LoadThread is the page's side: the same engine in a worker, or on the page
// itself where module workers are missing.

import { StreamGroup, STREAMS_PER_ORIGIN, TimerLag, WINDOW_MS } from "./load.js";

// How often the engine sends the bytes it counted to the page.
export const FLUSH_MS = 50;

export class LoadEngine {
  constructor({ timeOrigin, durationMs, downloadUrl, uploadUrl }, post) {
    this.startAt = timeOrigin - performance.timeOrigin;  // the test start on this thread's clock
    this.urls = { down: downloadUrl, up: uploadUrl };
    this.post = post;
    this.pending = new Map();  // window index -> bytes not yet sent to the page
    this.groups = { down: null, up: null };
    this.uploadBytes = undefined;  // the body size the last upload group settled on
    this.lag = new TimerLag(() => this.clock(), durationMs);
    this.lag.start();
    this.flusher = setInterval(() => this.flush(), FLUSH_MS);
  }

  clock() {
    return performance.now() - this.startAt;
  }

  add(count) {
    const index = Math.floor(this.clock() / WINDOW_MS);
    this.pending.set(index, (this.pending.get(index) || 0) + count);
  }

  flush() {
    if (!this.pending.size) return;
    this.post({ type: "windows", windows: [...this.pending] });
    this.pending.clear();
  }

  resize(direction, count) {
    if (!this.groups[direction]) {
      this.groups[direction] = new StreamGroup({
        direction,
        url: this.urls[direction],
        meter: this,
        onFatal: (error) => this.post({ type: "fatal", message: error.message }),
        uploadBytes: this.uploadBytes,
      });
    }
    const size = this.groups[direction].resize(count);
    this.post({ type: "size", direction, size });
  }

  stop(direction) {
    const group = this.groups[direction];
    if (!group) return;
    if (direction === "up") this.uploadBytes = group.learntUploadBytes();
    group.stop();
    this.groups[direction] = null;
  }

  finish() {
    this.stop("down");
    this.stop("up");
    clearInterval(this.flusher);
    this.lag.stop();
    this.flush();
    this.post({ type: "finished", lag: this.lag.rows });
  }
}

/** One direction's streams as the page sees them: a count it asks the engine for. */
class RemoteGroup {
  constructor(thread, direction) {
    this.thread = thread;
    this.direction = direction;
    this.size = 0;
    this.stopped = false;
  }

  /** Ask for n streams (at most STREAMS_PER_ORIGIN); returns how many will run. */
  resize(count) {
    if (this.stopped) return this.size;
    this.size = Math.max(this.size, Math.min(count, STREAMS_PER_ORIGIN));
    this.thread.send("resize", this.direction, this.size);
    return this.size;
  }

  stop() {
    this.stopped = true;
    this.thread.send("stop", this.direction);
  }
}

export class LoadThread {
  /** `onWindows([[index, bytes]])` gets the counted bytes; `onFatal(message)` a load that broke. */
  constructor({ onWindows, onFatal }) {
    this.onWindows = onWindows;
    this.onFatal = onFatal;
    this.finished = null;
    this.worker = null;
    this.engine = null;
  }

  receive(message) {
    if (message.type === "windows") this.onWindows(message.windows);
    else if (message.type === "fatal") this.onFatal(message.message);
    else if (message.type === "finished" && this.finished) this.finished(message.lag);
  }

  /**
   * Resolves once the load can run: in a module worker, or, in a browser
   * without module workers (its worker fails to load before it says
   * "ready"), on the page itself.
   */
  open() {
    return new Promise((resolve) => {
      let ready = false;
      const onPage = () => {
        if (this.worker) this.worker.terminate();
        this.worker = null;
        resolve();
      };
      try {
        this.worker = new Worker("/load-worker.js", { type: "module" });
      } catch {
        onPage();
        return;
      }
      this.worker.onmessage = (event) => {
        if (event.data.type !== "ready") {
          this.receive(event.data);
        } else if (!ready) {
          ready = true;
          resolve();
        }
      };
      this.worker.onerror = (event) => {
        event.preventDefault();
        if (!ready) onPage();
        else this.onFatal(`the load stopped (${event.message || "worker error"})`);
      };
    });
  }

  /** Start counting on the test clock (`timeOrigin`, absolute ms) toward `durationMs`. */
  start(options) {
    if (this.worker) this.worker.postMessage({ type: "start", options });
    else this.engine = new LoadEngine(options, (message) => queueMicrotask(() => this.receive(message)));
  }

  send(type, ...args) {
    if (this.worker) this.worker.postMessage({ type, args });
    else if (this.engine) this.engine[type](...args);
  }

  group(direction) {
    return new RemoteGroup(this, direction);
  }

  /** Stop every stream; resolves with the engine's timer lag rows. */
  finish() {
    const done = new Promise((resolve) => { this.finished = resolve; });
    this.send("finish");
    return done;
  }

  terminate() {
    if (this.worker) this.worker.terminate();
    else if (this.engine) this.engine.finish();
    this.worker = this.engine = null;
  }
}
