// The virtual household before and around its test: the members a server lists (whatever
// /virtual-household/profiles or the session names, so a persona added by a plugin gets a
// card like the four default ones), their plans, and the words the other views share.

import { capitalise, h, mbps, ms } from "./format.js";

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

export function icon(persona, extra = "") {
  return h("span", { class: `persona-icon ${extra}`, "aria-hidden": "true" }, persona.icon || "•");
}

export function number(value) {
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

export function reasonText(reason, name) {
  if (!reason) return "";
  const text = name && reason.startsWith(`${name}: `) ? reason.slice(name.length + 2) : reason;
  return capitalise(text);
}

export function ofTarget(delivered, target) {
  if (delivered === null || delivered === undefined || !Number.isFinite(delivered)) return "–";
  return target ? `${mbps(delivered).replace(" Mbit/s", "")} of ${number(target)} Mbit/s` : mbps(delivered);
}

/** A figure and its unit, the unit smaller: "+41 ms", "1.50 of 1.5 Mbit/s". */
