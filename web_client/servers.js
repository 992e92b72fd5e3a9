// The nearest of a fleet's servers (docs/PROTOCOL.md, "Choosing a server").
//
// A server lists its fleet at GET /api/servers. The page times each one's
// probe (GET ping_url, a few times on one connection: the first pays for the
// connection, so the least of the others is the round trip), and when the
// nearest is not the server that served the page, it opens the page there,
// with ?server=LABEL so that it does not choose again. The customer may pick
// another server from the list; that opens the page there too. A test always
// runs on the server whose page is open, so its share link is on that server.

export const PING_ROUNDS = 4;
const PING_TIMEOUT_MS = 2000;

/** The server with the least round trip (`rttMs`, null when it did not answer), or null. */
export function nearest(servers) {
  let best = null;
  for (const server of servers) {
    if (server.rttMs === null || server.rttMs === undefined) continue;
    if (best === null || server.rttMs < best.rttMs) best = server;
  }
  return best;
}

/** The listed server whose base URL is this page's origin, or null. */
export function serverAt(servers, origin) {
  return servers.find((server) => originOf(server.url) === origin) ?? null;
}

function originOf(url) {
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

/** The page's address on *server*, keeping the query (mode, schedule) and naming the server chosen. */
export function addressOn(server, search) {
  const query = new URLSearchParams(search);
  query.set("server", server.label);
  return `${server.url}/?${query}`;
}

/** The least round trip to *pingUrl* after the first request, in ms; null if it does not answer. */
export async function roundTripMs(pingUrl, rounds = PING_ROUNDS) {
  const times = [];
  for (let round = 0; round < rounds; round += 1) {
    const began = performance.now();
    try {
      const response = await fetch(pingUrl, { cache: "no-store", signal: AbortSignal.timeout(PING_TIMEOUT_MS) });
      await response.arrayBuffer();
      if (!response.ok) return null;
    } catch {
      return null;
    }
    times.push(performance.now() - began);
  }
  return Math.min(...(times.length > 1 ? times.slice(1) : times));
}

/** GET /api/servers: the fleet as the page uses it, or [] (no fleet, or no answer). */
export async function fleetServers() {
  try {
    const response = await fetch("/api/servers", { cache: "no-store" });
    if (!response.ok) return [];
    const body = await response.json();
    return Array.isArray(body.servers)
      ? body.servers.map(({ label, url, ping_url: pingUrl }) => ({ label, url, pingUrl, rttMs: undefined }))
      : [];
  } catch {
    return [];
  }
}

/**
 * The server choice on the start screen: a list of the fleet's servers with
 * their round trips. Hidden for a server that names no fleet.
 */
export class ServerChoice {
  constructor({ field, select, status }, location) {
    this.field = field;
    this.select = select;
    this.status = status;
    this.location = location;
    this.servers = [];
  }

  /** List, time, and (unless the address named a server) move to the nearest. */
  async open() {
    this.servers = await fleetServers();
    this.field.dataset.servers = String(this.servers.length);  // the page has asked (tests wait for it)
    if (this.servers.length < 2) return;
    const here = serverAt(this.servers, this.location.origin);
    this.render(here);
    this.select.addEventListener("change", () => {
      const chosen = this.servers[Number(this.select.value)];
      if (chosen && chosen !== here) this.location.assign(addressOn(chosen, this.location.search));
    });
    this.field.hidden = false;
    this.status.textContent = "Finding the nearest test server…";
    for (const server of this.servers) {
      server.rttMs = await roundTripMs(server.pingUrl);
      this.render(here);
    }
    const best = nearest(this.servers);
    const named = new URLSearchParams(this.location.search).has("server");
    if (best && best !== here && !named) {
      this.status.textContent = `Moving to the nearest server, ${best.label}…`;
      this.location.replace(addressOn(best, this.location.search));
      return;
    }
    this.status.textContent = here
      ? `Testing with ${here.label}${best === here ? ", the nearest server" : ""}.`
      : "This server is not in its own list of servers.";
  }

  render(here) {
    const options = this.servers.map((server, index) => {
      const option = document.createElement("option");
      option.value = String(index);
      const rtt = server.rttMs === undefined ? "timing…" : server.rttMs === null ? "no answer" : `${Math.round(server.rttMs)} ms`;
      option.textContent = `${server.label} (${rtt})`;
      option.selected = server === here;
      return option;
    });
    this.select.replaceChildren(...options);
  }
}
