// The virtual household's result as a shareable image (1200 x 630), drawn on a canvas.

import { percent, signedMs } from "./format.js";
import { FONT, INK, MUTED, WIDTH, canvasPng, cardWithGrade, chip, drawFooter, fitText } from "./card.js";
import { ofTarget } from "./household-view.js";

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

  drawFooter(ctx, shareUrl, sponsor);
  return canvas;
}

export function householdCardPng(record, options) {
  return canvasPng(drawHouseholdCard(record, options));
}
