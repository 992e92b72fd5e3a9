// Charts drawn with uPlot (web_client/vendor/, installed by `make install`).
// uPlot is loaded lazily: without it the test still runs and shows its
// figures, only the charts are missing.

import { h, phaseInfo, themeColours } from "./format.js";

let uPlotLoading = null;

export function loadUPlot() {
  if (!uPlotLoading) {
    uPlotLoading = import("/vendor/uPlot.esm.js").then((module) => module.default).catch((error) => {
      console.warn("charts unavailable:", error);
      return null;
    });
  }
  return uPlotLoading;
}

function chartHeight(width) {
  return Math.round(Math.min(300, Math.max(190, width * 0.42)));
}

function withAlpha(hex, alpha) {
  const value = parseInt(hex.slice(1), 16);
  return `rgba(${(value >> 16) & 255}, ${(value >> 8) & 255}, ${value & 255}, ${alpha})`;
}

function axis(colours, extra) {
  return {
    stroke: colours.muted,
    grid: { stroke: colours.border, width: 1 },
    ticks: { stroke: colours.border, width: 1, size: 4 },
    font: "12px system-ui, sans-serif",
    ...extra,
  };
}

/** Keep a chart as wide as its container. */
function fitToContainer(plot, container) {
  const observer = new ResizeObserver(() => {
    const width = Math.floor(container.clientWidth);
    if (width > 0 && Math.abs(width - plot.width) > 1) plot.setSize({ width, height: chartHeight(width) });
  });
  observer.observe(container);
  return observer;
}

/** Legend items: a swatch (never the only cue: each item is named) and a label. */
export function renderLegend(list, items) {
  list.replaceChildren(...items.map(({ label, colour, kind = "band" }) => {
    const swatch = h("span", { class: `swatch swatch-${kind}`, "aria-hidden": "true" });
    if (kind === "lost") swatch.textContent = "×";
    else swatch.style.backgroundColor = colour;
    return h("li", {}, swatch, label);
  }));
}

/**
 * Latency over the whole test: phases as coloured bands (named in the band when
 * there is room, and in the legend), answered probes as a line, lost probes as
 * red crosses along the top edge. Gaps in the line are lost probes: no RTT is
 * ever drawn for them.
 */
export class LatencyChart {
  constructor(uPlot, container, spans) {
    this.container = container;
    this.spans = spans;
    this.duration = spans[spans.length - 1].end / 1000;
    this.bySeq = [];
    this.lost = [];
    this.dirty = false;
    this.colours = themeColours();
    const width = Math.max(280, Math.floor(container.clientWidth));
    const dpr = () => devicePixelRatio || 1;
    this.plot = new uPlot({
      width,
      height: chartHeight(width),
      legend: { show: false },
      cursor: { show: false, drag: { x: false, y: false } },
      scales: {
        x: { time: false, range: [0, this.duration] },
        // Headroom above the highest probe for the phase names and the lost-probe marks.
        y: { range: (u, min, max) => [0, niceCeiling(Math.max(max || 0, 10) * 1.3)] },
      },
      series: [
        {},
        { label: "Latency", stroke: this.colours.line, width: 1.5, spanGaps: false, points: { show: false } },
      ],
      axes: [
        axis(this.colours, { values: (u, ticks) => ticks.map((tick) => `${tick} s`) }),
        axis(this.colours, { size: 48, values: (u, ticks) => ticks.map((tick) => `${tick}`) }),
      ],
      hooks: {
        drawClear: [(u) => this.drawBands(u, dpr())],
        draw: [(u) => this.drawLost(u, dpr())],
      },
    }, [[], []], container);
    this.observer = fitToContainer(this.plot, container);
    this.timer = setInterval(() => this.redraw(), 250);
  }

  add(samples) {
    for (const sample of samples) {
      this.bySeq[sample.seq] = sample;
      if (sample.rtt_ms === null) this.lost.push(sample.sent_ms / 1000);
    }
    this.dirty = true;
  }

  redraw() {
    if (!this.dirty) return;
    this.dirty = false;
    const xs = [];
    const ys = [];
    for (const sample of this.bySeq) {
      if (!sample) continue;
      xs.push(sample.sent_ms / 1000);
      ys.push(sample.rtt_ms);
    }
    this.plot.setData([xs, ys], true);
  }

  /** Stop live updates (the chart stays). */
  finish() {
    clearInterval(this.timer);
    this.redraw();
  }

