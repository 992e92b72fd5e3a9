// The page: start screen, a running test, its result, a shared result, errors.
//
// /            the start screen (?schedule=short asks for the short schedule,
//              ?mode=household opens it on the virtual household)
// /r/SHARE_ID  a shared result, read-only: fetched as JSON from the same URL;
//              a single-user or a household result, as its "mode" says

import { showSponsor } from "./sponsor.js";
import { ServerChoice } from "./servers.js";
import { SingleUserTest } from "./runner.js";
import { LatencyChart, cdfChart, latencyLegend, loadUPlot, renderLegend } from "./charts.js";
import { renderResult } from "./results.js";
import { cardPng } from "./card.js";
import { h, mbps, ms, phaseInfo } from "./format.js";
import { HouseholdTest } from "./household.js";
import { fetchProfiles, renderStartMembers } from "./household-view.js";
import { HouseholdLive } from "./household-live.js";
import { renderHouseholdResult } from "./household-result.js";
import { householdCardPng } from "./household-card.js";

const $ = (id) => document.getElementById(id);
const SCREENS = ["start", "running", "result", "error"];
const MODE_NAMES = { single_user: "single_user", household: "virtual_household", virtual_household: "virtual_household" };
const HOUSEHOLD = "virtual_household";

function show(screen, { focus = true } = {}) {
  for (const name of SCREENS) $(`screen-${name}`).hidden = name !== screen;
  document.body.dataset.screen = screen;
  if (focus) {
    const heading = $(`screen-${screen}`).querySelector("h1");
    if (heading) heading.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }
}

// --- start ---

async function showMembers() {
  const list = $("start-members");
  const problem = $("members-error");
  if (list.children.length) return;
  try {
    const profiles = await fetchProfiles();
    renderStartMembers(list, profiles);
    problem.hidden = Boolean(profiles.length);
    problem.textContent = profiles.length ? "" : "This server has no household members set up.";
  } catch {
    problem.hidden = false;
    problem.textContent = "The household members could not be loaded from the test server; starting the test will try again.";
  }
}

// --- running ---

function buildStepper(spans) {
  $("stepper").replaceChildren(...spans.map((span, index) => {
    const info = phaseInfo(span.name);
    const bar = h("span", { class: "step-bar", "aria-hidden": "true" });
    bar.style.backgroundColor = info.colour;
    return h("li", { class: "step", "data-phase": span.name, "data-index": String(index) },
      bar,
      h("span", { class: "step-name" }, info.short),
      h("span", { class: "visually-hidden step-state" }, ", to do"));
  }));
}

function markStep(activeIndex) {
  for (const item of $("stepper").children) {
    const index = Number(item.dataset.index);
    const state = index < activeIndex ? "done" : index === activeIndex ? "current" : "todo";
    item.dataset.state = state;
    if (state === "current") item.setAttribute("aria-current", "step");
    else item.removeAttribute("aria-current");
    item.querySelector(".step-state").textContent = state === "done" ? ", done" : state === "current" ? ", in progress" : ", to do";
  }
}

/** The running screen once the measuring is over and the samples go to the server. */
function showSubmitting(sentence) {
  markStep(Infinity);
  $("progress").value = 100;
  $("progress-label").textContent = "Done measuring";
  $("phase-now").textContent = sentence;
}

function showWaiting(seconds) {
  $("phase-now").textContent = `The server is busy; sending the measurements again in ${seconds} s…`;
}

/** "12.5 Mbit/s" as a number and a smaller unit, so it fits a narrow tile. */
function liveFigure(id, text) {
  const element = $(id);
  if (text === null) {
    element.textContent = "–";
    return;
  }
  const [value, ...unit] = text.split(" ");
  element.replaceChildren(value, h("span", { class: "unit" }, ` ${unit.join(" ")}`));
}

// --- a virtual household ---

function showResultBody(household) {
  $("single-result-body").hidden = household;
  $("household-result-body").hidden = !household;
  $("member-summary").hidden = !household;
}

// --- result ---

