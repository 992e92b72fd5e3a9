// The virtual household on screen: its members before the test, each member's
// live figures while it runs, and the server's household result.
// Members are whatever /virtual-household/profiles (or the session) lists, so a
// persona added by a plugin gets a card like the four default ones. Every
// grade and figure of the result comes from the server's record.

import { FIX_ADVICE, capitalise, gradeInfo, h, mbps, ms, needsFix, percent, signedMs } from "./format.js";
import { formatDate, gradeBadge } from "./results.js";
import { FONT, INK, MUTED, WIDTH, cardWithGrade, chip, fitText } from "./card.js";

const SVG = "http://www.w3.org/2000/svg";
const SPARK_SAMPLES = 50;  // 5 s of pings
const SPARK_WIDTH = 120;
const SPARK_HEIGHT = 32;

export const MEMBER_STATES = {
  connecting: "Connecting",
  connected: "Connected",
  baseline: "Idle baseline",
  loaded: "Loaded",
  done: "Done",
  interrupted: "Interrupted",
};

let profilesLoading = null;

/** The household's members as the server lists them (cached); [] when it cannot say. */
export function fetchProfiles() {
  if (!profilesLoading) {
    profilesLoading = fetch("/virtual-household/profiles", { cache: "no-store" })
      .then((response) => (response.ok ? response.json() : Promise.reject(new Error(`HTTP ${response.status}`))))
      .then((body) => (Array.isArray(body.personas) ? body.personas : []))
      .catch((error) => {
        profilesLoading = null;
        throw error;
      });
  }
  return profilesLoading;
}

function icon(persona, extra = "") {
  return h("span", { class: `persona-icon ${extra}`, "aria-hidden": "true" }, persona.icon || "•");
}

function number(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return String(+value.toPrecision(3));
}

/** What a member asks for, each direction a phrase that wraps as a whole. */
export function planParts(traffic = {}) {
  let down;
  if (traffic.down_mbps === null || traffic.down_mbps === undefined) down = "as fast as the line allows";
  else if (traffic.burst_seconds) down = `${number(traffic.target_down_mbps)} Mbit/s average (${number(traffic.down_mbps)} Mbit/s bursts)`;
  else down = `${number(traffic.down_mbps)} Mbit/s`;
  const part = (arrow, word, text) => h("span", { class: "plan-part" },
    h("span", { "aria-hidden": "true" }, `${arrow} `), h("span", { class: "visually-hidden" }, `${word}: `), text);
  return [part("↓", "download", down), " ", part("↑", "upload", `${number(traffic.up_mbps)} Mbit/s`)];
}

// --- the start screen ---

export function renderStartMembers(list, profiles) {
  list.replaceChildren(...profiles.map((persona) => h("li", { class: "persona-card persona-intro", "data-persona": persona.name },
    icon(persona),
    h("div", { class: "persona-text" },
      h("h3", { class: "persona-label" }, persona.label),
      h("p", { class: "persona-description" }, persona.description),
      h("p", { class: "persona-plan" }, planParts(persona.traffic))))));
}

// --- while the test runs ---

function svg(tag, attributes = {}) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  return element;
}

/** "1.48" and a smaller " of 1.5 Mbit/s", so that it fits half a phone's card. */
function rateParts(value, target) {
  if (value === null || value === undefined || !Number.isFinite(value)) return ["–"];
  const figure = mbps(value).replace(" Mbit/s", "");
  return [figure, h("span", { class: "figure-unit" }, target ? ` of ${number(target)} Mbit/s` : " Mbit/s")];
}

/** Each member's card with live figures: delivered vs asked-for rates, latency and a sparkline, state. */
export class HouseholdLive {
  constructor(list, personas) {
    this.members = new Map();
    list.replaceChildren(...personas.map((persona) => this.card(persona)));
  }

