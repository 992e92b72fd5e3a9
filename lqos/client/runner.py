"""One whole single-user test, on the wire as docs/PROTOCOL.md describes it.

``start_test`` opens the session; ``run_test`` runs the probe for the whole
schedule and the load phase by phase; ``submit`` hands the raw samples to
the server, which grades them.  Nothing here grades anything.

The load side is driven by one tick per 250 ms window boundary of the test
clock: the tick closes the download window that just ended, polls the
server's upload counter, feeds the warm-ups and switches phases, in that
order, so a phase change never races a window.
"""

from __future__ import annotations

import math
import time
from functools import partial

from twisted.internet import defer

from lqos.client.http import ClientError, Http
from lqos.client.load import UPLOAD_BODY_BYTES, RateCeiling, StreamPool, UploadMeter, download_stream, random_block, upload_stream
from lqos.client.schedule import PhaseSpan, Schedule, TestClock
from lqos.client.windows import (WINDOW_MS, WARMUP_STEP_MS, WarmupRule, WindowCounter, throughput_rows,
                                 window_index, window_start)
from lqos.measure.submission import MAX_STREAMS, MAX_WINDOW_BYTES, PROBE_TIMEOUT_MS
from lqos.measure.units import SECONDS, bytes_per_second, mbps

PROBER_READY_TIMEOUT = 20 * SECONDS
PROBES_DONE_SLACK = 5 * SECONDS
RESULT_TIMEOUT = 30 * SECONDS
# Streams for a loaded phase that had no warm-up to find its count.
DEFAULT_STREAMS = 4
# The server rejects a window above 100 Gbit/s as made up (lqos.measure.submission); the
# client keeps each direction at 80% of that, so buffers that shift bytes
# between windows cannot push one over.
CEILING_MBPS = mbps(MAX_WINDOW_BYTES * 0.8, WINDOW_MS / 1000.0)


# Of the server's upload allowance per test, the share the pacing plans to use.
UPLOAD_BUDGET_SHARE = 0.9


def bytes_per_window(rate_mbps: float) -> int:
    return int(bytes_per_second(rate_mbps) * WINDOW_MS / 1000.0)


def upload_budget(answer: dict) -> int | None:
    """Bytes one test may upload, as the server's answer states it (None: unbounded)."""
    stated = (answer.get("limits") or {}).get("upload_bytes_per_test")
    if isinstance(stated, int) and not isinstance(stated, bool) and stated > 0:
        return stated
    return None


def ceilings_mbps(answer: dict, max_mbps: float = CEILING_MBPS) -> dict[str, float]:
    """Each direction's rate ceiling.  Upload is also paced so the server's
    allowance lasts through every phase that carries upload; reaching it
    mid-phase would end the test (the server refuses further bodies)."""
    schedule = Schedule.from_phases(answer["phases"])
    upload_seconds = sum(span.end_ms - span.start_ms for span in schedule.spans
                         if "up" in span.load) / 1000.0
    budget = upload_budget(answer)
    if budget is None or not upload_seconds:
        return {"down": max_mbps, "up": max_mbps}
    usable = max(0.0, budget * UPLOAD_BUDGET_SHARE - UPLOAD_BODY_BYTES)
    up = mbps(usable, upload_seconds)
    return {"down": max_mbps, "up": max(1.0, min(max_mbps, up))}
DIRECTIONS = ("down", "up")
ANSWER_KEYS = ("test_id", "token", "phases", "probe_url", "download_url", "upload_url",
               "progress_url", "result_url")