function shareUrlOf(record) {
  return `${location.origin}/r/${encodeURIComponent(record.share_id)}`;
}

async function renderCdf(probes) {
  const figure = $("cdf-figure");
  const uPlot = await loadUPlot();
  const phases = ["baseline", "download", "upload", "bidirectional"];
  const groups = phases.map((name) => {
    const inPhase = probes.filter((p) => p.phase === name);
    const values = inPhase.filter((p) => p.rtt_ms !== null).map((p) => p.rtt_ms);
    return { name, label: phaseInfo(name).label, colour: phaseInfo(name).colour, values, lost: inPhase.length - values.length };
  });
  if (!uPlot || !groups.some((g) => g.values.length)) {
    figure.hidden = true;
    return;
  }
  figure.hidden = false;
  $("cdf-chart").replaceChildren();
  cdfChart(uPlot, $("cdf-chart"), groups);
  renderLegend($("cdf-legend"), groups.filter((g) => g.values.length).map((g) => ({ label: g.label, colour: g.colour, kind: "line" })));
  const lost = groups.reduce((sum, g) => sum + g.lost, 0);
  $("cdf-note").textContent = `From the ${probes.length} probes this device kept. `
    + (lost ? `${lost} lost probes have no time and are not in these curves; they count as loss.` : "No probe was lost.");
}

async function copyLink(url) {
  const status = $("share-status");
  try {
    if (!navigator.clipboard || !window.isSecureContext) throw new Error("no clipboard API");
    await navigator.clipboard.writeText(url);
    status.textContent = "Link copied.";
  } catch {
    // Plain http on a LAN address is not a secure context: select it for the user instead.
    const input = $("share-link");
    input.focus();
    input.select();
    const copied = document.execCommand && document.execCommand("copy");
    status.textContent = copied ? "Link copied." : "Press Ctrl+C (or long-press and Copy) to copy the selected link.";
  }
}

async function downloadPng(record, url) {
  const status = $("share-status");
  try {
    const sponsor = $("sponsor").hidden ? "" : $("sponsor").textContent;
    const draw = record.mode === HOUSEHOLD ? householdCardPng : cardPng;
    const blob = await draw(record, { shareUrl: url, sponsor });
    const objectUrl = URL.createObjectURL(blob);
    const anchor = h("a", { href: objectUrl, download: `bufferbloat-${record.share_id}.png` });
    document.body.append(anchor);
    anchor.click();
    anchor.remove();
    setTimeout(() => URL.revokeObjectURL(objectUrl), 10000);
    status.textContent = "Image saved.";
  } catch (error) {
    status.textContent = `The image could not be made: ${error.message}`;
  }
}

// --- errors ---

function errorTitle(failure) {
  if (failure.title) return failure.title;
  if (!failure.started) return failure.kind === "busy" ? "The server is busy" : "The test could not start";
  if (failure.phase === "finishing") return "The server could not grade this test";
  return "The test did not finish";
}

/**
 * The page's state: what the address asked for (mode, schedule, a shared
 * result), the test running and its chart, the retry countdown and the JSON
 * download's object URL. One instance lives for the page's life.
 */
class TestPage {
  constructor({ search, pathname }) {
    const query = new URLSearchParams(search);
    // The schedule asked for in the address; the server's list (GET /api/schedules) decides whether it exists.
    this.schedule = query.get("schedule") || "standard";
    this.mode = MODE_NAMES[query.get("mode")] || "single_user";
    this.sharedId = pathname.match(/^\/r\/([A-Za-z0-9_-]{1,64})\/?$/)?.[1] ?? null;
    this.test = null;
    this.chart = null;
    this.retryTimer = null;
    this.jsonUrl = null;
  }

  startUrl() {
    const params = new URLSearchParams();
    if (this.mode === HOUSEHOLD) params.set("mode", "household");
    if (this.schedule !== "standard") params.set("schedule", this.schedule);
    const text = params.toString();
    return text ? `/?${text}` : "/";
  }

