// Words, numbers and colours the screens share. No grading here: grades and
// ratings come from the server's result; this only says them in words.

export const PHASES = {
  baseline: { short: "Idle", label: "Idle (baseline)", colour: "#6b7280",
    doing: "Measuring your latency while the connection is quiet." },
  download_warmup: { short: "↓ Warm", label: "Download warm-up", colour: "#60a5fa",
    doing: "Download warm-up: finding how many parallel streams fill your connection." },
  download: { short: "↓ Down", label: "Download", colour: "#1d4ed8",
    doing: "Download: your connection is full of downloads; measuring latency." },
  upload_warmup: { short: "↑ Warm", label: "Upload warm-up", colour: "#fb923c",
    doing: "Upload warm-up: finding how many parallel streams fill your connection." },
  upload: { short: "↑ Up", label: "Upload", colour: "#c2410c",
    doing: "Upload: your connection is full of uploads; measuring latency." },
  bidirectional: { short: "↕ Both", label: "Both directions", colour: "#7e22ce",
    doing: "Both directions at once: downloading and uploading; measuring latency." },
  // The virtual household's loaded phase.
  load: { short: "Busy", label: "Household busy", colour: "#7e22ce",
    doing: "The household is busy: every member uses your connection at once; each measures its own latency." },
};

export function phaseInfo(name) {
  return PHASES[name] || { short: name, label: name, colour: "#6b7280", doing: `Phase ${name}.` };
}

export const LOADED_PHASES = ["download", "upload", "bidirectional"];

export const GRADES = {
  "A+": { word: "Excellent", colour: "#166534",
    meaning: "Your latency barely moves when the connection is busy. Calls, games and browsing stay smooth even while someone downloads or uploads." },
  A: { word: "Very good", colour: "#15803d",
    meaning: "Your latency rises only a little under load. Almost nobody will notice it." },
  B: { word: "Good", colour: "#3f6212",
    meaning: "Latency rises noticeably under load. Most things work, but fast-paced games and video calls can feel it while someone downloads or uploads." },
  C: { word: "Fair", colour: "#854d0e",
    meaning: "Latency rises a lot when the connection is busy. Video calls may stutter and games lag whenever a download, upload, backup or update runs." },
  D: { word: "Poor", colour: "#c2410c",
    meaning: "When the connection is busy, it becomes slow to answer. Calls break up, games become unplayable and even web pages load sluggishly during downloads or uploads." },
  F: { word: "Bad", colour: "#b91c1c",
    meaning: "A busy connection becomes very slow to answer: hundreds of milliseconds of delay. Anything interactive suffers badly while the line is in use." },
};

export const FIX_ADVICE = "The usual cause is bufferbloat: your router or modem holds too much data in its queue when the line is full, and everything else waits behind it. The cure is smart queue management on the router: turn on SQM (often called \u201CSmart Queue\u201D, \u201CQoS\u201D or \u201Cbandwidth control\u201D) with fq_codel or CAKE, and set its speeds a little below (about 90\u201395% of) your plan\u2019s speeds. Then test again. If your router cannot do this, ask your internet provider and send them the link to this result.";

export function gradeInfo(grade) {
  return GRADES[grade] || null;
}

export function needsFix(grade) {
  return grade === "B" || grade === "C" || grade === "D" || grade === "F";
}

export const USE_CASES = [
  ["gaming", "Gaming"],
  ["video_calls", "Video calls"],
  ["streaming", "Streaming"],
];

export const RATINGS = ["bad", "poor", "average", "good", "great"];

export function ms(value, digits) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  const places = digits !== undefined ? digits : Math.abs(value) < 10 ? 1 : 0;
  return `${value.toFixed(places)} ms`;
}

export function signedMs(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  const text = ms(Math.abs(value));
  return value < 0 ? `−${text}` : `+${text}`;
}

export function mbps(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  const places = value < 10 ? 2 : value < 100 ? 1 : 0;
  return `${value.toFixed(places)} Mbit/s`;
}

export function percent(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return `${value < 10 && value !== 0 ? value.toFixed(1) : value.toFixed(0)}%`;
}

export function capitalise(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : text;
}

/** document.createElement with attributes and children, so no HTML strings are parsed. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") element.className = value;
    else if (name === "text") element.textContent = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** The page's current theme colours, for canvases that cannot use CSS. */
export function themeColours() {
  const style = getComputedStyle(document.documentElement);
  const read = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  return {
    fg: read("--fg", "#16181d"),
    muted: read("--muted", "#4a5060"),
    border: read("--border", "#d5d9e0"),
    card: read("--card", "#ffffff"),
    lost: read("--lost", "#dc2626"),
    line: read("--chart-line", "#16181d"),
  };
}
