// One virtual-household test, start to result: session, members, schedule, submission.
//
// POST /api/tests {"mode":"virtual_household"} lists the personas, each with its
// own WebSocket url. Every member connects (each in a Web Worker of its own);
// when all are connected the test clock starts: every member pings for the
// baseline, then all send "start" at the same moment and play their traffic for
// the load phase. A member whose connection drops is interrupted and the others
// go on. When every member has finished (done, or dropped), the raw samples go
// to result_url and the page shows what the server graded. No grading here.

import { PersonaConnection } from "./household-persona.js";
import { TestFailure, TestRun, openSession, submitResult } from "./api.js";

const OPEN_TIMEOUT_MS = 8000;
const TICK_MS = 250;

/**
 * One member's connection, in a worker of its own ("worker", the default) or
 * on the calling thread ("main"). `onReport` receives PersonaConnection's reports.
 */
export function openMember(persona, onReport, { thread = "worker" } = {}) {
  if (thread === "main") {
    const connection = new PersonaConnection(persona, (report) => queueMicrotask(() => onReport(report)));
    connection.open();
    return {
      start: (message) => connection.start(message),
      stop: () => connection.stop(),
    };
  }
  let worker = null;
  let heard = false;
  let fallback = null;
  const onMain = () => {
    // A browser without module workers: the same code on this thread still measures.
    if (worker) worker.terminate();
    worker = null;
    fallback = openMember(persona, onReport, { thread: "main" });
  };
  try {
    worker = new Worker(new URL("./household-worker.js", import.meta.url), { type: "module" });
  } catch {
    onMain();
  }
  if (worker) {
    worker.onmessage = (event) => {
      heard = true;
      onReport(event.data);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      if (!heard && !fallback) onMain();
      else onReport({ type: "failed", name: persona.name, message: event.message || "its worker stopped" });
    };
    worker.postMessage({ type: "open", persona });
  }
  return {
    start: (message) => (fallback ? fallback.start(message) : worker.postMessage({ type: "start", ...message })),
    stop: () => {
      if (fallback) {
        fallback.stop();
        return;
      }
      const ending = worker;
      ending.postMessage({ type: "stop" });
      // Give the worker a moment to close its socket cleanly, then end it.
      setTimeout(() => ending.terminate(), 1000);
    },
  };
}

/** What a member that never reported its samples counts as: interrupted, nothing measured. */
const NOTHING_MEASURED = () => ({ pings: [], down: [], up_acks: [], bursts: [], interrupted: true });

export class HouseholdTest extends TestRun {
  /**
   * `ui` receives: session(session), started(spans), phase(span, index),
   * tick({elapsedMs, durationMs}), live(name, report), member(name, state, detail),
   * submitting(), waiting(seconds).
   */
  constructor({ schedule = "standard", ui = {}, thread = "worker" } = {}) {
    super();
    this.schedule = schedule;
    this.ui = ui;
    this.thread = thread;
    this.members = new Map();    // name -> {persona, handle, ready, finished, samples}
    this.session = null;
    this.t0 = null;
    this.current = null;
    this.finished = false;
    this.failure = null;
    this.timers = [];
    this.failed = new Promise((resolve, reject) => { this.rejectFailed = reject; });
    this.failed.catch(() => {});
  }

  async run() {
    try {
      this.session = await this.startSession();
      this.emit("session", this.session);
      await Promise.race([this.connectAll(), this.failed]);
      this.startClock();
      await Promise.race([this.allFinished, this.failed]);
      this.current = { name: "finishing" };
      this.emit("submitting");
      const record = await Promise.race([this.submit(), this.failed]);
      this.finished = true;
      this.cleanUp();
      return { session: this.session, record, submission: this.submission };
    } catch (error) {
      this.fail(error);
      throw this.failure;
    }
  }

  async startSession() {
    const session = await openSession("virtual_household", this.schedule);
    if (!Array.isArray(session.personas) || !session.personas.length) {
      throw new TestFailure("The server has no household members to play: it lists no personas.");
    }
    return session;
  }