  /**
   * The start screen as the server's schedules (GET /api/schedules) allow: their
   * lengths, and no choice of mode on a server that does not run the virtual
   * household. Until they arrive (or if they cannot) the page keeps what it was
   * served with; an unknown ?schedule= falls back to the standard one.
   */
  async showOfferedSchedules() {
    let schedules = null;
    try {
      const response = await fetch("/api/schedules", { cache: "no-store" });
      if (response.ok) schedules = await response.json();
    } catch {
      return;
    }
    if (!schedules?.single_user) return;
    if (!schedules.single_user[this.schedule]) this.schedule = "standard";
    if (!schedules[HOUSEHOLD]) this.offerSingleUserOnly();
    for (const [id, forMode] of [["start-duration", "single_user"], ["household-duration", HOUSEHOLD]]) {
      const seconds = schedules[forMode]?.[this.schedule]?.seconds;
      if (Number.isFinite(seconds)) $(id).textContent = String(Math.round(seconds));
    }
  }

  /** A server without the virtual household: the mode choice goes, and ?mode=household falls back. */
  offerSingleUserOnly() {
    $("start-form").querySelector(".mode-switch").hidden = true;
    if (this.mode !== HOUSEHOLD) return;
    this.mode = "single_user";
    this.checkMode();
    if (!this.sharedId) history.replaceState(null, "", this.startUrl());
  }

  showStart(notice) {
    this.checkMode();
    const box = $("start-notice");
    box.hidden = !notice;
    box.textContent = notice || "";
    show("start", { focus: Boolean(notice) });
  }

  /** The mode's radio button checked, and the start screen drawn for it. */
  checkMode() {
    for (const input of document.querySelectorAll("input[name='mode']")) input.checked = input.value === this.mode;
    this.applyMode();
  }

  /** The start screen for the chosen mode: its sentence, and the household's members. */
  applyMode() {
    const household = this.mode === HOUSEHOLD;
    $("lead-single_user").hidden = household;
    $("lead-virtual_household").hidden = !household;
    $("household-members").hidden = !household;
    if (household) showMembers();
  }

  resetRunning(runningMode) {
    $("screen-running").dataset.mode = runningMode;
    $("running-title").textContent = runningMode === HOUSEHOLD ? "Testing your household" : "Testing your connection";
    $("household-live").hidden = runningMode !== HOUSEHOLD;
    $("household-live").replaceChildren();
    $("member-status").textContent = "";
    $("stepper").replaceChildren();
    $("progress").value = 0;
    $("progress-label").textContent = "Starting…";
    $("phase-now").textContent = "Connecting to the test server…";
    for (const id of ["live-latency", "live-download", "live-upload"]) $(id).textContent = "–";
    const figure = $("latency-figure");
    if (figure.parentElement !== $("screen-running")) $("stop-button").before(figure);
    if (this.chart) this.chart.destroy();
    this.chart = null;
    $("latency-chart").replaceChildren();
    $("latency-legend").replaceChildren();
  }

  async runTest() {
    if (this.test) return;
    clearInterval(this.retryTimer);
    this.resetRunning("single_user");
    show("running");
    const uPlotReady = loadUPlot();
    let lastRtt = null;
    const probesBeforeChart = [];
    this.test = new SingleUserTest({
      mode: "single_user",
      schedule: this.schedule,
      ui: {
        started: async (session, spans) => {
          buildStepper(spans);
          renderLegend($("latency-legend"), latencyLegend(spans));
          const uPlot = await uPlotReady;
          if (uPlot && this.test) {
            this.chart = new LatencyChart(uPlot, $("latency-chart"), spans);
            this.chart.add(probesBeforeChart);
          }
        },
        phase: (span, index) => {
          markStep(index);
          $("phase-now").textContent = phaseInfo(span.name).doing;
        },
        tick: (live) => {
          const total = live.durationMs / 1000;
          $("progress").value = Math.round((live.elapsedMs / live.durationMs) * 100);
          $("progress-label").textContent = `${Math.floor(live.elapsedMs / 1000)} s of ${Math.round(total)} s`;
          liveFigure("live-download", live.downloadMbps === null ? null : mbps(live.downloadMbps));
          liveFigure("live-upload", live.uploadMbps === null ? null : mbps(live.uploadMbps));
          liveFigure("live-latency", lastRtt === null ? null : ms(lastRtt));
        },
        probes: (samples) => {
          for (const sample of samples) if (sample.rtt_ms !== null) lastRtt = sample.rtt_ms;
          if (this.chart) this.chart.add(samples);
          else probesBeforeChart.push(...samples);
        },
        submitting: () => showSubmitting("Sending the measurements to the server for grading…"),
        waiting: showWaiting,
      },
    });
    await this.runToEnd((outcome) => this.showOwnResult(outcome), () => { if (this.chart) this.chart.finish(); });
  }

