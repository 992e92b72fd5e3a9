// The virtual household's result: the server's grade for each member and the household,
// with the figures each member is judged on. Every grade and figure comes from the record.

import { FIX_ADVICE, gradeInfo, h, ms, needsFix, percent, signedMs } from "./format.js";
import { formatDate, gradeBadge, showCaveats, showGrade } from "./results.js";
import { icon, number, ofTarget, reasonText } from "./household-view.js";

function sentence(text) {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

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
  score.caveat ? h("p", { class: "phase-warning persona-caveat" }, score.caveat) : null,
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

  showGrade(overall.grade, info, "Household grade");
  $("grade-setter").textContent = setterText(result);
  $("grade-explain").replaceChildren(...explanation(result));
  showCaveats(overall.caveats);

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
    ...(record.server_id ? [`server ${record.server_id}`] : []),
  ].join(" · ");
}

// --- "Download image" for a household result ---