class Refused(ClientError):
    """The server will not run the test: not now (429; try again after ``retry_after``), or not
    in the mode or schedule asked for (400: one it does not run)."""

    def __init__(self, reason: str, retry_after: str | None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


async def start_test(http: Http, base_url: str, schedule: str, mode: str = "single_user",
                     required: tuple[str, ...] = ANSWER_KEYS) -> dict:
    """``POST /api/tests``: the session's id, token, phases and URLs (*required* keys)."""
    reply = await http.request_json("POST", f"{base_url}/api/tests", {"mode": mode, "schedule": schedule})
    if reply.status == 429:
        raise Refused(reply.error_text().removeprefix("429 "), reply.header("retry-after"))
    if reply.status == 400:
        raise Refused(reply.error_text().removeprefix("400 "), None)
    if reply.status != 201:
        raise ClientError(f"the server would not start a test: {reply.error_text()}")
    answer = reply.json()
    missing = [key for key in required if not isinstance(answer, dict) or key not in answer]
    if missing:
        raise ClientError(f"the server's test description lacks {', '.join(missing)}")
    return answer


class WarmupDriver:
    """Applies the warm-up rule to one warm-up phase's windows, one 0.5 s step at a time.

    The last step's verdict adds no stream: the saturation phase runs with
    the count the warm-up had when it ended.
    """

    def __init__(self, span: PhaseSpan, pool: StreamPool, max_streams: int):
        self._pool = pool
        self._first = window_index(span.start_ms)
        self._end = math.ceil(span.end_ms / WINDOW_MS)
        self._per_step = max(1, round(WARMUP_STEP_MS / WINDOW_MS))
        self._bytes = 0
        self.rule = WarmupRule(max_streams)
        self.frozen = False

    def on_window(self, index: int, byte_count: int) -> None:
        if self.frozen or not self._first <= index < self._end:
            return
        self._bytes += byte_count
        if (index - self._first + 1) % self._per_step:
            return
        rate = self._bytes / (WARMUP_STEP_MS / 1000.0)
        self._bytes = 0
        count = self.rule.step(rate)
        if index + 1 < self._end:
            self._pool.resize(count)


class LoadPhases:
    """Download and upload streams, windows and warm-ups, phase by phase."""

    def __init__(self, reactor, http: Http, answer: dict, clock: TestClock, schedule: Schedule,
                 ceilings: dict[str, float]):
        self._reactor = reactor
        self._clock = clock
        self._schedule = schedule
        self.received = WindowCounter()
        self.ceilings = {direction: RateCeiling(reactor, clock, bytes_per_window(ceilings[direction]))
                         for direction in DIRECTIONS}
        self.pools = self._pools(http.load_agent, answer)
        self.upload_meter = UploadMeter(http, answer["progress_url"], clock, partial(self._on_window, "up"),
                                        partial(self.fail, "the server's upload counter failed"))
        self.streams: dict[str, int] = {}
        # [window start, ms late] of every window boundary's tick: a starved
        # client ticks late, and the server marks the phase (lqos.measure.grading).
        self.lags: list[list[float]] = []
        limits = answer.get("limits") or {}
        self._min_streams = int(limits.get("min_streams", 1))
        self._max_streams = int(limits.get("max_streams", MAX_STREAMS))
        self._warmups: dict[str, WarmupDriver] = {}
        self.phase: str | None = None
        self._next_tick = 0
        self._timer = None
        self.done = defer.Deferred()

    def _pools(self, agent, answer: dict) -> dict[str, StreamPool]:
        block = random_block()
        down, up = answer["download_url"], answer["upload_url"]
        return {
            "down": StreamPool(lambda: download_stream(agent, down, self._on_down_bytes, self.ceilings["down"]),
                               partial(self.fail, "a download stream failed")),
            "up": StreamPool(lambda: upload_stream(agent, up, block, self.ceilings["up"]),
                             partial(self.fail, "an upload stream failed")),
        }

    def window_bytes(self, direction: str, index: int) -> int:
        """Download: bytes this client received; upload: bytes the server acknowledged."""
        return self.received.bytes_in(index) if direction == "down" else self.upload_meter.window_bytes(index)

    def run(self) -> defer.Deferred:
        """Fires after the last phase; fails with a :class:`ClientError` if the load failed."""
        self._on_timer()
        return self.done

    def _on_down_bytes(self, byte_count: int) -> None:
        self.received.add(self._clock.now_ms(), byte_count)

    def _on_timer(self) -> None:
        self._timer = None
        now = self._clock.now_ms()
        current = window_index(now)
        while self._next_tick <= current and not self.done.called:
            self._record_lag(self._next_tick, now)
            self._tick(self._next_tick)
            self._next_tick += 1
        if not self.done.called:
            delay = (window_start(self._next_tick) - self._clock.now_ms()) / 1000.0
            self._timer = self._reactor.callLater(max(0.0, delay), self._on_timer)

    def _record_lag(self, boundary: int, now_ms: float) -> None:
        start = window_start(boundary)
        if start < self._schedule.duration_ms:
            self.lags.append([start, round(now_ms - start, 1)])

    def _tick(self, boundary: int) -> None:
        self._on_window("down", boundary - 1, self.received.bytes_in(boundary - 1))
        if any("up" in self._schedule.directions(self._schedule.phase_at(window_start(i)))
               for i in (boundary - 1, boundary)):
            self.upload_meter.poll(boundary)
        phase = self._schedule.phase_at(window_start(boundary))
        if phase != self.phase:
            self._enter(phase)

    def _on_window(self, direction: str, index: int, byte_count: int) -> None:
        driver = self._warmups.get(direction)
        if driver is not None:
            driver.on_window(index, byte_count)

    def _enter(self, phase: str | None) -> None:
        self.phase = phase
        if phase is None:
            self._finish()
            return
        for direction in DIRECTIONS:
            self._configure(direction, phase, direction in self._schedule.directions(phase))

    def _configure(self, direction: str, phase: str, active: bool) -> None:
        pool = self.pools[direction]
        driver = self._warmups.pop(direction, None)
        if driver is not None:
            driver.frozen = True
            self.streams[direction] = max(pool.count, self._min_streams)
        if not active:
            pool.stop()
        elif self._schedule.span(phase).warmup:
            self._warmups[direction] = WarmupDriver(self._schedule.span(phase), pool, self._max_streams)
            pool.resize(1)
        else:
            pool.resize(self.streams.setdefault(direction, DEFAULT_STREAMS))

    def _stop(self) -> None:
        for pool in self.pools.values():
            pool.stop()
        for ceiling in self.ceilings.values():
            ceiling.stop()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _finish(self) -> None:
        self._stop()
        self.done.callback(None)

    def fail(self, what: str, detail: str) -> None:
        """Stop the load and fail ``done`` with one line that says what broke, and when."""
        if self.done.called:
            return
        phase = self.phase
        self._stop()
        self.upload_meter.stop()
        when = f" during the {phase} phase" if phase else ""
        self.done.errback(ClientError(f"{what}{when}: {detail}"))


async def run_test(reactor, http: Http, answer: dict, prober, ceilings: dict[str, float] | None = None,
                   on_start=None) -> dict:
    """Run the schedule with *prober* (child process or inline); return the submission.

    *on_start*, if given, is called with the wall-clock time (Unix seconds) at
    which the test clock starts, so an outside observer (the accuracy
    testbed's ping) can split its own samples by phase.
    """
    await prober.connect(answer["probe_url"]).addTimeout(PROBER_READY_TIMEOUT, reactor)
    clock = TestClock()
    if on_start is not None:
        on_start(time.time() - clock.now_ms() / 1000.0)
    schedule = Schedule.from_phases(answer["phases"])
    load = LoadPhases(reactor, http, answer, clock, schedule, ceilings or ceilings_mbps(answer))
    probes = prober.start(clock, schedule)
    probes.addErrback(_fail_load, load)
    try:
        await load.run()
        await load.upload_meter.finish(_last_upload_end(schedule))
    except BaseException:
        probes.addErrback(lambda _: None)
        raise
    wait = (schedule.duration_ms + PROBE_TIMEOUT_MS) / 1000.0 + PROBES_DONE_SLACK - clock.now_ms() / 1000.0
    rows = await probes.addTimeout(max(wait, PROBES_DONE_SLACK), reactor)
    return submission(answer["token"], rows, load, schedule)


def _last_upload_end(schedule: Schedule) -> float:
    return max((span.end_ms for span in schedule.spans if "up" in span.load), default=0.0)


def _fail_load(failure, load: LoadPhases):
    """The probe broke: the test cannot be graded, so stop the load at once."""
    load.fail("the latency probe failed", str(failure.value))
    return failure


def submission(token: str, probes: list, load: LoadPhases, schedule: Schedule) -> dict:
    """The raw samples, in the format of ``lqos.measure.submission``."""
    throughput = [row for direction in DIRECTIONS
                  for row in throughput_rows(partial(load.window_bytes, direction), direction, schedule)]
    return {
        "token": token,
        "probes": probes,
        "throughput": throughput,
        "streams": {"download": load.streams.get("down", 0), "upload": load.streams.get("up", 0)},
        "lag": load.lags,
    }


async def submit(http: Http, answer: dict, body: dict):
    """``POST result_url``: the server's graded result (a :class:`Reply` with status 200)."""
    reply = await http.request_json("POST", answer["result_url"], body, timeout=RESULT_TIMEOUT)
    if reply.status != 200:
        raise ClientError(f"the server did not accept the result: {reply.error_text()}")
    return reply