  async runHousehold() {
    if (this.test) return;
    clearInterval(this.retryTimer);
    this.resetRunning(HOUSEHOLD);
    show("running");
    let live = null;
    let personas = [];
    const labelOf = (name) => (personas.find((p) => p.name === name) || { label: name }).label;
    this.test = new HouseholdTest({
      schedule: this.schedule,
      ui: {
        session: (session) => {
          personas = session.personas;
          live = new HouseholdLive($("household-live"), personas);
          $("phase-now").textContent = `Connecting the ${personas.length} members of the household to the test server…`;
        },
        member: (name, state, detail) => {
          if (live) live.setState(name, state);
          if (state === "interrupted") {
            $("member-status").textContent = `${labelOf(name)} was interrupted: ${detail || "its connection broke"}. The others go on.`;
          }
        },
        started: (spans) => {
          buildStepper(spans);
          $("member-status").textContent = `All ${personas.length} members are connected.`;
        },
        phase: (span, index) => {
          markStep(index);
          $("phase-now").textContent = phaseInfo(span.name).doing;
        },
        tick: ({ elapsedMs, durationMs }) => {
          $("progress").value = Math.round((elapsedMs / durationMs) * 100);
          $("progress-label").textContent = `${Math.floor(elapsedMs / 1000)} s of ${Math.round(durationMs / 1000)} s`;
        },
        live: (name, report) => { if (live) live.update(name, report); },
        submitting: () => showSubmitting("Every member has finished. Sending the measurements to the server for grading…"),
        waiting: showWaiting,
      },
    });
    await this.runToEnd((outcome) => this.showOwnHouseholdResult(outcome, personas));
  }

  /** Run `this.test` to its end: its result shown, or the start screen (stopped) or the error screen.
   *  `ended` runs first either way. */
  async runToEnd(showResult, ended = () => {}) {
    try {
      const outcome = await this.test.run();
      ended();
      showResult(outcome);
    } catch (failure) {
      ended();
      if (failure.kind === "cancelled") this.showStart("You stopped the test. No grade was given.");
      else this.showError(failure);
    } finally {
      this.test = null;
    }
  }

  showOwnHouseholdResult({ record, submission }, personas) {
    showResultBody(true);
    renderHouseholdResult(record, { shared: false, profiles: personas });
    this.showOwnRecord(record, submission);
  }

  startTest() {
    if (this.mode === HOUSEHOLD) this.runHousehold();
    else this.runTest();
  }

  showOwnResult({ record, probes, spans, submission }) {
    showResultBody(false);
    renderResult(record, { shared: false });
    $("result-timeline").replaceChildren($("latency-figure"));
    renderCdf(probes);
    this.showOwnRecord(record, submission);
    if (this.chart) this.chart.plot.redraw();
  }

  /** The result screen for this device's own test: sharing (the samples without the token), Test again. */
  showOwnRecord(record, submission) {
    const raw = { ...submission };
    delete raw.token;
    this.setUpSharing(record, { record, raw_samples: raw });
    $("again-button").href = this.startUrl();
    show("result");
    // The address bar now holds the share link: a reload shows this result again.
    history.replaceState(null, "", `/r/${encodeURIComponent(record.share_id)}`);
  }

