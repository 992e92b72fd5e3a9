"""Does the browser's own thread layout make a household member's latency look worse?

    .venv/bin/python bench/household_browser_rtt.py [--runs 3] [--load-seconds 8]

Starts the daemon on free loopback ports and, in Debian's Chromium, plays the
gaming persona with the page's own code (web_client/household-persona.js),
alone and next to the unthrottled "updates" bulk download, with the members'
connections placed as below; and, as a third case, alone on a page whose main
thread is blocked 30 ms out of every 100 ms, as heavy rendering would:

  main      every connection on the page's main thread
  shared    every connection in one Web Worker
  worker    one Web Worker per connection (what the page does)

Chromium is driven over a bare DevTools connection that only evaluates
scripts (--driver cdp, the default): Playwright enables the Network domain, so
Chromium would base64 every bulk WebSocket frame over to it, a load no
customer's browser carries (--driver playwright shows that cost).

For each it prints the gaming member's load-phase round trips (p50, p95, p99,
max, lost), its idle baseline, and how much the updates member received, so
the runs compare at a similar load.  A Python client in its own process
(not a browser) plays the same pair as a reference for what the server and
the kernel add by themselves on this machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent / "tests" / "browser")]

from daemon import start_daemon  # noqa: E402
from bare_chromium import BareChromium  # noqa: E402
from harness import launch  # noqa: E402

CONFIG = "max_concurrent_tests_per_ip=1000\nmax_tests_per_hour_per_ip=100000\n"
BASELINE_MS = 2000

PAGE_SCRIPT = """
async ({ session, names, placement, baselineMs, loadMs, jankMs }) => {
  const { openMember } = await import("/household.js");
  const personas = session.personas.filter((p) => names.includes(p.name));
  const results = {};
  let readyCount = 0;
  let resolveReady, resolveDone, rejectAll;
  const ready = new Promise((resolve, reject) => { resolveReady = resolve; rejectAll = reject; });
  const done = new Promise((resolve) => { resolveDone = resolve; });
  const onReport = (report) => {
    if (report.type === "ready" && ++readyCount === personas.length) resolveReady();
    if (report.type === "failed") rejectAll(new Error(report.name + ": " + report.message));
    if (report.type === "finished") {
      results[report.name] = report.samples;
      if (Object.keys(results).length === personas.length) resolveDone();
    }
  };
  let handles;
  if (placement === "shared") {
    const worker = new Worker("/household-worker.js", { type: "module" });
    worker.onmessage = (event) => onReport(event.data);
    for (const persona of personas) worker.postMessage({ type: "open", persona });
    handles = [{ start: (m) => worker.postMessage({ type: "start", ...m }), stop: () => worker.terminate() }];
  } else {
    const thread = placement === "main" ? "main" : "worker";
    handles = personas.map((persona) => openMember(persona, onReport, { thread }));
  }
  await ready;
  // A busy page: the main thread blocked jankMs out of every 100 ms (layout, paint, GC on a slow phone).
  const jank = jankMs ? setInterval(() => { const end = performance.now() + jankMs; while (performance.now() < end); }, 100) : null;
  const t0 = performance.now();
  for (const handle of handles) handle.start({ timeOrigin: performance.timeOrigin + t0, baselineMs, loadMs });
  await done;
  if (jank) clearInterval(jank);
  for (const handle of handles) handle.stop();
  return results;
}
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(label: str, runs: list[dict]) -> str:
    load = [rtt for run in runs for _, phase, _, rtt, *_ in run["gaming"]["pings"] if phase == "load"]
    idle = [rtt for run in runs for _, phase, _, rtt, *_ in run["gaming"]["pings"] if phase == "baseline" and rtt is not None]
    answered = [rtt for rtt in load if rtt is not None]
    lost = 100 * (len(load) - len(answered)) / max(1, len(load))
    updates = ""
    if all("updates" in run for run in runs):
        windows = [b * 8 / 1e6 for run in runs for _, b in run["updates"]["down"]]
        updates = f"{statistics.median(windows):8.0f}" if windows else "       –"
    else:
        updates = "       –"
    gaming_down = [b * 8 / 1e6 for run in runs for _, b in run["gaming"]["down"]]
    return (f"{label:<32} {statistics.median(idle):6.2f} {percentile(answered, 50):6.2f} {percentile(answered, 95):7.2f} "
            f"{percentile(answered, 99):7.2f} {max(answered):7.1f} {lost:6.1f}% {statistics.median(gaming_down):6.2f} {updates}")


SCENARIOS = {"alone": (["gaming"], 0), "+ updates": (["gaming", "updates"], 0), "alone, busy page": (["gaming"], 30)}


class PlaywrightChromium:
    def __init__(self):
        from playwright.sync_api import sync_playwright
        self.playwright = sync_playwright().start()
        self.browser = launch(self.playwright)
        self.page = self.browser.new_page()

    def goto(self, url: str) -> None:
        self.page.goto(url)

    def evaluate(self, script: str, argument=None):
        return self.page.evaluate(script, argument)

    def close(self) -> None:
        self.browser.close()
        self.playwright.stop()


