// The result screen: what the server computed, in words and figures.
// Every grade, rating and figure here comes from the server's result record;
// the raw probes (only on the device that ran the test) add the CDF chart.

import {
  FIX_ADVICE, LOADED_PHASES, RATINGS, USE_CASES, capitalise, gradeInfo, h, mbps, ms,
  needsFix, percent, phaseInfo, signedMs,
} from "./format.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

/** A grade badge: the letter is always written; the colour only repeats it. */
export function gradeBadge(grade, size = "small") {
  const info = gradeInfo(grade);
  const badge = h("span", { class: `grade-chip grade-chip-${size}` }, info ? grade : "–");
  if (info) {
    badge.style.backgroundColor = info.colour;
    badge.setAttribute("aria-label", `grade ${grade}, ${info.word.toLowerCase()}`);
  } else {
    badge.classList.add("grade-chip-none");
    badge.setAttribute("aria-label", "not graded");
  }
  return badge;
}

function throughputLines(name, phase) {
  const throughput = phase.throughput_mbps || {};
  const down = throughput.download || {};
  const up = throughput.upload || {};
  const lines = [];
  if (name !== "upload") lines.push(["Download speed", mbps(down.median), down.windows]);
  if (name !== "download") lines.push(["Upload speed", mbps(up.median), up.windows]);
  return lines;
}

function phaseCard(name, phase) {
  const info = phaseInfo(name);
  const figures = [
    ["Latency increase", signedMs(phase.latency_increase_ms)],
    ["Median latency", ms(phase.p50_ms)],
    ["95th percentile", ms(phase.p95_ms)],
    ...throughputLines(name, phase).map(([label, value]) => [label, value]),
    ["Jitter", ms(phase.jitter_ms)],
    ["Lost probes", `${percent(phase.loss_percent)}`],
  ];
  const swatch = h("span", { class: "swatch swatch-band", "aria-hidden": "true" });
  swatch.style.backgroundColor = info.colour;
  return h("article", { class: "phase-card", "data-phase": name },
    h("header", { class: "phase-card-head" },
      h("h3", {}, swatch, info.label),
      gradeBadge(phase.grade)),
    h("dl", { class: "phase-figures" },
      figures.map(([label, value]) => h("div", {}, h("dt", {}, label), h("dd", {}, value)))),
    h("p", { class: "phase-count" }, `${phase.samples} of ${phase.sent} probes answered`),
    phase.reliable ? null : h("p", { class: "phase-warning" }, `Not graded: ${phase.reason || "too few reliable samples"}.`),
    phase.caveat ? h("p", { class: "phase-warning phase-caveat" }, phase.caveat) : null);
}

function useCaseItem(key, label, rating) {
  const level = RATINGS.indexOf(rating);
  const meter = h("span", { class: "rating-meter", "aria-hidden": "true" },
    RATINGS.map((_, index) => h("span", { class: index <= level ? "on" : "" })));
  if (level >= 0) meter.dataset.level = String(level);
  return h("li", { class: "use-case", "data-use-case": key },
    h("span", { class: "use-case-name" }, label),
    meter,
    h("span", { class: "use-case-rating" }, rating ? capitalise(rating) : "Not rated"));
}

function setterText(result) {
  const overall = result.overall || {};
  if (!overall.grade) return overall.reason ? `No grade: ${overall.reason}.` : "No grade.";
  const phase = result.phases[overall.phase] || {};
  const baseline = result.baseline || {};
  const where = overall.phase === "bidirectional" ? "downloading and uploading at once" : `${overall.phase}ing`;
  const increase = phase.latency_increase_ms;
  const change = increase === null || increase === undefined ? "latency could not be compared"
    : increase <= 0 ? "latency did not rise" : `latency rose by ${ms(increase)}`;
  return `Set by the ${phaseInfo(overall.phase).label.toLowerCase()} phase: while ${where}, ${change} `
    + `(from ${ms(baseline.median_ms)} idle to ${ms(phase.p50_ms)}).`;
}