  /** Every member connected (hello received), or a failure that names the one that did not. */
  connectAll() {
    let finishAll;
    this.allFinished = new Promise((resolve) => { finishAll = resolve; });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const waiting = [...this.members.values()].filter((m) => !m.ready).map((m) => m.persona.label);
        reject(new TestFailure(`Could not connect to ${listOf(waiting)} on the test server in time.`));
      }, OPEN_TIMEOUT_MS);
      this.timers.push(timer);
      const onReport = (report) => {
        const member = this.members.get(report.name);
        if (!member || this.failure || this.finished) return;
        if (report.type === "ready") {
          member.ready = true;
          this.emit("member", report.name, "connected");
          if ([...this.members.values()].every((m) => m.ready)) {
            clearTimeout(timer);
            resolve();
          }
        } else if (report.type === "failed" && this.t0 !== null) {
          // Its worker died during the test: interrupted, like a dropped connection.
          this.cutOff(member, report.message);
          if ([...this.members.values()].every((m) => m.finished)) finishAll();
        } else if (report.type === "failed") {
          clearTimeout(timer);
          reject(new TestFailure(`Could not connect to ${member.persona.label} on the test server `
            + `(port ${member.persona.port}: ${report.message}).`));
        } else if (report.type === "live") {
          this.emit("live", report.name, report);
        } else if (report.type === "finished") {
          if (member.finished) return;
          if (this.t0 === null) {
            clearTimeout(timer);
            reject(new TestFailure(`The connection to ${member.persona.label} closed before the test began.`));
            return;
          }
          member.finished = true;
          member.samples = report.samples;
          if (report.samples.interrupted) this.emit("member", report.name, "interrupted", report.reason);
          if ([...this.members.values()].every((m) => m.finished)) finishAll();
        }
      };
      this.finishAll = finishAll;
      for (const persona of this.session.personas) {
        const member = { persona, ready: false, finished: false, samples: null, handle: null };
        this.members.set(persona.name, member);
        member.handle = openMember(persona, onReport, { thread: this.thread });
      }
    });
  }

  startClock() {
    const phases = this.session.phases;
    const baseline = phases.find((p) => p.name === "baseline");
    const load = phases.find((p) => p.name === "load");
    if (!baseline || !load) throw new TestFailure("The server sent a schedule this page does not know.");
    this.spans = [];
    let start = 0;
    for (const phase of phases) {
      this.spans.push({ name: phase.name, seconds: phase.seconds, start, end: start + phase.seconds * 1000 });
      start += phase.seconds * 1000;
    }
    this.duration = start;
    this.t0 = performance.now();
    // As the single-user runner does: when the test clock started, in Unix ms,
    // for an outside observer (the accuracy testbed's ping and irtt).
    document.body.dataset.testStartedUnixMs = String(performance.timeOrigin + this.t0);
    const message = { timeOrigin: performance.timeOrigin + this.t0, baselineMs: baseline.seconds * 1000, loadMs: load.seconds * 1000 };
    for (const member of this.members.values()) member.handle.start(message);
    this.emit("started", this.spans);
    this.spans.forEach((span, index) => {
      this.timers.push(setTimeout(() => {
        if (this.failure || this.finished) return;
        this.current = span;
        this.emit("phase", span, index);
      }, span.start));
    });
    // Each member ends itself (done, dropped, or its own watchdog); this one covers a member
    // whose worker stopped answering at all, so the household never waits forever.
    this.timers.push(setTimeout(() => {
      if (this.failure || this.finished) return;
      for (const member of this.members.values()) if (!member.finished) this.cutOff(member, "it stopped answering");
      this.finishAll();
    }, this.duration + 15000));
    this.ticker = setInterval(() => {
      if (this.failure || this.finished) return;
      this.emit("tick", { elapsedMs: Math.min(performance.now() - this.t0, this.duration), durationMs: this.duration });
    }, TICK_MS);
    this.timers.push(this.ticker);
  }

  cutOff(member, reason) {
    if (member.finished) return;
    member.finished = true;
    member.samples = NOTHING_MEASURED();
    if (member.handle) member.handle.stop();
    member.handle = null;
    this.emit("member", member.persona.name, "interrupted", reason);
  }

  async submit() {
    const members = [...this.members.values()];
    if (members.every((m) => m.samples.interrupted)) {
      throw new TestFailure("The connections to the test server were lost: every member of the household was cut off.",
        { phase: "load" });
    }
    const personas = {};
    for (const member of members) personas[member.persona.name] = member.samples;
    this.submission = { token: this.session.token, personas };
    return submitResult(this.session.result_url, this.submission, (seconds) => this.emit("waiting", seconds));
  }

  cleanUp() {
    for (const timer of this.timers) {
      clearTimeout(timer);
      clearInterval(timer);
    }
    this.timers = [];
    for (const member of this.members.values()) {
      if (member.handle) member.handle.stop();
      member.handle = null;
    }
  }
}

function listOf(items) {
  if (items.length <= 1) return items[0] || "a household member";
  return `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}