  async showShared(shareId) {
    document.title = "Shared result – Bufferbloat test";
    for (const name of SCREENS) $(`screen-${name}`).hidden = true;
    $("retry-button").textContent = "Test your own connection";
    let response;
    try {
      response = await fetch(`/r/${encodeURIComponent(shareId)}`, { headers: { Accept: "application/json" }, cache: "no-store" });
    } catch {
      this.showError({ title: "This result cannot be shown", message: "The test server is not answering, so this result cannot be shown right now." }, { noGradeNote: false });
      return;
    }
    if (response.status === 404) {
      this.showError({ title: "This result cannot be shown", message: "There is no result at this link. It may have been mistyped, or the server no longer keeps it." }, { noGradeNote: false });
      return;
    }
    if (!response.ok) {
      this.showError({ title: "This result cannot be shown", message: `The server could not show this result (HTTP ${response.status}).` }, { noGradeNote: false });
      return;
    }
    const record = await response.json();
    const household = record.mode === HOUSEHOLD;
    showResultBody(household);
    if (household) {
      document.title = "Shared household result – Bufferbloat test";
      let profiles = [];
      try {
        profiles = await fetchProfiles();  // only for the members' icons
      } catch {
        profiles = [];
      }
      renderHouseholdResult(record, { shared: true, profiles });
      $("again-button").href = "/?mode=household";
    } else {
      renderResult(record, { shared: true });
    }
    $("cdf-figure").hidden = true;
    $("result-timeline").replaceChildren();
    this.setUpSharing(record, record);
    $("again-button").textContent = "Test your own connection";
    show("result", { focus: false });
  }

  setUpSharing(record, rawDocument) {
    const url = shareUrlOf(record);
    $("share-link").value = url;
    $("share-status").textContent = "";
    if (this.jsonUrl) URL.revokeObjectURL(this.jsonUrl);
    this.jsonUrl = URL.createObjectURL(new Blob([JSON.stringify(rawDocument, null, 2)], { type: "application/json" }));
    const link = $("json-link");
    link.href = this.jsonUrl;
    link.download = `bufferbloat-${record.share_id}.json`;
    $("copy-button").onclick = () => copyLink(url);
    $("png-button").onclick = () => downloadPng(record, url);
  }

  showError(failure, { noGradeNote = true } = {}) {
    $("error-title").textContent = errorTitle(failure);
    $("error-message").textContent = failure.started && failure.phase && failure.phase !== "finishing"
      ? `${failure.message} The test stopped during the ${phaseInfo(failure.phase).label.toLowerCase()} phase.`
      : failure.message;
    $("error-consequence").hidden = !noGradeNote;
    const retry = $("retry-button");
    clearInterval(this.retryTimer);
    retry.disabled = false;
    retry.textContent = "Try again";
    if (failure.retryAfter) {
      let left = failure.retryAfter;
      retry.disabled = true;
      const count = () => {
        retry.textContent = `Try again in ${left} s`;
        if (left-- <= 0) {
          clearInterval(this.retryTimer);
          retry.disabled = false;
          retry.textContent = "Try again";
        }
      };
      count();
      this.retryTimer = setInterval(count, 1000);
    }
    show("error");
  }

  /** Wire the controls, then show the shared result the address names, or the start screen. */
  open() {
    $("start-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.startTest();
    });
    for (const input of document.querySelectorAll("input[name='mode']")) {
      input.addEventListener("change", () => {
        if (!input.checked) return;
        this.mode = input.value === HOUSEHOLD ? HOUSEHOLD : "single_user";
        this.applyMode();
        if (!this.sharedId) history.replaceState(null, "", this.startUrl());
      });
    }
    $("stop-button").addEventListener("click", () => { if (this.test) this.test.cancel(); });
    $("retry-button").addEventListener("click", () => {
      if (this.sharedId) location.href = this.startUrl();
      else this.startTest();
    });

    showSponsor($("sponsor"));
    if (this.sharedId) this.showShared(this.sharedId);
    else {
      this.showStart();
      this.showOfferedSchedules();
      new ServerChoice({ field: $("server-choice"), select: $("server-select"), status: $("server-status") },
                       location).open();
    }
  }
}

new TestPage(location).open();