function explanation(result) {
  const grade = result.overall && result.overall.grade;
  const info = gradeInfo(grade);
  if (!info) {
    return [h("p", {}, "This test could not be graded: there were not enough reliable measurements. "
      + "Make sure nothing else is using your connection heavily, then test again.")];
  }
  const parts = [h("p", {}, info.meaning)];
  if (needsFix(grade)) {
    parts.push(h("h2", { class: "section-title" }, "What you can do"), h("p", {}, FIX_ADVICE));
  } else {
    parts.push(h("p", {}, "Nothing to fix: your router already keeps its queues short."));
  }
  return parts;
}

/** The grade badge (its letter, or "No grade", its colour and spoken name) and the word beside it. */
export function showGrade(grade, info, spokenName) {
  const letter = document.getElementById("grade-letter");
  const badge = document.getElementById("grade-badge");
  letter.textContent = info ? grade : "No grade";
  letter.dataset.grade = grade || "none";
  letter.classList.toggle("grade-letter-long", Boolean(info) && grade.length > 1);
  badge.classList.toggle("grade-badge-none", !info);
  badge.style.backgroundColor = info ? info.colour : "";
  badge.setAttribute("role", "img");
  badge.setAttribute("aria-label", info ? `${spokenName} ${grade}` : "No grade");
  document.getElementById("grade-word").textContent = info ? info.word : "Not graded";
}

/** The server's sentences for where this device could not keep up (lqos/measure/grading.py for a
 * single-user test's phases, household_grading.py for a household's members), under the grade. */
export function showCaveats(caveats = []) {
  const caveatBox = document.getElementById("grade-caveats");
  caveatBox.hidden = caveats.length === 0;
  caveatBox.replaceChildren(...caveats.map((text) => h("p", {}, text)));
}

export function renderResult(record, { shared = false } = {}) {
  const result = record.result;
  const overall = result.overall || {};
  const info = gradeInfo(overall.grade);

  document.getElementById("result-title").textContent = shared ? "Shared result" : "Your result";
  const note = document.getElementById("shared-note");
  note.hidden = !shared;
  if (shared) note.textContent = `A bufferbloat test run on ${formatDate(record.created_at)}. This is a read-only copy.`;

  showGrade(overall.grade, info, "Bufferbloat grade");
  document.getElementById("grade-setter").textContent = setterText(result);
  document.getElementById("grade-explain").replaceChildren(...explanation(result));
  showCaveats(overall.caveats);

  const ratings = (result.use_cases && result.use_cases.ratings) || {};
  document.getElementById("use-cases").replaceChildren(
    ...USE_CASES.map(([key, label]) => useCaseItem(key, label, ratings[key] && ratings[key].rating)));

  const baseline = result.baseline || {};
  document.getElementById("baseline").replaceChildren(
    h("strong", {}, "Idle latency: "),
    `${ms(baseline.median_ms)} median, jitter ${ms(baseline.jitter_ms)}, ${percent(baseline.loss_percent)} lost `
    + `(${baseline.samples} of ${baseline.sent} probes answered).`,
    baseline.reliable === false ? ` Unreliable: ${baseline.reason}.` : "");

  document.getElementById("phase-cards").replaceChildren(
    ...LOADED_PHASES.filter((name) => result.phases && result.phases[name])
      .map((name) => phaseCard(name, result.phases[name])));

  const streams = record.streams || {};
  document.getElementById("result-details").textContent = [
    `Tested ${formatDate(record.created_at)}`,
    `${Math.round(record.duration_seconds || 0)} s schedule`,
    `parallel streams: ${streams.download ?? "–"} download, ${streams.upload ?? "–"} upload`,
    `test ${record.test_id}`,
    ...(record.server_id ? [`server ${record.server_id}`] : []),
  ].join(" · ");

  renderPercentiles(document.getElementById("percentile-view"), result);
}

