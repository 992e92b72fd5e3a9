// The virtual household while it runs: each member's card with its state, live figures and
// a sparkline of its last pings.

import { h, mbps, ms } from "./format.js";
import { MEMBER_STATES, icon, number } from "./household-view.js";

const SVG = "http://www.w3.org/2000/svg";
const SPARK_SAMPLES = 50;  // 5 s of pings
const SPARK_WIDTH = 120;
const SPARK_HEIGHT = 32;

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
