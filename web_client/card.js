// A results card drawn on a canvas, for "Download image": the overall grade,
// each loaded phase, the idle latency, the use cases and the share link.

import { LOADED_PHASES, USE_CASES, capitalise, gradeInfo, mbps, ms, percent, phaseInfo, signedMs } from "./format.js";
import { formatDate } from "./results.js";

export const WIDTH = 1200;
export const HEIGHT = 630;
export const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
export const INK = "#16181d";
export const MUTED = "#4a5060";
const NO_GRADE = "#4a5060";

export function roundedRect(ctx, x, y, width, height, radius) {
  ctx.beginPath();
  ctx.moveTo(x + radius, y);
  ctx.arcTo(x + width, y, x + width, y + height, radius);
  ctx.arcTo(x + width, y + height, x, y + height, radius);
  ctx.arcTo(x, y + height, x, y, radius);
  ctx.arcTo(x, y, x + width, y, radius);
  ctx.closePath();
}

export function fitText(ctx, text, maxWidth) {
  if (ctx.measureText(text).width <= maxWidth) return text;
  let cut = text;
  while (cut.length > 1 && ctx.measureText(`${cut}…`).width > maxWidth) cut = cut.slice(0, -1);
  return `${cut}…`;
}

export function chip(ctx, grade, x, y, size) {
  const info = gradeInfo(grade);
  ctx.fillStyle = info ? info.colour : NO_GRADE;
  roundedRect(ctx, x, y, size, size, size * 0.18);
  ctx.fill();
  ctx.fillStyle = "#ffffff";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  const letter = info ? grade : "–";
  ctx.font = `700 ${Math.round(size * (letter.length > 1 ? 0.46 : 0.58))}px ${FONT}`;
  ctx.fillText(letter, x + size / 2, y + size / 2 + size * 0.03);
  ctx.textAlign = "left";
  ctx.textBaseline = "alphabetic";
}

/**
 * A results card's canvas: the panel, the title and date, and the overall
 * grade large with its word; leaves the muted 22 px font set for the caller.
 */
export function cardWithGrade(title, createdAt, grade) {
  const canvas = document.createElement("canvas");
  canvas.width = WIDTH;
  canvas.height = HEIGHT;
  const ctx = canvas.getContext("2d");

  ctx.fillStyle = "#f7f8fa";
  ctx.fillRect(0, 0, WIDTH, HEIGHT);
  ctx.fillStyle = "#ffffff";
  roundedRect(ctx, 24, 24, WIDTH - 48, HEIGHT - 48, 24);
  ctx.fill();

  ctx.fillStyle = INK;
  ctx.font = `700 40px ${FONT}`;
  ctx.fillText(title, 64, 92);
  ctx.fillStyle = MUTED;
  ctx.font = `400 24px ${FONT}`;
  ctx.textAlign = "right";
  ctx.fillText(formatDate(createdAt), WIDTH - 64, 92);
  ctx.textAlign = "left";

  chip(ctx, grade, 64, 130, 250);
  const info = gradeInfo(grade);
  ctx.fillStyle = INK;
  ctx.font = `700 34px ${FONT}`;
  ctx.fillText(fitText(ctx, info ? info.word : "No grade", 260), 64, 430);
  ctx.fillStyle = MUTED;
  ctx.font = `400 22px ${FONT}`;
  return { canvas, ctx };
}

/** Draw the card for `record` (the server's result) and return the canvas. */
export function drawCard(record, { shareUrl = "", sponsor = "" } = {}) {
  const result = record.result;
  const overall = result.overall || {};
  const { canvas, ctx } = cardWithGrade("Bufferbloat test", record.created_at, overall.grade);
  const setter = overall.grade ? `set by: ${phaseInfo(overall.phase).label}` : "not enough reliable data";
  ctx.fillText(fitText(ctx, setter, 270), 64, 466);

  // One row per loaded phase.
  const column = 380;
  const columnWidth = WIDTH - 64 - column;
  ctx.fillStyle = MUTED;
  ctx.font = `600 22px ${FONT}`;
  ctx.fillText("LATENCY UNDER LOAD", column, 150);
  LOADED_PHASES.forEach((name, index) => {
    const phase = result.phases[name];
    if (!phase) return;
    const y = 172 + index * 82;
    chip(ctx, phase.grade, column, y, 60);
    ctx.fillStyle = INK;
    ctx.font = `700 28px ${FONT}`;
    ctx.fillText(phaseInfo(name).label, column + 80, y + 26);
    const speeds = [];
    const throughput = phase.throughput_mbps || {};
    if (name !== "upload") speeds.push(`↓ ${mbps(throughput.download && throughput.download.median)}`);
    if (name !== "download") speeds.push(`↑ ${mbps(throughput.upload && throughput.upload.median)}`);
    ctx.fillStyle = MUTED;
    ctx.font = `400 23px ${FONT}`;
    const line = [`${signedMs(phase.latency_increase_ms)} latency`, ...speeds].join(" · ");
    ctx.fillText(fitText(ctx, line, columnWidth - 80), column + 80, y + 56);
  });

  const baseline = result.baseline || {};
  ctx.fillStyle = INK;
  ctx.font = `400 24px ${FONT}`;
  ctx.fillText(fitText(ctx, `Idle latency ${ms(baseline.median_ms)} · jitter ${ms(baseline.jitter_ms)} · ${percent(baseline.loss_percent)} lost`, columnWidth),
    column, 440);
  const ratings = (result.use_cases && result.use_cases.ratings) || {};
  const uses = USE_CASES.map(([key, label]) => `${label}: ${ratings[key] && ratings[key].rating ? capitalise(ratings[key].rating) : "not rated"}`);
  ctx.fillText(fitText(ctx, uses.join(" · "), columnWidth), column, 478);

  drawFooter(ctx, shareUrl, sponsor);
  return canvas;
}

/** Both cards' footer: a rule, the share link, and the sponsor (or the project's name). */
export function drawFooter(ctx, shareUrl, sponsor) {
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
}

/** A drawn card as a PNG Blob. */
export function canvasPng(canvas) {
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("the image could not be made"))), "image/png");
  });
}

/** The card as a PNG Blob. */
export function cardPng(record, options) {
  return canvasPng(drawCard(record, options));
}