export function formatDate(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso || "";
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/**
 * Percentiles of each loaded phase as horizontal boxes on one latency axis,
 * drawn in SVG from the server's figures (so a shared result has them too).
 */
export function renderPercentiles(container, result) {
  const draw = () => {
    const width = Math.max(260, Math.floor(container.clientWidth));
    if (container.dataset.width === String(width)) return;
    container.dataset.width = String(width);
    container.replaceChildren(percentileSvg(result, width));
  };
  draw();
  if (!container.resizeWatcher) {
    container.resizeWatcher = new ResizeObserver(() => draw());
    container.resizeWatcher.observe(container);
  }
  container.redraw = () => { container.dataset.width = ""; draw(); };
}

function percentileSvg(result, width) {
  const phases = LOADED_PHASES.map((name) => [name, result.phases[name]]).filter(([, p]) => p && p.p50_ms !== null);
  const baseline = result.baseline && result.baseline.median_ms;
  const rowHeight = 58;
  const top = 8;
  const axisHeight = 28;
  const left = 8;
  const right = 14;
  const height = top + Math.max(1, phases.length) * rowHeight + axisHeight;
  const maxValue = Math.max(10, baseline || 0, ...phases.map(([, p]) => p.p99_ms ?? p.p95_ms ?? p.p50_ms));
  const scaleMax = niceStep(maxValue * 1.05);
  const x = (value) => left + (width - left - right) * Math.min(value, scaleMax) / scaleMax;
  const summary = phases.map(([name, p]) => `${phaseInfo(name).label}: median ${ms(p.p50_ms)}, 95th percentile ${ms(p.p95_ms)}`).join("; ");
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", class: "percentile-svg",
    "aria-label": `Latency percentiles. Idle ${ms(baseline)}. ${summary || "No loaded phase has answered probes."}` });

  const ticks = tickValues(scaleMax);
  const axisY = top + Math.max(1, phases.length) * rowHeight;
  for (const tick of ticks) {
    root.append(svg("line", { x1: x(tick), x2: x(tick), y1: top, y2: axisY, class: "grid" }));
    const anchor = tick === 0 ? "start" : tick === scaleMax ? "end" : "middle";
    root.append(svg("text", { x: x(tick), y: axisY + 18, "text-anchor": anchor, class: "tick" }, `${tick} ms`));
  }
  if (baseline !== null && baseline !== undefined) {
    root.append(svg("line", { x1: x(baseline), x2: x(baseline), y1: top, y2: axisY, class: "baseline-line" }));
  }
  phases.forEach(([name, p], row) => {
    const info = phaseInfo(name);
    const y = top + row * rowHeight;
    const mid = y + 38;
    const label = width < 420 ? info.label.replace("Both directions", "Both") : info.label;
    root.append(svg("text", { x: left, y: y + 16, class: "row-label" }, `${label}: median ${ms(p.p50_ms)}, 95th ${ms(p.p95_ms)}`));
    if (p.p95_ms !== null) root.append(svg("line", { x1: x(p.p25_ms), x2: x(p.p95_ms), y1: mid, y2: mid, class: "whisker" }));
    if (p.p95_ms !== null) root.append(svg("line", { x1: x(p.p95_ms), x2: x(p.p95_ms), y1: mid - 7, y2: mid + 7, class: "whisker" }));
    const box = svg("rect", { x: x(p.p25_ms), y: mid - 10, width: Math.max(2, x(p.p75_ms) - x(p.p25_ms)), height: 20, rx: 3, class: "box" });
    box.setAttribute("fill", info.colour);
    root.append(box);
    root.append(svg("line", { x1: x(p.p50_ms), x2: x(p.p50_ms), y1: mid - 12, y2: mid + 12, class: "median" }));
    if (p.p99_ms !== null) {
      const dot = svg("circle", { cx: x(p.p99_ms), cy: mid, r: 4, class: "p99" });
      dot.setAttribute("fill", info.colour);
      root.append(dot);
    }
  });
  return root;
}

function niceStep(value) {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (value <= step * magnitude) return step * magnitude;
  return 10 * magnitude;
}

function tickValues(max) {
  const rough = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((candidate) => candidate >= rough);
  const ticks = [];
  for (let value = 0; value <= max + step / 1000; value += step) ticks.push(+value.toPrecision(6));
  return ticks;
}
