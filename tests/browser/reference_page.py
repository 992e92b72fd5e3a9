"""The reference page: the most a browser carries on this machine, with nothing of the test around it.

It opens a test session (for its load URLs), then runs *streams* fetch()
downloads of its ``download_url``, or *streams* POSTs of 16 MiB bodies to its
``upload_url``, or both at once (direction ``both``, as the bidirectional
phase loads the line), for *seconds*, and counts what arrived: no probes, no
charts, no workers.  ``bench/browser_load.py`` sets it beside the page, and the
gigabit testbed row falls back to it where the browser, the server and the
link together cannot carry a browser at line rate on this machine's cores.
"""

from __future__ import annotations

import statistics

# The page's streams per direction at most (web_client/load.js, STREAMS_PER_ORIGIN).
PAGE_STREAMS = 6

REFERENCE_PAGE = """async ({direction, seconds, streams}) => {
  const session = await (await fetch('/api/tests', {method: 'POST', body: JSON.stringify({schedule: 'standard'}),
                                                    headers: {'content-type': 'application/json'}})).json();
  const began = performance.now();
  const end = began + seconds * 1000;
  const down = {bytes: 0, windows: []};  // windows: bytes received per 250 ms, as the test counts a download
  const up = {bytes: 0};
  const body = new Blob([new Uint8Array(16 * 1024 * 1024).map((_, i) => (i * 2654435761) >>> 24)]);
  async function download() {
    while (performance.now() < end) {
      const reader = (await fetch(session.download_url, {cache: 'no-store'})).body.getReader();
      for (;;) {
        const {done, value} = await reader.read();
        if (done) break;
        down.bytes += value.byteLength;
        const index = Math.floor((performance.now() - began) / 250);
        down.windows[index] = (down.windows[index] || 0) + value.byteLength;
        if (performance.now() >= end) { reader.cancel(); break; }
      }
    }
  }
  async function upload() {
    while (performance.now() < end) {
      const answer = await (await fetch(session.upload_url, {method: 'POST', body, cache: 'no-store'})).json();
      up.bytes += answer.received;
    }
  }
  const loads = {down: [download], up: [upload], both: [download, upload]}[direction];
  await Promise.all(loads.flatMap((load) => Array.from({length: streams}, load)));
  const answer = {seconds: (performance.now() - began) / 1000};
  if (direction !== 'up') answer.down = {bytes: down.bytes, windows: Array.from(down.windows, (w) => w || 0)};
  if (direction !== 'down') answer.up = up;
  return answer;
}"""


def reference_mbps(answer: dict) -> dict[str, float]:
    """Mbit/s per direction the reference page loaded (``down``, ``up``), counted as the page's test counts it."""
    mbps = {}
    if "down" in answer:
        # The median of the 250 ms windows after the first second, the statistic the page is graded on.
        mbps["down"] = statistics.median(answer["down"]["windows"][4:-1]) * 8 / 0.25 / 1e6
    if "up" in answer:
        # Whole bodies, counted when each POST is answered: too lumpy for windows, so the mean.
        mbps["up"] = answer["up"]["bytes"] * 8 / answer["seconds"] / 1e6
    return mbps


def reference_bytes(answer: dict) -> int:
    """Every byte the reference page carried, both directions."""
    return sum(answer[direction]["bytes"] for direction in ("down", "up") if direction in answer)
