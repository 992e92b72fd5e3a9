"""The reference page: the most a browser carries on this machine, with nothing of the test around it.

It opens a test session (for its load URLs), then runs *streams* fetch()
downloads of its ``download_url`` or POSTs of 16 MiB bodies to its
``upload_url`` for *seconds*, and counts what arrived: no probes, no charts,
no workers.  ``bench/browser_load.py`` sets it beside the page, and the
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
  const windows = [];  // bytes received per 250 ms window, as the test counts a download
  let bytes = 0;
  const body = new Blob([new Uint8Array(16 * 1024 * 1024).map((_, i) => (i * 2654435761) >>> 24)]);
  async function download() {
    while (performance.now() < end) {
      const reader = (await fetch(session.download_url, {cache: 'no-store'})).body.getReader();
      for (;;) {
        const {done, value} = await reader.read();
        if (done) break;
        bytes += value.byteLength;
        const index = Math.floor((performance.now() - began) / 250);
        windows[index] = (windows[index] || 0) + value.byteLength;
        if (performance.now() >= end) { reader.cancel(); break; }
      }
    }
  }
  async function upload() {
    while (performance.now() < end) {
      const answer = await (await fetch(session.upload_url, {method: 'POST', body, cache: 'no-store'})).json();
      bytes += answer.received;
    }
  }
  await Promise.all(Array.from({length: streams}, direction === 'down' ? download : upload));
  return {bytes, seconds: (performance.now() - began) / 1000, windows: Array.from(windows, (w) => w || 0)};
}"""


def reference_mbps(answer: dict, direction: str) -> float:
    """Mbit/s from the reference page's answer, counted as the page's test counts it."""
    if direction == "down":
        # The median of the 250 ms windows after the first second, the statistic the page is graded on.
        return statistics.median(answer["windows"][4:-1]) * 8 / 0.25 / 1e6
    # Whole bodies, counted when each POST is answered: too lumpy for windows, so the mean.
    return answer["bytes"] * 8 / answer["seconds"] / 1e6