  card(persona) {
    const traffic = persona.traffic || {};
    const figure = (label, key, extra = null) => {
      const value = h("span", { class: "live-value", "data-figure": key }, "–");
      return [h("div", { class: `persona-figure persona-figure-${key}` }, h("dt", {}, label), h("dd", {}, value, extra)), value];
    };
    const spark = svg("svg", { class: "sparkline", viewBox: `0 0 ${SPARK_WIDTH} ${SPARK_HEIGHT}`,
      preserveAspectRatio: "none", "aria-hidden": "true", focusable: "false" });
    const [downBox, down] = figure("Download", "down");
    const [upBox, up] = figure("Upload", "up");
    const [rttBox, rtt] = figure("Latency now", "rtt", spark);
    const state = h("span", { class: "persona-state", "data-state": "connecting" }, MEMBER_STATES.connecting);
    const bursts = traffic.period_seconds ? h("p", { class: "persona-bursts" }, "Video segments: none yet") : null;
    const element = h("li", { class: "persona-card persona-live", "data-persona": persona.name, "data-state": "connecting" },
      h("div", { class: "persona-head" },
        icon(persona),
        h("h3", { class: "persona-label" }, persona.label),
        state),
      h("p", { class: "persona-description" }, persona.description),
      h("dl", { class: "persona-figures" }, downBox, upBox, rttBox),
      bursts);
    const target = traffic.down_mbps === null || traffic.down_mbps === undefined ? null : traffic.target_down_mbps;
    this.members.set(persona.name, {
      persona, element, state, down, up, rtt, spark, bursts, target, targetUp: traffic.up_mbps, history: [],
    });
    return element;
  }

  setState(name, state) {
    const member = this.members.get(name);
    if (!member || member.element.dataset.state === state) return;
    if (member.element.dataset.state === "interrupted") return;  // final
    member.element.dataset.state = state;
    member.state.dataset.state = state;
    member.state.textContent = MEMBER_STATES[state] || state;
  }

  update(name, report) {
    const member = this.members.get(name);
    if (!member) return;
    this.setState(name, report.state);
    if (report.state === "loaded" || report.downMbps !== null) {
      member.down.replaceChildren(...rateParts(report.downMbps, member.target));
      member.up.replaceChildren(...rateParts(report.upMbps, member.targetUp));
    }
    if (report.state === "interrupted") {
      member.down.textContent = "–";
      member.up.textContent = "–";
    }
    member.rtt.textContent = report.lastRtt === null ? "–" : ms(report.lastRtt);
    if (report.rtts && report.rtts.length) {
      member.history.push(...report.rtts);
      member.history.sort((a, b) => a[0] - b[0]);
      if (member.history.length > SPARK_SAMPLES) member.history.splice(0, member.history.length - SPARK_SAMPLES);
      drawSparkline(member.spark, member.history);
    }
    if (member.bursts && report.segments && report.segments.seen) {
      const { seen, arrived, lastSeconds } = report.segments;
      member.bursts.textContent = `Video segments: ${arrived} of ${seen} arrived`
        + (lastSeconds === null ? "" : `, the last in ${lastSeconds.toFixed(1)} s`);
    }
  }
}

/** Answered pings as a line (gaps where one was lost), lost ones as red ticks along the top. */
function drawSparkline(element, history) {
  const values = history.map(([, rtt]) => rtt).filter((rtt) => rtt !== null);
  const top = Math.max(5, ...values) * 1.15;
  const step = SPARK_WIDTH / (SPARK_SAMPLES - 1);
  const offset = SPARK_SAMPLES - history.length;
  const y = (rtt) => SPARK_HEIGHT - 2 - (SPARK_HEIGHT - 6) * (rtt / top);
  const parts = [];
  let run = [];
  const lost = [];
  history.forEach(([, rtt], index) => {
    const x = (offset + index) * step;
    if (rtt === null) {
      if (run.length) parts.push(run);
      run = [];
      lost.push(x);
    } else {
      run.push(`${x.toFixed(1)},${y(rtt).toFixed(1)}`);
    }
  });
  if (run.length) parts.push(run);
  element.replaceChildren(
    svg("line", { x1: 0, x2: SPARK_WIDTH, y1: SPARK_HEIGHT - 1, y2: SPARK_HEIGHT - 1, class: "spark-axis" }),
    ...parts.map((points) => (points.length === 1
      ? svg("circle", { cx: points[0].split(",")[0], cy: points[0].split(",")[1], r: 1.2, class: "spark-dot" })
      : svg("polyline", { points: points.join(" "), class: "spark-line" }))),
    ...lost.map((x) => svg("line", { x1: x, x2: x, y1: 0, y2: 7, class: "spark-lost" })));
}