def browser_runs(daemon, placements, runs: int, load_ms: int, driver: str) -> dict[tuple[str, str], list[dict]]:
    results: dict[tuple[str, str], list[dict]] = {}
    page = BareChromium() if driver == "cdp" else PlaywrightChromium()
    try:
        page.goto(daemon.url + "/")
        for _ in range(runs):
            for placement in placements:
                for scenario, (names, jank_ms) in SCENARIOS.items():
                    status, session = daemon.post_json("/api/tests", {"mode": "virtual_household", "schedule": "short"})
                    assert status == 201, session
                    samples = page.evaluate(PAGE_SCRIPT, {"session": session, "names": names, "placement": placement,
                                                          "baselineMs": BASELINE_MS, "loadMs": load_ms, "jankMs": jank_ms})
                    results.setdefault((placement, scenario), []).append(samples)
                    time.sleep(0.5)
    finally:
        page.close()
    return results


# --- the reference: a Python client, each connection in a process of its own ---

def _python_member(url: str, name: str, load_seconds: float, start_at: float, queue) -> None:
    from websockets.sync.client import connect
    pings, down_windows = [], [0] * int(load_seconds)
    with connect(url, max_size=None, compression=None) as ws:
        ws.recv(timeout=5)  # hello
        while time.time() < start_at:
            time.sleep(0.001)
        t0 = time.perf_counter()
        sent, seq, started = {}, 0, False
        next_ping = t0
        load_start = t0 + BASELINE_MS / 1000
        while True:
            now = time.perf_counter()
            if not started and now >= load_start:
                ws.send(json.dumps({"type": "start", "seconds": load_seconds}))
                started = True
            if now >= next_ping and now < load_start + load_seconds:
                phase = "load" if started else "baseline"
                sent[seq] = (phase, now)
                ws.send(json.dumps({"type": "ping", "seq": seq, "t": round((now - t0) * 1000, 3)}))
                seq += 1
                next_ping += 0.1
            try:
                message = ws.recv(timeout=0.005)
            except TimeoutError:
                continue
            arrived = time.perf_counter()
            if isinstance(message, bytes):
                index = int(arrived - load_start)
                if started and 0 <= index < len(down_windows):
                    down_windows[index] += len(message)
                continue
            event = json.loads(message)
            if event["type"] == "pong" and event["seq"] in sent:
                phase, at = sent.pop(event["seq"])
                rtt = (arrived - at) * 1000
                pings.append([event["seq"], phase, 0, rtt if rtt < 250 else None])
            elif event["type"] == "done":
                break
    pings += [[s, p, 0, None] for s, (p, _) in sent.items()]
    queue.put((name, {"pings": pings, "down": [[i * 1000, b] for i, b in enumerate(down_windows)]}))


def python_runs(daemon, runs: int, load_ms: int) -> dict[tuple[str, str], list[dict]]:
    context = multiprocessing.get_context("spawn")
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(runs):
        for with_updates in (False, True):
            status, session = daemon.post_json("/api/tests", {"mode": "virtual_household", "schedule": "short"})
            urls = {p["name"]: p["url"] for p in session["personas"]}
            names = ["gaming", "updates"] if with_updates else ["gaming"]
            queue = context.Queue()
            start_at = time.time() + 1.5
            processes = [context.Process(target=_python_member, args=(urls[n], n, load_ms / 1000, start_at, queue))
                         for n in names]
            for process in processes:
                process.start()
            run = dict(queue.get(timeout=60) for _ in names)
            for process in processes:
                process.join(timeout=10)
            results.setdefault(("python client", "+ updates" if with_updates else "alone"), []).append(run)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--load-seconds", type=int, default=8)
    parser.add_argument("--placements", default="main,shared,worker")
    parser.add_argument("--no-python", action="store_true")
    parser.add_argument("--driver", choices=("cdp", "playwright"), default="cdp")
    args = parser.parse_args()
    load_ms = args.load_seconds * 1000
    with tempfile.TemporaryDirectory() as tmp:
        daemon = start_daemon(Path(tmp), config_text=CONFIG, as_deployed=True)
        try:
            results = browser_runs(daemon, args.placements.split(","), args.runs, load_ms, args.driver)
            if not args.no_python:
                results.update(python_runs(daemon, args.runs, load_ms))
        finally:
            daemon.stop()
    print(f"gaming persona round trips, ms ({args.runs} runs x {args.load_seconds} s of load each; loopback; "
          f"Chromium driven by {args.driver})")
    print(f"{'placement':<32} {'idle':>6} {'p50':>6} {'p95':>7} {'p99':>7} {'max':>7} {'lost':>7} {'game↓':>6} {'updates↓ Mbit/s':>8}")
    for (placement, scenario), runs in sorted(results.items(), key=lambda item: list(SCENARIOS).index(item[0][1])):
        print(summarise(f"{placement} {scenario}", runs))


if __name__ == "__main__":
    main()
