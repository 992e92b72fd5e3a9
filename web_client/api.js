// The test server's JSON API as the page uses it: open a test, send its
// measurements, and say in a customer's words why either failed
// (docs/PROTOCOL.md, "Starting a test", "Submitting the result", "Errors").

const MAX_SUBMIT_WAIT_SECONDS = 30;

/** The error text of an HTTP answer: its JSON {"error"} if any, else the status. */
export async function errorDetail(response) {
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") return body.error;
  } catch {
    // not JSON: fall through
  }
  return `HTTP ${response.status}${response.statusText ? " " + response.statusText : ""}`;
}

/** Why a test ended without a result; `message` is written for the customer. */
export class TestFailure extends Error {
  constructor(message, { phase = null, retryAfter = null, kind = "failed" } = {}) {
    super(message);
    this.phase = phase;
    this.retryAfter = retryAfter;
    this.kind = kind;
  }
}

/** The failure a test ends with: a TestFailure as it came (placed in `phase` if it names none),
 *  anything else as one whose message is a sentence for the customer. */
export function failureOf(error, phase) {
  const failure = error instanceof TestFailure ? error : new TestFailure(sentence(error.message || String(error)), { phase });
  if (!failure.phase) failure.phase = phase;
  return failure;
}

/** Tell the page `ui[name](...args)` if it listens; a handler that throws is logged, and the test goes on. */
export function notify(ui, name, ...args) {
  const handler = ui[name];
  if (typeof handler !== "function") return;
  try {
    handler(...args);
  } catch (error) {
    console.error(`ui.${name}`, error);
  }
}

/**
 * What a single-user test and a household test share: telling the page, and
 * ending on the first failure. A subclass keeps `ui`, `current` (the phase
 * span now), `t0` (null until the schedule starts), `finished`,
 * `rejectFailed` and `cleanUp()`.
 */
export class TestRun {
  emit(name, ...args) {
    notify(this.ui, name, ...args);
  }

  /** The first failure ends the test; later ones are ignored. */
  fail(error) {
    if (this.failure || this.finished) return;
    this.failure = failureOf(error, this.current ? this.current.name : null);
    this.failure.started = this.t0 !== null;
    this.rejectFailed(this.failure);
    this.cleanUp();
  }

  cancel() {
    this.fail(new TestFailure("You stopped the test.", { kind: "cancelled" }));
  }
}

function sentence(text) {
  const trimmed = String(text).trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/** Seconds from a Retry-After header (seconds or an HTTP date), or null. */
export function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(1, Math.ceil(seconds));
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(1, Math.ceil((date - Date.now()) / 1000)) : null;
}

async function busyFailure(response, what) {
  const retryAfter = parseRetryAfter(response.headers.get("retry-after"));
  const detail = await errorDetail(response);
  const when = retryAfter ? ` Please try again in ${retryAfter} s.` : " Please try again in a minute.";
  return new TestFailure(`${what}: ${detail}.${when}`, { retryAfter, kind: "busy" });
}

/** POST /api/tests: the session the server opened, or a TestFailure that says why not. */
export async function openSession(mode, schedule) {
  let response;
  try {
    response = await fetch("/api/tests", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ mode, schedule }),
      cache: "no-store",
    });
  } catch {
    throw new TestFailure("The test server is not answering. Check your connection and try again.");
  }
  if (response.status === 429) throw await busyFailure(response, "The server cannot start another test right now");
  if (!response.ok) throw new TestFailure(`The server could not start a test: ${await errorDetail(response)}.`);
  return response.json();
}

/**
 * POST the raw samples to `resultUrl` and return the server's result. A 429
 * with a short Retry-After is waited out once (`onWaiting(seconds)` says so).
 */
export async function submitResult(resultUrl, submission, onWaiting) {
  const body = JSON.stringify(submission);
  for (let attempt = 0; ; attempt += 1) {
    let response;
    try {
      response = await fetch(resultUrl, {
        method: "POST", headers: { "content-type": "application/json" }, body, cache: "no-store",
      });
    } catch {
      throw new TestFailure("The measurements could not be sent: the test server is not answering.");
    }
    if (response.ok) return response.json();
    if (response.status === 429) {
      const retryAfter = parseRetryAfter(response.headers.get("retry-after"));
      if (attempt === 0 && retryAfter !== null && retryAfter <= MAX_SUBMIT_WAIT_SECONDS) {
        onWaiting(retryAfter);
        await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000));
        continue;
      }
      throw await busyFailure(response, "The server is too busy to grade this test");
    }
    throw new TestFailure(`The server did not accept the measurements: ${await errorDetail(response)}.`);
  }
}