// --- the result ---

/** The server's reason without the persona's name in front: "gaming: +3 ms ..." -> "+3 ms ...". */
function reasonText(reason, name) {
  if (!reason) return "";
  const text = name && reason.startsWith(`${name}: `) ? reason.slice(name.length + 2) : reason;
  return capitalise(text);
}

function sentence(text) {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

function ofTarget(delivered, target) {
  if (delivered === null || delivered === undefined || !Number.isFinite(delivered)) return "–";
  return target ? `${mbps(delivered).replace(" Mbit/s", "")} of ${number(target)} Mbit/s` : mbps(delivered);
}

/** A figure and its unit, the unit smaller: "+41 ms", "1.50 of 1.5 Mbit/s". */
function figureParts(text) {
  const match = /^(\S+)( .+)$/.exec(text);
  return match ? [match[1], h("span", { class: "figure-unit" }, match[2])] : [text];
}

function byName(profiles) {
  const map = new Map();
  for (const profile of profiles || []) map.set(profile.name, profile);
  return map;
}

/** The figures a member's card lists, in pairs so the two columns line up on a phone:
 * what it is judged on first, then the rest. */
function personaFigures(score) {
  const latency = score.latency || {};
  const throughput = score.throughput || {};
  const rates = [
    [throughput.down_statistic === "mean" ? "Download, average" : "Download", ofTarget(throughput.down_median_mbps, throughput.target_down_mbps)],
    ["Upload", ofTarget(throughput.up_median_mbps, throughput.target_up_mbps)],
  ];
  const echoes = [
    ["Median rise", signedMs(latency.increase_p50_ms)],
    ["95th percentile rise", signedMs(latency.increase_p95_ms)],
    ["Idle latency", ms(latency.baseline_p50_ms)],
    ["Late or lost", percent(latency.loss_percent)],
  ];
  const segments = score.segments;
  if (score.judged_on === "segments" && segments) {
    const slowest = segments.max_s === null || segments.max_s === undefined ? "–" : `${segments.max_s.toFixed(1)} s`;
    const startup = segments.startup_s === null || segments.startup_s === undefined ? "–" : `${segments.startup_s.toFixed(1)} s`;
    return [["Late segments", `${segments.late} of ${segments.count}`], ["Slowest segment", `${slowest} of ${number(segments.segment_seconds)} s`],
      ["Startup", startup], ...rates, ...echoes.slice(0, 2)];
  }
  // A member judged on its share echoes on its own bulk connection: those times are its own queue's.
  if (score.judged_on === "share") return rates;
  return [...echoes, ...rates, ["Jitter", ms(latency.jitter_ms)]];
}

const PLAIN_FIGURES = new Set(["Late segments", "Slowest segment"]);

function personaResultCard(name, score, profile) {
  const latency = score.latency || {};
  const notes = [];
  if (score.interrupted) {
    notes.push(h("p", { class: "persona-interrupted" },
      h("strong", {}, "Interrupted: "), "its connection broke during the test, so it is not graded."));
  } else if (score.sets_household_grade === false) {
    notes.push(h("p", { class: "persona-note" }, "Its grade is shown but does not set the household grade."));
  }
  const count = score.judged_on === "share" ? null
    : h("p", { class: "phase-count" }, `${latency.samples ?? 0} of ${latency.sent ?? 0} messages answered while busy`);
  return h("article", { class: "persona-card persona-result", "data-persona": name,
    "data-interrupted": score.interrupted ? "true" : "false" },
  h("header", { class: "persona-head" },
    icon(profile || {}),
    h("h3", { class: "persona-label" }, score.label || name),
    gradeBadge(score.grade)),
  h("p", { class: "persona-reason" }, sentence(reasonText(score.reason, name))),
  notes,
  h("dl", { class: "phase-figures persona-result-figures" },
    personaFigures(score).map(([label, value]) => h("div", {}, h("dt", {}, label),
      h("dd", {}, PLAIN_FIGURES.has(label) ? value : figureParts(value))))),
  count);
}

function setterText(result) {
  const overall = result.overall || {};
  if (!overall.grade) return `No grade: ${sentence(overall.reason || "the household could not be graded")}`;
  const score = (result.personas || {})[overall.persona] || {};
  return `Set by ${score.label || overall.persona}: ${sentence(reasonText(overall.reason, overall.persona))}`;
}

function explanation(result) {
  const grade = result.overall && result.overall.grade;
  const info = gradeInfo(grade);
  const graded = Object.values(result.personas || {}).filter((s) => s.sets_household_grade).map((s) => s.label);
  const rule = graded.length ? h("p", {}, `The household grade is the worst grade among ${graded.join("; ")}, `
    + "each graded on what its application feels while everyone uses the line at once: "
    + "a game or a call on how much later its packets arrive, a video on whether its segments arrive before the picture would pause.") : null;
  if (!info) {
    return [h("p", {}, "This test could not be graded: there were not enough reliable measurements. "
      + "Make sure nothing else is using your connection heavily, then test again."), rule].filter(Boolean);
  }
  const parts = [h("p", {}, info.meaning), rule].filter(Boolean);
  if (needsFix(grade)) parts.push(h("h2", { class: "section-title" }, "What you can do"), h("p", {}, FIX_ADVICE));
  else parts.push(h("p", {}, "Nothing to fix: your router already keeps its queues short."));
  return parts;
}

function fairnessParts(result) {
  const fairness = result.fairness || {};
  const index = fairness.jain_index;
  const explain = "It compares the share of its asked-for speed that each member with a set speed received: "
    + "1.00 means they all got the same share, and the lower it is, the more some got at the others' expense.";
  if (index === null || index === undefined) {
    return [h("p", { class: "fairness" }, h("strong", {}, "Fairness: not measured. "), "No member's speed could be compared."),
      h("p", { class: "fairness-note" }, explain)];
  }
  return [
    h("p", { class: "fairness" },
      h("span", { class: "fairness-value", "data-value": String(index) }, index.toFixed(2)),
      h("span", { class: "fairness-label" }, ` Jain's fairness index over ${fairness.personas} members`)),
    h("p", { class: "fairness-note" }, explain),
  ];
}

/** Fill the result screen's household parts and the shared grade hero. */
export function renderHouseholdResult(record, { shared = false, profiles = [] } = {}) {
  const result = record.result || {};
  const overall = result.overall || {};
  const info = gradeInfo(overall.grade);
  const $ = (id) => document.getElementById(id);

  $("result-title").textContent = shared ? "Shared household result" : "Your household result";
  const note = $("shared-note");
  note.hidden = !shared;
  if (shared) note.textContent = `A virtual household test run on ${formatDate(record.created_at)}. This is a read-only copy.`;

  const letter = $("grade-letter");
  const badge = $("grade-badge");
  letter.textContent = info ? overall.grade : "No grade";
  letter.dataset.grade = overall.grade || "none";
  letter.classList.toggle("grade-letter-long", Boolean(info) && overall.grade.length > 1);
  badge.classList.toggle("grade-badge-none", !info);
  badge.style.backgroundColor = info ? info.colour : "";
  badge.setAttribute("role", "img");
  badge.setAttribute("aria-label", info ? `Household grade ${overall.grade}` : "No grade");
  $("grade-word").textContent = info ? info.word : "Not graded";
  $("grade-setter").textContent = setterText(result);
  $("grade-explain").replaceChildren(...explanation(result));

  const known = byName(profiles);
  const scores = result.personas || {};
  $("member-summary").replaceChildren(...Object.entries(scores).map(([name, score]) => h("li", { "data-persona": name },
    gradeBadge(score.grade),
    icon(known.get(name) || {}),
    h("span", { class: "member-summary-label" }, score.label || name,
      score.interrupted ? h("span", { class: "member-summary-note" }, " (interrupted)") : null))));
  $("persona-results").replaceChildren(...Object.entries(scores)
    .map(([name, score]) => personaResultCard(name, score, known.get(name))));
  $("household-fairness").replaceChildren(...fairnessParts(result));
  const interrupted = (result.interrupted || []).map((name) => (scores[name] && scores[name].label) || name);
  const cut = $("household-interrupted");
  cut.hidden = !interrupted.length;
  cut.textContent = interrupted.length
    ? `Interrupted: ${interrupted.join("; ")}. A member whose connection broke is not graded and not counted in fairness.`
    : "";

  $("result-details").textContent = [
    `Tested ${formatDate(record.created_at)}`,
    `${Math.round(record.duration_seconds || 0)} s household schedule`,
    `${Object.keys(scores).length} members`,
    `test ${record.test_id}`,
  ].join(" · ");
}

// --- "Download image" for a household result ---


export function drawHouseholdCard(record, { shareUrl = "", sponsor = "" } = {}) {
  const result = record.result || {};
  const overall = result.overall || {};
  const scores = Object.entries(result.personas || {});
  const { canvas, ctx } = cardWithGrade("Virtual household test", record.created_at, overall.grade);
  if (overall.grade) {
    ctx.fillText("set by:", 64, 466);
    ctx.fillText(fitText(ctx, ((result.personas || {})[overall.persona] || {}).label || overall.persona, 290), 64, 494);
  } else {
    ctx.fillText(fitText(ctx, "not enough reliable data", 290), 64, 466);
  }

  const column = 380;
  const columnWidth = WIDTH - 64 - column;
  ctx.fillStyle = MUTED;
  ctx.font = `600 22px ${FONT}`;
  ctx.fillText("EACH MEMBER, WHILE ALL USED THE LINE", column, 150);
  const rowHeight = Math.min(72, Math.floor(300 / Math.max(1, scores.length)));
  const size = Math.min(52, rowHeight - 10);
  scores.forEach(([name, score], index) => {
    const y = 168 + index * rowHeight;
    chip(ctx, score.grade, column, y, size);
    ctx.fillStyle = INK;
    ctx.font = `700 ${Math.round(size * 0.48)}px ${FONT}`;
    ctx.fillText(fitText(ctx, score.label || name, columnWidth - size - 20), column + size + 18, y + size * 0.45);
    const latency = score.latency || {};
    const throughput = score.throughput || {};
    const line = score.interrupted ? "interrupted"
      : [`${signedMs(latency.increase_p95_ms)} at p95`, `${percent(latency.loss_percent)} late or lost`,
        `↓ ${ofTarget(throughput.down_median_mbps, throughput.target_down_mbps)}`].join(" · ");
    ctx.fillStyle = MUTED;
    ctx.font = `400 ${Math.round(size * 0.4)}px ${FONT}`;
    ctx.fillText(fitText(ctx, line, columnWidth - size - 20), column + size + 18, y + size * 0.92);
  });

  const fairness = (result.fairness || {}).jain_index;
  ctx.fillStyle = INK;
  ctx.font = `400 24px ${FONT}`;
  ctx.fillText(fitText(ctx, `Fairness (Jain's index): ${fairness === null || fairness === undefined ? "not measured" : fairness.toFixed(2)}`,
    columnWidth), column, 488);

  ctx.strokeStyle = "#d5d9e0";
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(64, 520);
  ctx.lineTo(WIDTH - 64, 520);
  ctx.stroke();
  ctx.fillStyle = MUTED;
  ctx.font = `400 22px ${FONT}`;
  ctx.fillText(fitText(ctx, shareUrl, 700), 64, 566);
  ctx.textAlign = "right";
  ctx.fillText(fitText(ctx, sponsor || "lqos-bufferbloat", 380), WIDTH - 64, 566);
  ctx.textAlign = "left";
  return canvas;
}

export function householdCardPng(record, options) {
  const canvas = drawHouseholdCard(record, options);
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("the image could not be made"))), "image/png");
  });
}