  destroy() {
    clearInterval(this.timer);
    this.observer.disconnect();
    this.plot.destroy();
  }

  drawBands(u, dpr) {
    const { ctx, bbox } = u;
    ctx.save();
    ctx.font = `${Math.round(11 * dpr)}px system-ui, sans-serif`;
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    for (const span of this.spans) {
      const info = phaseInfo(span.name);
      const left = u.valToPos(span.start / 1000, "x", true);
      const right = u.valToPos(span.end / 1000, "x", true);
      ctx.fillStyle = withAlpha(info.colour, span.name === "baseline" ? 0.08 : 0.16);
      ctx.fillRect(left, bbox.top, right - left, bbox.height);
      ctx.fillStyle = withAlpha(info.colour, 0.9);
      ctx.fillRect(left, bbox.top + bbox.height - 4 * dpr, right - left, 4 * dpr);
      const label = info.short;
      if (ctx.measureText(label).width + 6 * dpr < right - left) {
        ctx.fillStyle = this.colours.muted;
        ctx.fillText(label, left + 3 * dpr, bbox.top + 3 * dpr);
      }
    }
    ctx.restore();
  }

  drawLost(u, dpr) {
    if (!this.lost.length) return;
    const { ctx, bbox } = u;
    const size = 4 * dpr;
    const y = bbox.top + 24 * dpr;
    ctx.save();
    ctx.strokeStyle = this.colours.lost;
    ctx.lineWidth = 2 * dpr;
    for (const seconds of this.lost) {
      const x = u.valToPos(seconds, "x", true);
      ctx.beginPath();
      ctx.moveTo(x - size, y - size);
      ctx.lineTo(x + size, y + size);
      ctx.moveTo(x + size, y - size);
      ctx.lineTo(x - size, y + size);
      ctx.stroke();
    }
    ctx.restore();
  }
}

export function latencyLegend(spans) {
  const seen = new Set();
  const items = [];
  for (const span of spans) {
    if (seen.has(span.name)) continue;
    seen.add(span.name);
    const info = phaseInfo(span.name);
    items.push({ label: info.label, colour: info.colour });
  }
  items.push({ label: "Lost probe (no answer within 2 s)", kind: "lost" });
  return items;
}

function niceCeiling(value) {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    if (value <= step * magnitude) return step * magnitude;
  }
  return 10 * magnitude;
}

/**
 * The cumulative distribution of answered probes per phase: for each latency
 * on the x axis, the share of the phase's probes answered within it.
 */
export function cdfChart(uPlot, container, groups) {
  const colours = themeColours();
  const sorted = groups.map((group) => ({ ...group, values: [...group.values].sort((a, b) => a - b) }))
    .filter((group) => group.values.length);
  if (!sorted.length) return null;
  const all = new Set();
  for (const group of sorted) for (const value of group.values) all.add(Math.max(0.01, Math.round(value * 100) / 100));
  const xs = [...all].sort((a, b) => a - b);
  const series = sorted.map((group) => {
    const ys = [];
    let index = 0;
    for (const x of xs) {
      while (index < group.values.length && group.values[index] <= x + 1e-9) index += 1;
      ys.push((index / group.values.length) * 100);
    }
    return ys;
  });
  const spread = xs[xs.length - 1] / xs[0];
  const logarithmic = spread > 100;
  const width = Math.max(280, Math.floor(container.clientWidth));
  const plot = new uPlot({
    width,
    height: chartHeight(width),
    padding: [12, 24, 0, 0],
    legend: { show: false },
    cursor: { show: false, drag: { x: false, y: false } },
    scales: {
      x: logarithmic
        ? { time: false, distr: 3, range: () => [xs[0] / 1.25, xs[xs.length - 1] * 1.25] }
        : { time: false, range: () => [0, niceCeiling(xs[xs.length - 1] * 1.05)] },
      y: { range: [0, 100] },
    },
    series: [{}, ...sorted.map((group) => ({
      label: group.label, stroke: group.colour, width: 2, points: { show: false },
      paths: uPlot.paths.stepped({ align: 1 }),
    }))],
    axes: [
      axis(colours, { values: (u, ticks) => ticks.map((tick) => (tick === null ? "" : `${+tick.toPrecision(3)} ms`)) }),
      axis(colours, { size: 44, values: (u, ticks) => ticks.map((tick) => `${tick}%`) }),
    ],
  }, [xs, ...series], container);
  fitToContainer(plot, container);
  return plot;
}
